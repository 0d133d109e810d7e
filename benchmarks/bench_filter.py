"""Benchmarks of `fcrm filter` (CPU; numbers go to RESULTS_serve_filter.md).

    python benchmarks/bench_filter.py --parts efficiency --rows 2000 --model tiny
    python benchmarks/bench_filter.py --parts efficiency --rows 300 --model minilm
    python benchmarks/bench_filter.py --parts memory --rows 10000 100000 --model tiny

Corpus: a synthetic tool-call SFT corpus from BFCL single-turn examples + verified mutations
(`toolcall.mutate.mutate_all`): each example gives its correct call and its mutated calls, written
round-robin as OpenAI `messages`, xLAM and ShareGPT rows, repeated under new ids up to `--rows`,
streamed to JSONL (never held whole in memory).

1. efficiency: rows/s of the full job (`filter_run.run`: plan, Ray Data extract -> actor-pool
   scoring -> atomic shard writes, policy, stats) vs the bare loop in one process over the same
   rows (read, `extract_row`, render, `RewardScoringActor` on the same batches, no Ray, no writes).
   ratio = job rows/s / loop rows/s. Job time includes Ray Data start-up and actor start-up.
2. memory: peak RSS of the driver and peak private memory (RSS - shared, so object-store pages are
   not counted once per process) summed over the driver and every Ray process it started, sampled
   every 0.2 s, at 10k vs 100k rows. Bounded by shard/batch size, it must not grow ~10x.

Models: `tiny` = `models.build_tiny_bert_rm` (random-init, 2 layers; measures the pipeline, not
the model); `minilm` = all-MiniLM-L6-v2 with a fresh scalar head (`models.init_reward_model`),
the real CPU model's forward cost. Each measured run is a fresh subprocess with its own local Ray
(`ray.num_cpus=2`). Timings are wall clock on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple"]


def _tc(c) -> dict:
    return {"type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}


def corpus_rows(seed: int = 0):
    """Endless stream of corpus rows (dicts) in three formats, correct and mutated calls."""
    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.toolcall.mutate import mutate_all

    rng = random.Random(seed)
    base = []
    for ex in read_bfcl(CATEGORIES):
        calls = [r.canonical_call() for r in ex.reference]
        variants = [calls] + [m.calls for m in mutate_all(ex, rng) if m.calls]
        base.append((ex, variants))
    for rep in itertools.count():
        for e, (ex, variants) in enumerate(base):
            for j, cs in enumerate(variants):
                rid = f"{ex.id}-{j}-r{rep}"
                kind = (e + j + rep) % 3
                user = next((m["content"] for m in reversed(ex.conversation) if m.get("role") == "user"), "")
                if kind == 0:
                    yield {"id": rid, "source": "synthetic-openai", "tools": [t.to_openai() for t in ex.tools],
                           "messages": ex.conversation + [{"role": "assistant", "content": "",
                                                           "tool_calls": [_tc(c) for c in cs]}]}
                elif kind == 1:
                    yield {"id": rid, "source": "synthetic-xlam", "query": user,
                           "tools": json.dumps([t.to_dict() for t in ex.tools]),
                           "answers": json.dumps([c.to_dict() for c in cs])}
                else:
                    yield {"id": rid, "source": "synthetic-sharegpt", "tools": json.dumps([t.to_dict() for t in ex.tools]),
                           "conversations": [{"from": "human", "value": user},
                                             {"from": "function_call", "value": json.dumps([c.to_dict() for c in cs])}]}


def write_corpus(path: Path, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for row in itertools.islice(corpus_rows(seed), n):
            fh.write(json.dumps(row) + "\n")
    return path


def build_model(kind: str, out: Path) -> str:
    if (out / "config.json").is_file():
        return str(out)
    if kind == "tiny":
        from fcrm_ray.models import build_tiny_bert_rm

        return str(build_tiny_bert_rm(out))
    from fcrm_ray.models import init_reward_model

    model, tok = init_reward_model("pkg:minilm")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


# --- measured runs (each in a fresh subprocess) --------------------------------------------------

def _sampler(stop: threading.Event, peaks: dict) -> None:
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        total_priv, driver = 0, 0
        try:
            driver = me.memory_info().rss
            for p in [me] + me.children(recursive=True):
                try:
                    mi = p.memory_info()
                    total_priv += mi.rss - getattr(mi, "shared", 0)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peaks["driver_rss"] = max(peaks.get("driver_rss", 0), driver)
        peaks["total_private"] = max(peaks.get("total_private", 0), total_priv)
        stop.wait(0.2)


def run_job(corpus: str, model: str, out: str, batch_size: int, shard_rows: int) -> dict:
    from fcrm_ray.config import load_config
    from fcrm_ray.filter import run as filter_run
    from fcrm_ray.filter.config import FilterConfig

    cfg = load_config(FilterConfig, None, [
        f"input.path={corpus}", f"out={out}", f"model.path={model}", f"model.batch_size={batch_size}", f"actors.batch_size={batch_size}",
        f"input.shard_rows={shard_rows}", "model.max_length=256", "ray.num_cpus=2", "actors.num_cpus_per_actor=1",
        "policy.kind=top_fraction", "policy.fraction=0.5"])
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    peaks: dict = {}
    stop = threading.Event()
    th = threading.Thread(target=_sampler, args=(stop, peaks), daemon=True)
    th.start()
    t0 = time.perf_counter()
    stats = filter_run.run(cfg)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    ray.shutdown()
    return {"wall_s": wall, "rows_in": stats["rows_in"], "units_in": stats["units_in"], "kept": stats["kept"],
            "dropped": stats["dropped"], "quarantined": stats["quarantined"],
            "driver_peak_rss_mb": peaks.get("driver_rss", 0) / 2**20,
            "total_peak_private_mb": peaks.get("total_private", 0) / 2**20}


def run_loop(corpus: str, model: str, batch_size: int) -> dict:
    """The bare loop: same rows, same extraction, rendering and scoring call, one process."""
    import torch

    from fcrm_ray.filter.extract import extract_row
    from fcrm_ray.filter.run import plan_shards, read_shard
    from fcrm_ray.scoring import RewardScoringActor
    from fcrm_ray.toolcall.render import render

    torch.set_num_threads(1)  # the job's one actor has num_cpus=1 (Ray sets OMP threads to 1)
    actor = RewardScoringActor(model, batch_size=batch_size, max_length=256)
    tok = actor.scorer.tokenizer
    t0 = time.perf_counter()
    rows = units = 0
    prompts, completions = [], []
    for shard in plan_shards(corpus, 10**9):
        for i, row in read_shard(shard):
            rows += 1
            if isinstance(row, str):
                continue
            us, _ = extract_row(row, row_id=str(i), index=i)
            for u in us:
                r = render(tok, u["tools"], u["conversation"], u["candidate"])
                prompts.append(r.prompt)
                completions.append(r.completion)
                units += 1
                if len(prompts) == batch_size:
                    actor({"prompt": prompts, "completion": completions})
                    prompts, completions = [], []
    if prompts:
        actor({"prompt": prompts, "completion": completions})
    return {"wall_s": time.perf_counter() - t0, "rows_in": rows, "units": units}


def _subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--_worker", *args], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", nargs="+", default=["efficiency", "memory"])
    ap.add_argument("--rows", nargs="+", type=int, default=None)
    ap.add_argument("--model", default="tiny", choices=["tiny", "minilm"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--shard-rows", type=int, default=2000)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--_worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._worker:
        kind, *rest = a._worker
        if kind == "job":
            print(json.dumps(run_job(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))))
        else:
            print(json.dumps(run_loop(rest[0], rest[1], int(rest[2]))))
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_filter_"))
    model = build_model(a.model, work / f"model-{a.model}")
    results = {"model": a.model, "batch_size": a.batch_size, "shard_rows": a.shard_rows}
    if "efficiency" in a.parts:
        n = (a.rows or [2000])[0]
        corpus = write_corpus(work / f"corpus-{n}.jsonl", n)
        loop = _subprocess(["loop", str(corpus), model, str(a.batch_size)])
        job = _subprocess(["job", str(corpus), model, str(work / f"out-eff-{n}-{time.time_ns()}"), str(a.batch_size),
                           str(a.shard_rows)])
        results["efficiency"] = {"rows": n, "units": loop["units"], "loop_rows_per_s": n / loop["wall_s"],
                                 "job_rows_per_s": n / job["wall_s"], "ratio": loop["wall_s"] / job["wall_s"],
                                 "loop_s": loop["wall_s"], "job_s": job["wall_s"], "job": job}
        print(json.dumps(results["efficiency"], indent=1), flush=True)
    if "memory" in a.parts:
        results["memory"] = []
        for n in a.rows or [10_000, 100_000]:
            corpus = write_corpus(work / f"corpus-{n}.jsonl", n)
            job = _subprocess(["job", str(corpus), model, str(work / f"out-mem-{n}-{time.time_ns()}"), str(a.batch_size),
                               str(a.shard_rows)])
            job["rows"] = n
            job["rows_per_s"] = n / job["wall_s"]
            results["memory"].append(job)
            print(json.dumps(job, indent=1), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
