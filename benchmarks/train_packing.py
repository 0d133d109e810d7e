"""Training step throughput with prompt-shared packing vs the plain path, side by side in one run.

    python benchmarks/train_packing.py [--prompt 1000] [--call 50] [--pairs-per-step 4] [--steps 6]

Model: random-init Qwen3ForSequenceClassification built like `fcrm_ray.models.build_tiny_qwen3_rm`
(4 layers, hidden 256, MLP 3x, fp32, sdpa attention). Data: random token pairs with a prompt of
~`--prompt` tokens (±10%) and calls of ~`--call` tokens (±20%), one prompt per pair.

Each step is what `fcrm train` does per micro-batch: forward, Bradley-Terry loss, backward,
gradient clipping, AdamW step. "plain" = chosen and rejected rows in one right-padded forward
(`collate_pairs`) with the 2D padding mask (the loop's path before packing); "plain_nomask" = the
same rows without a mask, which is exact for causal LMs with right padding and lets SDPA take its
causal kernel (the loop's path for causal LMs when packing is off); "packed" = one
[prompt, chosen, rejected] row per pair with a block mask (`fcrm_ray/train/packing.py`). The
three alternate step by step on the same batches (noise from a shared machine hits all), and the
medians are compared. The token-count limit of the ratio is 2(P+C) / (P+2C).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", type=int, default=1000)
    ap.add_argument("--call", type=int, default=50)
    ap.add_argument("--pairs-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per path (after one warm-up each)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--mlp-ratio", type=int, default=3)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, Qwen3ForSequenceClassification

    from fcrm_ray.models import build_tiny_qwen3_rm, forward_rewards
    from fcrm_ray.train.data import collate_pairs
    from fcrm_ray.train.loop import disable_dropout
    from fcrm_ray.train.loss import bradley_terry_loss
    from fcrm_ray.train.packing import collate_packed_pairs, packed_pair_rewards, packing_blocker

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen3_rm(f"{tmp}/rm", hidden_size=args.hidden, num_layers=args.layers, seed=args.seed)
        cfg = AutoConfig.from_pretrained(path)
        cfg.intermediate_size = args.mlp_ratio * args.hidden
        cfg.max_position_embeddings = max(4096, 2 * (args.prompt + args.call))
        torch.manual_seed(args.seed)
        Qwen3ForSequenceClassification(cfg).save_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, attn_implementation=args.attn)
    blocker = packing_blocker(model)
    if blocker:
        raise SystemExit(f"packing does not apply: {blocker}")
    disable_dropout(model)
    model.train()
    pad = model.config.pad_token_id
    vocab = [i for i in range(model.config.vocab_size) if i != pad]

    def pair() -> dict:
        p = rng.choice(vocab)
        prompt = [rng.choice(vocab) for _ in range(int(args.prompt * rng.uniform(0.9, 1.1)))]
        call = lambda: [rng.choice(vocab) for _ in range(max(1, int(args.call * rng.uniform(0.8, 1.2))))]  # noqa: E731
        return {"chosen_ids": prompt + call() + [p], "rejected_ids": prompt + call() + [p]}

    batches = [[pair() for _ in range(args.pairs_per_step)] for _ in range(args.steps + 1)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(examples, kind: str) -> tuple[float, int, float]:
        t0 = time.perf_counter()
        if kind == "packed":
            batch = collate_packed_pairs(examples, pad)
            rc, rr = packed_pair_rewards(model, model, batch, "cpu")
            tokens = batch["n_tokens"]
        else:
            batch = collate_pairs(examples, pad)
            r = forward_rewards(model, batch["input_ids"], batch["attention_mask"] if kind == "plain" else None)
            rc, rr = r[:len(examples)], r[len(examples):]
            tokens = int(batch["attention_mask"].sum())
        loss = bradley_terry_loss(rc, rr)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, tokens, loss.item()

    # equality on the warm-up batch: the same weights, both losses before any update
    with torch.no_grad():
        model.eval()
        b = collate_pairs(batches[0], pad)
        r = forward_rewards(model, b["input_ids"], b["attention_mask"])
        rc, rr = packed_pair_rewards(model, model, collate_packed_pairs(batches[0], pad), "cpu")
        r2 = forward_rewards(model, b["input_ids"], None)
        max_diff = max((r[:len(rc)] - rc).abs().max().item(), (r[len(rc):] - rr).abs().max().item(),
                       (r - r2).abs().max().item())
        model.train()
    kinds = ("plain", "plain_nomask", "packed")
    for kind in kinds:
        step(batches[0], kind)
    times = {k: [] for k in kinds}
    tokens = {k: 0 for k in kinds}
    for i, examples in enumerate(batches[1:]):
        for name in kinds[i % 3:] + kinds[:i % 3]:  # rotate the order
            dt, n, _ = step(examples, name)
            times[name].append(dt)
            tokens[name] += n
        print(f"step {i + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in kinds), flush=True)
    P, C = args.prompt, args.call + 1
    res = {name: {"median_step_s": statistics.median(ts), "pairs_per_s": args.pairs_per_step / statistics.median(ts),
                  "tokens_per_step": tokens[name] / len(ts)} for name, ts in times.items()}
    ratio = res["packed"]["pairs_per_s"] / res["plain"]["pairs_per_s"]
    ratio_nomask = res["packed"]["pairs_per_s"] / res["plain_nomask"]["pairs_per_s"]
    limit = 2 * (P + C) / (P + 2 * C)
    out = {"args": vars(args), "max_abs_reward_diff": max_diff, **res, "ratio_packed_over_plain": ratio,
           "ratio_packed_over_plain_nomask": ratio_nomask, "token_limit": limit}
    print(json.dumps(out, indent=2))
    for k in kinds:
        print(f"{k:13s} {res[k]['pairs_per_s']:.2f} pairs/s ({res[k]['tokens_per_step']:.0f} tokens/step)")
    print(f"ratio packed/plain: {ratio:.2f}x, packed/plain_nomask: {ratio_nomask:.2f}x (token limit {limit:.2f}x); "
          f"max |reward diff| {max_diff:.2g}")


if __name__ == "__main__":
    main()
