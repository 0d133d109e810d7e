"""Best-of-N scoring throughput: shared-prefix `RewardScorer` vs plain HF full-sequence scoring.

A BoN pool is one prompt (tool catalog + conversation, P tokens) and N candidate calls (~S tokens
each). Plain HF scoring — what TRL, OpenRLHF or a hand-written loop do — runs N sequences of P+S
tokens. `RewardScorer.score_shared_prefix` runs the prompt once and N suffixes against its KV
cache: P + N*S tokens. The token ratio N*(P+S) / (P+N*S) is the limit of the speedup (attention
over the prefix is still paid per suffix token, so the achieved ratio sits a little below it).

Both paths score the same random token ids with the same model in the same process, interleaved
repeat by repeat, so the ratio is measured side by side even on a noisy shared machine. Scores are
compared too (max abs difference).

    python benchmarks/bench_scoring.py --n 4 8 16 --prefix 1500 --suffix 50 --repeats 3

Model: random-init Qwen3ForSequenceClassification (`fcrm_ray.models.build_tiny_qwen3_rm`), 4 layers,
hidden 256 (4 heads of 64, 2 KV heads), MLP 768 (Qwen3's 3x; `--mlp-ratio 2` for the test builder's
512), fp32 on CPU. Such a small model spends a larger share of its FLOPs in attention than a real
one (attention over a 1.5k prefix is paid again by every suffix token), so it is a conservative
setting for the speedup.

Baselines: "padded" = the N full sequences as one right-padded batch through the model's forward
(TRL/OpenRLHF-style); "unpadded" = one full sequence per forward (no padding, causal kernel; the
strongest plain loop on CPU). Shared prefix: "packed" (default) and "batched" modes of
`RewardScorer.score_shared_prefix`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time


def plain_hf_scores(model, pad_id: int, prefix: list[int], suffixes: list[list[int]], batch_size: int) -> list[float]:
    """Baseline 1 (what TRL/OpenRLHF do): full sequences in right-padded batches, the model's own
    forward. Candidates differ in length, so there is padding, so attention runs with an explicit
    mask over the whole (P+S)^2 square instead of torch's causal kernel."""
    import torch

    out = []
    seqs = [prefix + s for s in suffixes]
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i:i + batch_size]
        width = max(map(len, chunk))
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in chunk])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk])
        with torch.inference_mode():
            out += model(input_ids=ids, attention_mask=mask).logits.reshape(-1).tolist()
    return out


def plain_hf_unpadded(model, prefix: list[int], suffixes: list[list[int]]) -> list[float]:
    """Baseline 2 (the strongest plain loop on CPU): one unpadded full sequence per forward, so
    attention takes torch's causal (is_causal) kernel and no token is padding."""
    import torch

    with torch.inference_mode():
        return [model(input_ids=torch.tensor([prefix + s])).logits.reshape(-1)[0].item() for s in suffixes]


def flop_limit(cfg, n: int, P: int, S: int) -> float:
    """Speedup limit in FLOPs (not tokens): attention makes a token's cost grow with its context,
    and every suffix token attends to the whole prefix, so this sits below the token limit."""
    h, d = cfg.hidden_size, cfg.head_dim
    hq, hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    per_token = h * hq * d * 2 + 2 * h * hkv * d + 3 * h * cfg.intermediate_size  # q,o + k,v + MLP
    per_pair = 2 * hq * d  # q.k and the weighted sum of v
    full = n * ((P + S) * per_token + per_pair * (P + S) * (P + S + 1) / 2)
    shared = (P + n * S) * per_token + per_pair * (P * (P + 1) / 2 + n * S * P + n * S * (S + 1) / 2)
    return full / shared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8, 16], help="candidates per pool")
    ap.add_argument("--prefix", type=int, default=1500, help="prompt tokens P")
    ap.add_argument("--suffix", type=int, default=50, help="mean candidate tokens S (uniform S-10..S+10)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per N (median reported)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--mlp-ratio", type=int, default=3, help="intermediate_size / hidden (Qwen3-0.6B: 3072/1024 = 3)")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences/candidates per forward, both paths")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: steadier numbers on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from fcrm_ray.models import build_tiny_qwen3_rm
    from fcrm_ray.scoring import RewardScorer

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen3_rm(f"{tmp}/rm", hidden_size=args.hidden, num_layers=args.layers, seed=args.seed)
        if args.mlp_ratio != 2:  # the test builder uses 2x; re-initialise with Qwen3's MLP width
            from transformers import AutoConfig, Qwen3ForSequenceClassification

            cfg = AutoConfig.from_pretrained(path)
            cfg.intermediate_size = args.mlp_ratio * args.hidden
            torch.manual_seed(args.seed)
            Qwen3ForSequenceClassification(cfg).save_pretrained(path)
        scorer = RewardScorer(str(path), batch_size=args.batch_size, max_length=args.prefix + args.suffix + 64)
    if not scorer.shared_prefix:
        print("shared-prefix path unavailable for this model", file=sys.stderr)
        return 1
    model, pad = scorer.model, scorer.pad_id
    vocab = [i for i in range(model.config.vocab_size) if i != pad]

    # warm-up (first-call allocations, thread pools) on a small pool
    warm = [rng.choice(vocab) for _ in range(200)]
    plain_hf_scores(model, pad, warm, [[rng.choice(vocab)] * 5] * 2, args.batch_size)
    scorer.score_shared_prefix(warm, [[rng.choice(vocab)] * 5] * 2)

    paths = {
        "padded": lambda prefix, sufs: plain_hf_scores(model, pad, prefix, sufs, args.batch_size),
        "unpadded": lambda prefix, sufs: plain_hf_unpadded(model, prefix, sufs),
        "packed": lambda prefix, sufs: scorer.score_shared_prefix(prefix, sufs, mode="packed"),
        "batched": lambda prefix, sufs: scorer.score_shared_prefix(prefix, sufs, mode="batched"),
    }
    rows = []
    for n in args.n:
        wall = {k: [] for k in paths}
        cpu = {k: [] for k in paths}
        diff = 0.0
        for rep in range(args.repeats):
            prefix = [rng.choice(vocab) for _ in range(args.prefix)]
            suffixes = [[rng.choice(vocab) for _ in range(rng.randint(args.suffix - 10, args.suffix + 10))]
                        for _ in range(n)]
            # rotate which path goes first so drift in machine load hits all of them equally
            names = list(paths)
            names = names[rep % len(names):] + names[:rep % len(names)]
            res = {}
            for name in names:
                w0, c0 = time.perf_counter(), time.process_time()
                res[name] = paths[name](prefix, suffixes)
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
            diff = max(diff, *(abs(a - b) for k in ("padded", "unpadded", "batched")
                               for a, b in zip(res[k], res["packed"])))
        w = {k: statistics.median(v) for k, v in wall.items()}
        c = {k: statistics.median(v) for k, v in cpu.items()}
        limit = n * (args.prefix + args.suffix) / (args.prefix + n * args.suffix)
        flops = flop_limit(model.config, n, args.prefix, args.suffix)
        rows.append((n, w, c, limit, flops, diff))
        print(f"N={n}: CPU-time speedup of packed vs padded {c['padded'] / c['packed']:.2f}x, vs unpadded "
              f"{c['unpadded'] / c['packed']:.2f}x (batched {c['unpadded'] / c['batched']:.2f}x); wall-clock "
              f"{w['padded'] / w['packed']:.2f}x / {w['unpadded'] / w['packed']:.2f}x; token limit {limit:.2f}x, "
              f"FLOP limit {flops:.2f}x; "
              f"max|diff| {diff:.1e}", flush=True)

    print(f"\nP={args.prefix}, S={args.suffix}±10, {args.layers} layers, hidden {args.hidden}, MLP "
          f"{args.mlp_ratio}x hidden, fp32, CPU, torch threads={args.threads}, batch size {args.batch_size}, "
          f"median of {args.repeats} rotated repeats. Throughput is candidates per CPU-second of this process "
          "(steadier than wall clock when other jobs share the cores); wall-clock speedups in the last column.\n")
    print("| N | plain HF padded cand/s | plain HF unpadded cand/s | shared-prefix packed cand/s | batched cand/s "
          "| packed vs padded | packed vs unpadded | token limit N(P+S)/(P+NS) | FLOP limit "
          "| packed vs unpadded, % of token / FLOP limit | wall: packed vs padded / unpadded | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, w, c, limit, flops, d in rows:
        sp = c["unpadded"] / c["packed"]
        print(f"| {n} | {n / c['padded']:.2f} | {n / c['unpadded']:.2f} | {n / c['packed']:.2f} "
              f"| {n / c['batched']:.2f} "
              f"| {c['padded'] / c['packed']:.2f}x | {sp:.2f}x | {limit:.2f}x | {flops:.2f}x "
              f"| {100 * sp / limit:.0f}% / {100 * sp / flops:.0f}% "
              f"| {w['padded'] / w['packed']:.2f}x / {w['unpadded'] / w['packed']:.2f}x | {d:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
