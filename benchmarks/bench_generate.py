"""Benchmarks of `fcrm generate` with the `mutation` backend (CPU; numbers go to RESULTS_generate.md).

    python benchmarks/bench_generate.py                    # all three parts
    python benchmarks/bench_generate.py --parts throughput --generators 10
    python benchmarks/bench_generate.py --parts memory --rows 10000 100000

1. throughput: all BFCL single-turn examples x N mutation generators (different seeds and mixes)
   through the full pipeline; work units (example x generator) per second and pairs per second.
2. memory: the same pipeline over 10k vs 100k input rows (BFCL examples repeated under new ids,
   streamed from a Parquet file); peak RSS of the driver and peak private memory (RSS - shared, so
   the object store's shared pages are not counted once per process) summed over the driver and
   every Ray process it started, sampled every 0.2 s. Streaming means it must not grow with rows.
3. overhead: the same mutation + judge + dedup work as a plain Python loop vs through Ray Data
   (same examples, one generator); ratio = pipeline time / loop time.

Each measured run is a fresh subprocess with its own local Ray (`ray.num_cpus=2`), so peak
memory and start-up are not shared between runs. Timings are wall clock on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIXES = [  # ten mutation generators: different seeds and error-type mixes
    {},
    {"incorrect_parameter_value": 2, "incorrect_function_name": 1},
    {"incorrect_function_name": 2, "incorrect_number_of_functions": 1},
    {"missing_required_parameter": 1, "missing_optional_parameter": 1, "unexpected_parameter": 1},
    {"incorrect_parameter_type": 2, "incorrect_output_format": 1},
    {"incorrect_parameter_value": 3},
    {"incorrect_number_of_functions": 2, "unexpected_parameter": 1},
    {"incorrect_parameter_value": 1, "incorrect_parameter_type": 1, "incorrect_function_name": 1},
    {"missing_optional_parameter": 2, "incorrect_output_format": 1},
    {"incorrect_parameter_value": 1, "missing_required_parameter": 1, "incorrect_number_of_functions": 1},
]


MEMORY_MIX = {"incorrect_function_name": 1}


def gen_yaml(out_dir: Path, n_generators: int, source: dict, shard_size: int, batch_size: int = 64,
             mixes: list[dict] | None = None) -> str:
    import yaml  # PyYAML ships with ray

    cfg = {
        "sources": [source],
        "split": {"strategy": "out_of_domain"},
        "generators": [{"name": f"mutation-{i}", "backend": "mutation", "seed": i, "batch_size": batch_size,
                        "mutation": {"mix": (mixes or MIXES)[i % len(mixes or MIXES)]}} for i in range(n_generators)],
        "dedup": {"exact": True},
        "output": {"dir": str(out_dir), "shard_size": shard_size, "resume": False},
        "ray": {"num_cpus": 2, "progress_bars": False},
    }
    return yaml.safe_dump(cfg)


# --- child: one pipeline run with memory sampling -----------------------------------------------

def child_run(config_path: str) -> None:
    import psutil

    from fcrm_ray.config import load_config
    from fcrm_ray.generate.config import GenerateConfig
    from fcrm_ray.generate.run import run

    me = psutil.Process()
    peak = {"tree_private": 0, "tree_rss": 0, "top": []}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            procs = [me] + me.children(recursive=True)
            priv = rss = 0
            per = []
            for p in procs:
                try:
                    mi = p.memory_info()
                    name = " ".join(p.cmdline()[:1])[-40:] if p.name().startswith("python") else p.name()
                except psutil.Error:
                    continue
                rss += mi.rss
                priv += mi.rss - getattr(mi, "shared", 0)
                per.append((name, (mi.rss - getattr(mi, "shared", 0)) / 2**20))
            if priv > peak["tree_private"]:  # which processes hold the memory at the peak
                from collections import Counter

                agg = Counter()
                for name, mb in per:
                    agg[name] += mb
                peak["top"] = [(n, round(mb, 1)) for n, mb in agg.most_common(6)] + [("n_procs", len(per))]
            peak["tree_private"] = max(peak["tree_private"], priv)
            peak["tree_rss"] = max(peak["tree_rss"], rss)
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    cfg = load_config(GenerateConfig, config_path)
    t0 = time.time()
    stats = run(cfg)
    wall = time.time() - t0
    stop.set()
    th.join()
    import resource

    out = {"wall_s": wall, "stats": {k: stats[k] for k in ("rows_in", "examples", "pairs_out", "elapsed_s",
                                                         "throughput", "checks", "by_generator")},
           "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "tree_peak_private_mb": peak["tree_private"] / 2**20, "tree_peak_rss_mb": peak["tree_rss"] / 2**20,
           "peak_breakdown_mb": peak["top"]}
    print("BENCH_RESULT " + json.dumps(out))


def run_child(yaml_text: str, work: Path) -> dict:
    cfg_path = work / f"cfg-{time.time_ns()}.yaml"
    cfg_path.write_text(yaml_text)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, __file__, "--child", str(cfg_path)], cwd=REPO, env=env,
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"benchmark child failed (rc={p.returncode}):\n{p.stderr[-3000:]}")


# --- inputs -------------------------------------------------------------------------------------

def bfcl_examples():
    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.paths import BFCL_SINGLE_TURN

    return list(read_bfcl(categories=BFCL_SINGLE_TURN))


def write_repeated(path: Path, n_rows: int) -> Path:
    """n_rows examples as canonical Parquet rows (`sources.example_row`), BFCL single-turn
    repeated under new ids, written in row groups so the writer itself stays small. Parquet, not
    JSONL: `data.sources.iter_rows` reads a JSONL file whole, Parquet in 1024-row batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fcrm_ray.data.sources import example_row

    base = [example_row(e) for e in bfcl_examples()]
    writer = None
    chunk: list[dict] = []
    for i in range(n_rows):
        d = dict(base[i % len(base)])
        d["id"] = f"{d['id']}#{i // len(base)}"
        chunk.append(d)
        if len(chunk) == 5000 or i == n_rows - 1:
            t = pa.Table.from_pylist(chunk)
            writer = writer or pq.ParquetWriter(path, t.schema)
            writer.write_table(t, row_group_size=1024)
            chunk = []
    writer.close()
    return path


# --- parts --------------------------------------------------------------------------------------

def part_throughput(work: Path, n_generators: int) -> dict:
    res = run_child(gen_yaml(work / "tp", n_generators, {"kind": "bfcl"}, shard_size=256), work)
    st = res["stats"]
    units = st["examples"] * n_generators
    return {"generators": n_generators, "examples": st["examples"], "work_units": units,
            "pairs_out": st["pairs_out"], "pipeline_s": st["elapsed_s"], "process_wall_s": round(res["wall_s"], 2),
            "units_per_s": round(units / st["elapsed_s"], 1),
            "pairs_per_s": round(st["pairs_out"] / st["elapsed_s"], 1),
            "candidates": sum(g.get("candidates", 0) for g in st["by_generator"].values()),
            "checks_ok": all(st["checks"].values())}


def part_memory(work: Path, rows: list[int]) -> list[dict]:
    out = []
    for n in rows:
        src = write_repeated(work / f"rep-{n}.parquet", n)
        # One cheap mutation per example: this part measures memory vs input size, not mutation cost.
        res = run_child(gen_yaml(work / f"mem-{n}", 1, {"kind": "file", "path": str(src), "format": "canonical"},
                                 shard_size=512, batch_size=128, mixes=[MEMORY_MIX]), work)
        st = res["stats"]
        out.append({"rows": n, "examples": st["examples"], "pairs_out": st["pairs_out"],
                    "pipeline_s": st["elapsed_s"], "rows_per_s": round(st["examples"] / st["elapsed_s"], 1),
                    "driver_peak_rss_mb": round(res["driver_peak_rss_mb"], 1),
                    "tree_peak_private_mb": round(res["tree_peak_private_mb"], 1),
                    "tree_peak_rss_mb": round(res["tree_peak_rss_mb"], 1),
                    "peak_breakdown_mb": res["peak_breakdown_mb"],
                    "checks_ok": all(st["checks"].values())})
        src.unlink()
    return out


def plain_loop(examples, mix: dict, seed: int = 0) -> tuple[float, int]:
    """The pipeline's per-example work without Ray: mutate, judge, dedup, write Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fcrm_ray.data.pairs import PAIR_COLUMNS, pair_arrow_schema
    from fcrm_ray.data.splits import assign_split  # noqa: F401  (the split is part of the work too)
    from fcrm_ray.generate.backends import MutationGenerator
    from fcrm_ray.generate.config import GenerateConfig
    from fcrm_ray.generate.run import split_of
    from fcrm_ray.generate.stages import dedup_stage, judge_stage, work_row

    cfg = GenerateConfig()
    gen = MutationGenerator({"tag": "mutation-0", "seed": seed, "mix": mix, "per_type": 1, "retries": 0})
    t0 = time.time()
    kept_all = []
    shard: list[dict] = []
    for i, ex in enumerate(examples):
        row = work_row(ex, i // 256, split_of(ex, cfg), False)
        row = {**row, "generator": "mutation-0", "unit": 0, "gen_error": "",
               "candidates": json.dumps(gen.generate_rows([row])[0])}
        pairs, _ = judge_stage([row], 0)
        shard.extend(pairs)
        if len(shard) > 2000 or i == len(examples) - 1:
            kept, _ = dedup_stage(shard)
            kept_all.extend({c: p[c] for c in PAIR_COLUMNS} for p in kept)
            shard = []
    with tempfile.TemporaryDirectory() as d:
        pq.write_table(pa.Table.from_pylist(kept_all, schema=pair_arrow_schema()), Path(d) / "p.parquet")
    return time.time() - t0, len(kept_all)


def part_overhead(work: Path) -> dict:
    examples = bfcl_examples()
    loop_s, loop_pairs = plain_loop(examples, MIXES[0])
    res = run_child(gen_yaml(work / "ovh", 1, {"kind": "bfcl"}, shard_size=256), work)
    st = res["stats"]
    return {"examples": len(examples), "loop_s": round(loop_s, 2), "loop_pairs": loop_pairs,
            "pipeline_s": st["elapsed_s"], "pipeline_pairs": st["pairs_out"],
            "ratio_pipeline_over_loop": round(st["elapsed_s"] / loop_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--parts", nargs="*", default=["throughput", "memory", "overhead"])
    ap.add_argument("--generators", type=int, default=10)
    ap.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results_generate.json"))
    args = ap.parse_args()
    if args.child:
        child_run(args.child)
        return
    results = {"machine": f"{platform.node()} {os.cpu_count()} cpus", "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as d:
        work = Path(d)
        if "throughput" in args.parts:
            results["throughput"] = part_throughput(work, args.generators)
            print(json.dumps(results["throughput"]), flush=True)
        if "overhead" in args.parts:
            results["overhead"] = part_overhead(work)
            print(json.dumps(results["overhead"]), flush=True)
        if "memory" in args.parts:
            results["memory"] = part_memory(work, args.rows)
            print(json.dumps(results["memory"]), flush=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
