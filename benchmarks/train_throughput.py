"""Training throughput of `fcrm train` vs TRL's `RewardTrainer`: same model, data, machine and
precision, both sides timed with the same boundaries, one run each.

    python benchmarks/train_throughput.py [--pairs runs/bench] [--steps 24] [--batch 16] [--bf16]

Both trainers see the SAME token ids (our renderer + `tokenize_pair`, MiniLM tokenizer, max_length
384, min_prompt_tokens 32 as in `configs/train/cpu.yaml`) and the same hyper-parameters (batch of
pairs, AdamW, lr, linear schedule without warm-up, one epoch of exactly `--steps` batches, 2 torch
threads, one process, no dropout, no gradient checkpointing, a log record every step). TRL gets
pre-tokenised `chosen_ids`/`rejected_ids` and its defaults otherwise (random batches, no length
grouping, so each batch pads to its longest sequence); both concatenate chosen+rejected into one
forward, so the work differs in padding (fcrm length-groups its batches) and loop code. Precision: fp32 on both sides by
default (`train.autocast=none`, TRL `bf16=False`); `--bf16` runs both under bf16 autocast
(`train.autocast=bf16`, TRL `bf16=True`; fcrm keeps its reward head in fp32).

Two boundaries, measured the same way on both sides:
  (a) loop: from the END of step 1 to the end of the last step, i.e. steps 2..N, each "step end"
      taken right after the optimizer/scheduler step (fcrm: the `time` of each per-step record in
      `metrics.jsonl`, stamped after the step; TRL: a `TrainerCallback.on_step_end`). Step to step,
      so data collation, the loss/metric bookkeeping and per-step logging are inside on both
      sides; step 1 (warm-up: first kernels, allocator growth) is excluded on both and reported
      apart. Model load, tokenisation, Ray start, evaluation and saving are outside.
  (b) end to end: from the pair rows in memory (Python packages imported) to the trained model
      saved as a HF folder. fcrm: `run_training` (Ray start, pairs read from parquet and tokenised
      by Ray Data, worker start, model load, loop, checkpoint + HF save, reports); TRL: tokenizer
      load + `tokenize_pair`, model load, `Dataset`, `RewardTrainer(...)`, `train()`,
      `save_model()`.
Ray is shut down between the two runs, and its workers run at niceness 0 (`--ray-niceness`) like
the TRL process, so a shared machine does not starve one of the two. Printed: a table with both
boundaries side by side and the fcrm/TRL throughput ratio, the CPU model (`lscpu`), the load
average at start, between the runs and at the end, and the mean 1-minute load during each side's
loop (sampled every 5 s): the two run one after the other, so other jobs can load one and not the
other; compare ratios only from runs where those two means are close. Without `--pairs`, mutation
pairs are built from BFCL's live categories with `toolcall.mutate`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import threading
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
    """Up to n pair rows, normalised as `fcrm train` reads them back (ids assigned)."""
    from fcrm_ray.data.pairs import normalize_pair_row, read_pairs, stable_hash

    if not pairs:
        return [normalize_pair_row(r) for r in bfcl_mutation_pairs(n)]
    rows = read_pairs(pairs, split="train")
    return sorted(rows, key=lambda r: stable_hash(r["id"]))[:n]


def tokenize(rows: list[dict], model_path: str, max_length: int, min_prompt: int) -> list[tuple[dict, dict]]:
    """(row, tokenised) for the rows `fcrm train` would keep (status ok)."""
    from fcrm_ray.train.data import load_tokenizer, tokenize_pair

    tok = load_tokenizer(model_path)
    out = [(r, tokenize_pair(r, tok, max_length, min_prompt)) for r in rows]
    return [(r, t) for r, t in out if t["status"] == "ok"]


def loop_stats(begin: float, ends: list[float], tokens: list[int], batch: int) -> dict:
    """Boundary (a) from step-end timestamps: steps 2..N; step 1 (warm-up) reported apart."""
    seconds = ends[-1] - ends[0]
    pairs, toks = batch * (len(ends) - 1), sum(tokens[1:])
    return {"steps_timed": len(ends) - 1, "loop_seconds": seconds, "loop_end": ends[-1],
            "loop_pairs_per_s": pairs / seconds, "loop_tokens_per_s": toks / seconds,
            "first_step_seconds": ends[0] - begin,
            "step_seconds": [round(b - a, 3) for a, b in zip([begin, *ends[:-1]], ends)]}


def run_trl(rows: list[dict], model_path: str, batch: int, steps: int, lr: float, threads: int,
            max_length: int, min_prompt: int, bf16: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from fcrm_ray.models import init_reward_model

    class StepClock(TrainerCallback):
        """Wall time and TRL's own non-pad token counter at every optimizer step's end."""

        def __init__(self):
            self.trainer, self.begin, self.ends, self.tokens = None, 0.0, [], []

        def on_train_begin(self, args, state, control, **kw):
            self.begin = time.time()

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.time())
            self.tokens.append(int(self.trainer._total_train_tokens))

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        tokenized = [t for _, t in tokenize(rows, model_path, max_length, min_prompt)]
        model, tok = init_reward_model(model_path)
        ds = Dataset.from_list([{"chosen_ids": list(map(int, t["chosen_ids"])),
                                 "rejected_ids": list(map(int, t["rejected_ids"]))} for t in tokenized])
        args = RewardConfig(output_dir=d, per_device_train_batch_size=batch, max_steps=steps, learning_rate=lr,
                            lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
                            report_to="none", save_strategy="no", use_cpu=True, bf16=bf16, fp16=False,
                            dataloader_num_workers=0, max_length=None, seed=0, disable_tqdm=True,
                            # TRL's RewardConfig defaults to gradient checkpointing (recomputes the
                            # forward); off here, as in `fcrm train`'s CPU config, to compare loops
                            gradient_checkpointing=False)
        trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock])
        clock.trainer = trainer
        trainer.train()
        trainer.save_model(str(Path(d) / "model"))
        wall = time.time() - t0
    tokens = [b - a for a, b in zip([0, *clock.tokens[:-1]], clock.tokens)]
    if len(clock.ends) != steps:
        raise RuntimeError(f"TRL ran {len(clock.ends)} steps, expected {steps}")
    return {**loop_stats(clock.begin, clock.ends, tokens, batch), "end_to_end_seconds": wall,
            "precision": "bf16 autocast" if bf16 else "fp32"}


def run_fcrm(rows: list[dict], model_path: str, batch: int, steps: int, lr: float, threads: int,
             max_length: int, min_prompt: int, bf16: bool, strategy: str, extra: list[str] = ()) -> dict:
    import ray
    from omegaconf import OmegaConf

    from fcrm_ray.config import load_config
    from fcrm_ray.data.pairs import write_pairs
    from fcrm_ray.train.config import TrainConfig
    from fcrm_ray.train.run import run_training

    with tempfile.TemporaryDirectory() as d:
        write_pairs(rows, Path(d) / "pairs", "pairs", jsonl=False)
        # the CPU config without its train-subset keys (cap, balancing, source mix) and extra eval
        # splits: the benchmark trains on exactly its rows (a dotlist cannot remove dict keys)
        base = OmegaConf.load("configs/train/cpu.yaml")
        for key in ("max_train_rows", "balance_by", "source_weights", "extra_train_paths", "extra_eval_splits"):
            base.data.pop(key, None)
        OmegaConf.save(base, Path(d) / "cpu.yaml")
        cfg = load_config(TrainConfig, Path(d) / "cpu.yaml", [
            f"model.path={model_path}", f"data.train_path={Path(d) / 'pairs'}", "data.validation_split=none",
            "data.test_split=none", f"data.max_length={max_length}", f"data.min_prompt_tokens={min_prompt}",
            f"train.strategy={strategy}", f"train.autocast={'bf16' if bf16 else 'none'}",
            f"train.micro_batch_size={batch}", "train.gradient_accumulation_steps=1", f"train.max_steps={steps}",
            f"train.lr={lr}", "train.lr_scheduler=linear", "train.warmup_ratio=0", "train.eval_every=0",
            "train.log_every=1", f"train.num_threads={threads}", f"ckpt.storage_path={Path(d) / 'store'}",
            "ckpt.every_steps=0", "logging.wandb_mode=disabled", "scaling.num_workers=1",
            f"scaling.cpus_per_worker={threads}", *extra])
        t0 = time.time()
        cfg.out = str(Path(d) / "out")
        final = run_training(cfg)
        wall = time.time() - t0
        hist = [json.loads(x) for x in (Path(d) / "out" / "metrics.jsonl").read_text().splitlines()]
        kept = json.loads((Path(d) / "out" / "data_stats.json").read_text())["train"]["kept"]
    ray.shutdown()  # an idle cluster still takes CPU from the TRL run that follows
    logs = [h for h in hist if "train/pairs_per_s" in h]
    if len(logs) != steps or kept != len(rows):
        raise RuntimeError(f"fcrm logged {len(logs)} steps of {steps}, kept {kept} of {len(rows)} pairs")
    # log_every=1: each record's window runs from the previous record (or the loop's start) to
    # this step's end, and its `time` is stamped right after the step
    window = [batch / h["train/pairs_per_s"] for h in logs]
    tokens = [round(h["train/tokens_per_s"] * w) for h, w in zip(logs, window)]
    ends = [h["time"] for h in logs]
    return {**loop_stats(ends[0] - window[0], ends, tokens, batch), "end_to_end_seconds": wall,
            "precision": final.get("precision", {}).get("reason", "?")}


def cpu_model() -> str:
    """lscpu's model name, with family/model (a VM may show only "AMD EPYC") and bf16 support."""
    fields = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    bf16 = ", AVX512-BF16" if "avx512_bf16" in fields.get("Flags", "").split() else ""
    return (f"{fields.get('Model name', '?')} (family {fields.get('CPU family', '?')} model {fields.get('Model', '?')}"
            f"{bf16}, {fields.get('CPU(s)', '?')} CPUs)")


def load_avg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class LoadSampler(threading.Thread):
    """1-minute load average every `every` s, so each side's loop can be paired with the load it
    ran under (other jobs on a shared machine can change between the two runs)."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), os.getloadavg()[0]))
            self.stop.wait(self.every)

    def mean_between(self, t0: float, t1: float) -> float | None:
        xs = [x for t, x in self.samples if t0 <= t <= t1]
        return round(sum(xs) / len(xs), 2) if xs else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", help="pair dir/file (split=train rows are used); default: BFCL live mutation pairs")
    p.add_argument("--model", default="pkg:minilm")
    p.add_argument("--steps", type=int, default=24, help="optimizer steps per trainer (step 1 is not timed)")
    p.add_argument("--batch", type=int, default=16, help="pairs per step")
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--min-prompt-tokens", type=int, default=32,
                   help="as data.min_prompt_tokens in configs/train/cpu.yaml")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="both under bf16 autocast (default: both fp32)")
    p.add_argument("--strategy", default="single", choices=["single", "deepspeed"])
    p.add_argument("--fcrm-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra `fcrm train` overrides, e.g. model.disable_dropout=false")
    p.add_argument("--ray-niceness", type=int, default=0,
                   help="niceness of Ray worker processes (Ray's default is 15; TRL runs in this process at 0)")
    p.add_argument("--json-out", help="also write the result here")
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be >= 2 (step 1 is warm-up and not timed)")
    if args.bf16 and args.strategy == "deepspeed":
        p.error("--bf16 is autocast for strategy single; DeepSpeed sets its own precision")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at niceness 15. On a shared machine that alone loses the CPU to any
    # niceness-0 process, while TRL runs here at niceness 0: equal niceness compares the trainers.
    # (Read by the raylet this script starts; a running cluster keeps its own setting.)
    os.environ.setdefault("RAY_worker_niceness", str(args.ray_niceness))
    import datasets  # noqa: F401  imported before any clock starts: (b) excludes import time on both sides
    import ray  # noqa: F401
    import trl  # noqa: F401

    from fcrm_ray.paths import resolve_model_path

    cpu, load = cpu_model(), {"start": load_avg()}
    model = resolve_model_path(args.model)
    n = args.steps * args.batch
    # a margin for pairs whose call alone does not fit max_length (dropped by both trainers)
    kept = tokenize(load_rows(args.pairs, n + n // 4 + args.batch), model, args.max_length, args.min_prompt_tokens)
    if len(kept) < n:
        raise SystemExit(f"only {len(kept)} usable pairs for {args.steps} steps of {args.batch}")
    rows = [r for r, _ in kept[:n]]
    mean_len = sum(len(t["chosen_ids"]) + len(t["rejected_ids"]) for _, t in kept[:n]) / (2 * n)
    truncated = sum(t["truncated"] for _, t in kept[:n])
    print(f"data: {n} pairs, mean {mean_len:.0f} tokens/sequence, {truncated} truncated at {args.max_length}; "
          f"{args.steps} steps of {args.batch}; CPU {cpu}; load average {load['start']}", flush=True)
    common = dict(batch=args.batch, steps=args.steps, lr=args.lr, threads=args.threads, max_length=args.max_length,
                  min_prompt=args.min_prompt_tokens, bf16=args.bf16)
    sampler = LoadSampler()
    sampler.start()
    ours = run_fcrm(rows, model, strategy=args.strategy, extra=args.fcrm_set, **common)
    load["between"] = load_avg()
    theirs = run_trl(rows, model, **common)
    load["end"] = load_avg()
    sampler.stop.set()
    for r in (ours, theirs):  # step-end times are wall-clock (time.time()) on both sides
        r["mean_load1_during_loop"] = sampler.mean_between(r["loop_end"] - r["loop_seconds"], r["loop_end"])
    e2e = {k: n / r["end_to_end_seconds"] for k, r in (("fcrm", ours), ("trl", theirs))}
    result = {"cpu": cpu, "load_average_1_5_15": load, "steps": args.steps, "batch": args.batch,
              "mean_tokens_per_sequence": mean_len, "truncated_pairs": truncated, "threads": args.threads,
              "precision": "bf16 autocast" if args.bf16 else "fp32", "strategy": args.strategy,
              "fcrm_overrides": args.fcrm_set, "ray_worker_niceness": os.environ["RAY_worker_niceness"],
              "fcrm": ours, "trl": theirs,
              "ratio_loop_pairs_per_s": ours["loop_pairs_per_s"] / theirs["loop_pairs_per_s"],
              "ratio_loop_tokens_per_s": ours["loop_tokens_per_s"] / theirs["loop_tokens_per_s"],
              "ratio_end_to_end_pairs_per_s": e2e["fcrm"] / e2e["trl"]}
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    loop, ou, th = f"(a) loop, steps 2-{args.steps}:", ours, theirs
    rows_out = [
        (f"{loop} pairs/s", ou["loop_pairs_per_s"], th["loop_pairs_per_s"], ".2f", True),
        (f"{loop} non-pad tokens/s", ou["loop_tokens_per_s"], th["loop_tokens_per_s"], ".0f", True),
        (f"{loop} seconds", ou["loop_seconds"], th["loop_seconds"], ".1f", False),
        ("step 1 (warm-up, not in (a)): seconds", ou["first_step_seconds"], th["first_step_seconds"], ".1f", False),
        (f"(b) end to end, {n} pairs: seconds", ou["end_to_end_seconds"], th["end_to_end_seconds"], ".1f", False),
        ("(b) end to end: pairs/s", e2e["fcrm"], e2e["trl"], ".2f", True),
    ]
    print(f"\nCPU: {cpu}; {args.threads} torch threads; {result['precision']} on both sides; "
          f"load average (1/5/15 min) start {load['start']}, between {load['between']}, end {load['end']}; "
          f"mean 1-min load during (a): fcrm {ours['mean_load1_during_loop']}, TRL {theirs['mean_load1_during_loop']}")
    print(f"{'boundary':44} {'fcrm train':>11} {'TRL':>9} {'fcrm/TRL':>9}")
    for name, a, b, fmt, rate in rows_out:  # ratio of throughputs only (higher = fcrm faster)
        print(f"{name:44} {a:>11{fmt}} {b:>9{fmt}} " + (f"{a / b:>8.2f}x" if rate else ""))


if __name__ == "__main__":
    main()
