"""Reward scoring engines side by side: our torch scorer (`model.engine: torch`) vs vLLM's pooling
runner (`model.engine: vllm`), the same model, the same rendered Best-of-N pools, one process.

Pools: held-out BFCL examples (`--categories`, default the non-live test categories) with
`--pool-size` candidates each from the mutation pool builder `fcrm eval bon --build-pools` uses
(correct forms and verified wrong calls). Both engines score every pool with `score_groups`, the
call eval, filter and serve make; the order of the two is alternated per repeat. Engine start
times are reported apart from scoring. Rewards are compared (max abs difference).

    python benchmarks/bench_scorer_engines.py --model runs/quickstart/rm --pools 64 --pool-size 8
    python benchmarks/bench_scorer_engines.py                  # a tiny random Qwen3 RM (head_dim 32)

The torch scorer shares each pool's prompt (one KV cache per pool) for causal LMs; vLLM's engine
has its own batching and prefix cache. On CPU both run fp32 here unless `--dtype` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import time


def pools(categories: list[str], n_pools: int, pool_size: int, seed: int = 0) -> list[tuple]:
    from fcrm_ray.data.quarantine import Quarantine
    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.evaluate.bon import mutation_pool

    out = []
    with Quarantine(None) as q:
        for ex in read_bfcl(categories, quarantine=q):
            cands = mutation_pool(ex, pool_size, 0.25, random.Random(f"{seed}-{ex.id}"))
            out.append(([t.to_dict() for t in ex.tools], ex.conversation, cands))
            if len(out) >= n_pools:
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="RM folder (default: a tiny random Qwen3 RM built here)")
    ap.add_argument("--categories", nargs="+", default=["simple_python", "multiple", "parallel", "parallel_multiple"])
    ap.add_argument("--pools", type=int, default=64)
    ap.add_argument("--pool-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from fcrm_ray.scoring import make_scorer

    model = args.model
    if not model:
        from fcrm_ray.models import build_tiny_qwen3_rm

        model = str(build_tiny_qwen3_rm(tempfile.mkdtemp() + "/rm", hidden_size=128))
    groups = pools(args.categories, args.pools, args.pool_size)
    n_rows = sum(len(g[2]) for g in groups)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu_name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    print(f"CPU: {cpu_name}; model {model}; {len(groups)} pools, {n_rows} candidates; dtype {args.dtype}", flush=True)

    scorers, start_s = {}, {}
    for engine in ("torch", "vllm"):
        t = time.perf_counter()
        scorers[engine] = make_scorer(model, engine=engine, max_length=args.max_length, dtype=args.dtype)
        start_s[engine] = time.perf_counter() - t
    times: dict[str, list[float]] = {e: [] for e in scorers}
    rewards: dict[str, list] = {}
    for rep in range(args.repeats):
        for engine in (("torch", "vllm") if rep % 2 == 0 else ("vllm", "torch")):
            t = time.perf_counter()
            rewards[engine] = scorers[engine].score_groups(groups)
            times[engine].append(time.perf_counter() - t)
    flat = {e: [x for g in r for x in g] for e, r in rewards.items()}
    diffs = [abs(a - b) for a, b in zip(flat["torch"], flat["vllm"]) if not (math.isnan(a) or math.isnan(b))]
    both_nan = sum(math.isnan(a) and math.isnan(b) for a, b in zip(flat["torch"], flat["vllm"]))
    best = {e: min(ts) for e, ts in times.items()}
    result = {
        "cpu": cpu_name, "model": model, "pools": len(groups), "candidates": n_rows, "dtype": args.dtype,
        "start_s": {e: round(v, 1) for e, v in start_s.items()},
        "score_s_best": {e: round(v, 2) for e, v in best.items()},
        "rows_per_s": {e: round(n_rows / v, 1) for e, v in best.items()},
        "vllm_over_torch": round(best["torch"] / best["vllm"], 2),
        "max_abs_diff": max(diffs) if diffs else None, "unscored_both": both_nan,
        "unscored_one_side": n_rows - len(diffs) - both_nan,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
