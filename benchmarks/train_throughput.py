"""Training throughput of `fcrm train` vs TRL's `RewardTrainer`: same model, data, machine, one run.

    python benchmarks/train_throughput.py --pairs runs/bench [--n-pairs 256] [--batch 16]

Both trainers see the SAME token ids (our renderer + `tokenize_pair`, MiniLM tokenizer, max_length
384) and the same hyper-parameters (batch of pairs, AdamW, lr, fp32, 2 torch threads, one process).
TRL gets pre-tokenised `chosen_ids`/`rejected_ids` and its defaults otherwise (random batches, no
length grouping) except gradient checkpointing, which RewardConfig turns on by default and which is
switched off here as in our CPU config; TRL also concatenates chosen+rejected into one forward, so
the difference is padding (length-grouped batches) and loop overhead. Both train without dropout
(TRL's `disable_dropout=True`, our `model.disable_dropout=true`), and Ray's workers run at the
driver's niceness 0 (`--ray-niceness`), so a shared machine does not starve one of the two.

Reported: pairs/s and tokens/s (non-pad tokens) of the training loop of each, their ratio, and the
end-to-end wall time of `fcrm train` (Ray start, Ray Data tokenisation, model load, final save).
Without `--pairs`, mutation pairs are built from BFCL's live categories with `toolcall.mutate`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path


def bfcl_mutation_pairs(limit: int, seed: int = 0) -> list[dict]:
    from fcrm_ray.data.pairs import stable_hash
    from fcrm_ray.paths import BFCL_LIVE, bfcl_data_dir
    from fcrm_ray.toolcall.mutate import chosen_variants, mutate_all
    from fcrm_ray.toolcall.schema import Example, normalize_tools, reference_from_bfcl

    d, rows = bfcl_data_dir(), []
    for cat in BFCL_LIVE:
        answers = {}
        for line in open(d / "possible_answer" / f"BFCL_v4_{cat}.json"):
            a = json.loads(line)
            answers[a["id"]] = a["ground_truth"]
        for line in open(d / f"BFCL_v4_{cat}.json"):
            raw = json.loads(line)
            if raw["id"] not in answers:
                continue
            ex = Example(raw["id"], normalize_tools(raw["function"]), raw["question"][0],
                         reference_from_bfcl(answers[raw["id"]]), "bfcl", cat)
            rng = random.Random(stable_hash(raw["id"], seed))
            chosen = chosen_variants(ex, rng, 1)
            for m in mutate_all(ex, rng)[:2]:
                if chosen:
                    rows.append({"example_id": ex.id, "category": cat, "tools": [t.to_dict() for t in ex.tools],
                                 "conversation": ex.conversation, "chosen_output": chosen[0],
                                 "rejected_output": m.text, "error_type": m.error_type,
                                 "generator": f"mutation:{m.kind}", "split": "train"})
    random.Random(seed).shuffle(rows)
    return rows[:limit]


def load_rows(pairs: str | None, n: int) -> list[dict]:
    from fcrm_ray.data.pairs import read_pairs, stable_hash

    if not pairs:
        return bfcl_mutation_pairs(n)
    rows = read_pairs(pairs, split="train")
    return sorted(rows, key=lambda r: stable_hash(r["id"]))[:n]


def tokenize(rows: list[dict], model_path: str, max_length: int) -> list[dict]:
    from fcrm_ray.train.data import load_tokenizer, tokenize_pair

    tok = load_tokenizer(model_path)
    out = [tokenize_pair(r, tok, max_length) for r in rows]
    return [o for o in out if o["status"] == "ok"]


def run_trl(tokenized: list[dict], model_path: str, batch: int, steps: int, lr: float, threads: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from fcrm_ray.models import init_reward_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, tok = init_reward_model(model_path)
    ds = Dataset.from_list([{"chosen_ids": list(map(int, t["chosen_ids"])), "rejected_ids": list(map(int, t["rejected_ids"]))}
                            for t in tokenized])
    with tempfile.TemporaryDirectory() as d:
        args = RewardConfig(output_dir=d, per_device_train_batch_size=batch, max_steps=steps, learning_rate=lr,
                            lr_scheduler_type="linear", warmup_steps=0, logging_steps=max(1, steps // 4),
                            report_to="none", save_strategy="no", use_cpu=True, bf16=False, fp16=False,
                            dataloader_num_workers=0, max_length=None, seed=0, disable_tqdm=True,
                            # TRL's RewardConfig defaults to gradient checkpointing (recomputes the
                            # forward); off here, as in `fcrm train`'s CPU config, to compare loops
                            gradient_checkpointing=False)
        trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        t0 = time.perf_counter()
        trainer.train()
        dt = time.perf_counter() - t0
    # tokens actually consumed: TRL's own counter (non-pad tokens of the batches it drew)
    tokens = int(trainer._total_train_tokens)
    return {"pairs": steps * batch, "seconds": dt, "pairs_per_s": steps * batch / dt, "tokens_per_s": tokens / dt}


def run_fcrm(rows: list[dict], model_path: str, batch: int, steps: int, lr: float, threads: int,
             max_length: int, strategy: str, extra: list[str] = ()) -> dict:
    from fcrm_ray.config import load_config
    from fcrm_ray.data.pairs import write_pairs
    from fcrm_ray.train.config import TrainConfig
    from fcrm_ray.train.recipe import run_training

    with tempfile.TemporaryDirectory() as d:
        write_pairs(rows, Path(d) / "pairs", "pairs", jsonl=False)
        cfg = load_config(TrainConfig, "configs/train/cpu.yaml", [
            f"model.path={model_path}", f"data.train_path={Path(d) / 'pairs'}", "data.validation_split=none",
            "data.test_split=none", f"data.max_length={max_length}", f"train.strategy={strategy}",
            f"train.micro_batch_size={batch}", "train.gradient_accumulation_steps=1", f"train.max_steps={steps}",
            f"train.lr={lr}", "train.warmup_ratio=0", "train.eval_every=0", "train.log_every=1",
            f"train.num_threads={threads}", f"ckpt.storage_path={Path(d) / 'store'}", "ckpt.every_steps=0",
            "logging.wandb_mode=disabled", "scaling.num_workers=1", f"scaling.cpus_per_worker={threads}", *extra])
        t0 = time.perf_counter()
        run_training(cfg, str(Path(d) / "out"))
        wall = time.perf_counter() - t0
        hist = [json.loads(x) for x in (Path(d) / "out" / "metrics.jsonl").read_text().splitlines()]
    logs = [h for h in hist if "train/pairs_per_s" in h]
    # per-step windows (log_every=1): loop time = sum of window durations
    seconds = sum(batch / h["train/pairs_per_s"] for h in logs)
    tokens = sum(h["train/tokens_per_s"] * batch / h["train/pairs_per_s"] for h in logs)
    return {"pairs": batch * len(logs), "seconds": seconds, "pairs_per_s": batch * len(logs) / seconds,
            "tokens_per_s": tokens / seconds, "end_to_end_seconds": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", help="pair dir/file (split=train rows are used); default: BFCL live mutation pairs")
    p.add_argument("--model", default="pkg:minilm")
    p.add_argument("--n-pairs", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strategy", default="single", choices=["single", "deepspeed"])
    p.add_argument("--fcrm-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra `fcrm train` overrides, e.g. model.disable_dropout=false")
    p.add_argument("--ray-niceness", type=int, default=0,
                   help="niceness of Ray worker processes (Ray's default is 15; TRL runs in this process at 0)")
    args = p.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at niceness 15. On a shared machine that alone loses the CPU to any
    # niceness-0 process, while TRL runs here at niceness 0: equal niceness compares the trainers.
    # (Read by the raylet this script starts; a running cluster keeps its own setting.)
    os.environ.setdefault("RAY_worker_niceness", str(args.ray_niceness))
    from fcrm_ray.paths import resolve_model_path

    model = resolve_model_path(args.model)
    rows = load_rows(args.pairs, args.n_pairs)
    tokenized = tokenize(rows, model, args.max_length)
    steps = len(tokenized) // args.batch
    mean_len = sum(len(t["chosen_ids"]) + len(t["rejected_ids"]) for t in tokenized) / (2 * len(tokenized))
    print(f"data: {len(rows)} pairs, {len(tokenized)} usable, mean {mean_len:.0f} tokens/sequence, {steps} steps of {args.batch}")
    ours = run_fcrm(rows, model, args.batch, steps, args.lr, args.threads, args.max_length, args.strategy,
                    args.fcrm_set)
    trl = run_trl(tokenized, model, args.batch, steps, args.lr, args.threads)
    result = {"fcrm": ours, "trl": trl, "ratio_pairs_per_s": ours["pairs_per_s"] / trl["pairs_per_s"],
              "ratio_tokens_per_s": ours["tokens_per_s"] / trl["tokens_per_s"], "steps": steps, "batch": args.batch,
              "mean_tokens_per_sequence": mean_len, "strategy": args.strategy, "fcrm_overrides": args.fcrm_set,
              "ray_worker_niceness": os.environ["RAY_worker_niceness"]}
    print(json.dumps(result, indent=2))
    print(f"fcrm train ({args.strategy}) loop: {ours['pairs_per_s']:.2f} pairs/s, {ours['tokens_per_s']:.0f} tokens/s "
          f"(end to end incl. Ray/tokenise/load/save: {ours['end_to_end_seconds']:.0f} s)")
    print(f"TRL RewardTrainer:      {trl['pairs_per_s']:.2f} pairs/s, {trl['tokens_per_s']:.0f} tokens/s")
    print(f"ratio fcrm/TRL: {result['ratio_pairs_per_s']:.2f}x pairs/s")


if __name__ == "__main__":
    main()
