"""`fcrm filter` at corpus scale on one machine: rows/s and peak memory (driver, largest Ray worker,
all processes) at growing corpus sizes, a kill + resume at the largest size, and the token
statistics docs/capacity.md plans GPU clusters from. Numbers go to benchmarks/RESULTS_capacity.md.

    nice -n 10 python benchmarks/filter_scale.py --sizes 10000 100000 --model tiny --workdir /tmp/fs
    nice -n 10 python benchmarks/filter_scale.py --sizes 1000000 --model tiny --max-seconds 600 \
        --kill-after-shards 20 --resume-seconds 240 --workdir /tmp/fs
    nice -n 10 python benchmarks/filter_scale.py --sizes 1000000 --workdir /tmp/fs \
        --resume-dir /tmp/fs/out-tiny-1000000-<ns> --resume-seconds 3600   # finish a killed run
    nice -n 10 python benchmarks/filter_scale.py --tokens 2000 --workdir /tmp/fs   # tokens per unit, shared prefix

Each run is the real command (`python -m fcrm_ray.cli filter ...`, its own local Ray with 2 CPUs)
in a subprocess under a private RAY_TMPDIR, so it never joins another Ray on the machine. A sampler
reads the process tree every 0.5 s: the driver's RSS, the largest single Ray worker's RSS, and
private memory (RSS - shared) summed over every process. A run that passes --max-seconds is
SIGKILLed (whole tree) and reported as partial: shards finished (from manifest.json) and rows/s so
far. --kill-after-shards kills the run once that many shards are finished, then re-runs the same
command for at most --resume-seconds and checks that no finished shard was scored again.
The corpus is bench_filter.py's (BFCL examples + verified mutations in three formats, repeated
under new ids), streamed to JSONL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_filter import build_model, corpus_rows, write_corpus  # noqa: E402


def _tree(pid: int):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


class Sampler(threading.Thread):
    def __init__(self, pid: int, manifest: Path):
        super().__init__(daemon=True)
        self.pid, self.manifest = pid, manifest
        self.stop = threading.Event()
        self.peak = {"driver_rss": 0, "worker_rss": 0, "total_private": 0}
        self.trace: list[dict] = []  # (t, shards done, memory) every ~10 s

    def run(self):
        import psutil

        t0, last = time.time(), 0.0
        while not self.stop.is_set():
            driver = worker = total = 0
            for p in _tree(self.pid):
                try:
                    mi = p.memory_info()
                    total += mi.rss - getattr(mi, "shared", 0)
                    if p.pid == self.pid:
                        driver = mi.rss
                    elif p.name().startswith("ray::"):
                        worker = max(worker, mi.rss)
                except psutil.Error:
                    pass
            for k, v in (("driver_rss", driver), ("worker_rss", worker), ("total_private", total)):
                self.peak[k] = max(self.peak[k], v)
            if time.time() - last >= 10:
                last = time.time()
                self.trace.append({"t": round(last - t0), "shards": shards_done(self.manifest),
                                   "driver_mb": driver >> 20, "worker_mb": worker >> 20, "total_private_mb": total >> 20})
            self.stop.wait(0.5)


def shards_done(manifest: Path) -> int:
    try:
        return len(json.loads(manifest.read_text())["scored"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_tree(pid: int) -> None:
    import psutil

    for p in reversed(_tree(pid)):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def run_filter(corpus: Path, model: str, out: Path, shard_rows: int, batch_size: int, max_s: float,
               kill_after_shards: int = 0) -> dict:
    argv = [sys.executable, "-m", "fcrm_ray.cli", "filter", "--config", str(REPO / "configs/filter.yaml"),
            f"input.path={corpus}", f"out={out}", f"model.path={model}",
            f"input.shard_rows={shard_rows}", f"model.batch_size={batch_size}", f"actors.batch_size={batch_size}", "model.max_length=256",
            "ray.num_cpus=2", "policy.kind=top_fraction", "policy.fraction=0.5"]
    ray_tmp = tempfile.mkdtemp(prefix="fs-ray-", dir="/tmp")  # short: Unix socket paths live under it
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"}
    log = open(out.with_suffix(".log"), "a")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid, out / "manifest.json")
    sampler.start()
    killed = None
    while proc.poll() is None:
        elapsed = time.perf_counter() - t0
        done = shards_done(out / "manifest.json")
        if elapsed > max_s or (kill_after_shards and done >= kill_after_shards):
            killed = "max_seconds" if elapsed > max_s else f"after {done} shards"
            kill_tree(proc.pid)
            proc.wait()
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    log.close()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    res = {"wall_s": round(wall, 1), "rc": proc.returncode, "killed": killed,
           "shards_done": shards_done(out / "manifest.json"),
           "driver_peak_rss_mb": sampler.peak["driver_rss"] >> 20,
           "worker_peak_rss_mb": sampler.peak["worker_rss"] >> 20,
           "total_peak_private_mb": sampler.peak["total_private"] >> 20, "trace": sampler.trace}
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"fcrm filter failed ({proc.returncode}); see {out.with_suffix('.log')}")
    if not killed:
        stats = json.loads((out / "stats.json").read_text())
        res.update({k: stats[k] for k in ("rows_in", "units_in", "kept", "dropped", "quarantined", "score_seconds")})
        res["rows_per_s"] = round(stats["rows_in"] / wall, 1)
        res["unique_units"] = _unique_units(out)
    return res


def _unique_units(out: Path) -> bool:
    import pyarrow.parquet as pq

    seen: set = set()
    n = 0
    for part in ("kept", "dropped"):
        for f in (out / part).glob("*.parquet"):
            t = pq.read_table(f, columns=["row_id", "unit_id"])
            for r, u in zip(t.column("row_id").to_pylist(), t.column("unit_id").to_pylist()):
                seen.add((r, u))
                n += 1
    return n == len(seen)


def resume_check(corpus, model, out, shard_rows, batch_size, max_s) -> dict:
    """Re-run after a kill: finished shards must be skipped (their files untouched)."""
    before = {f.name: f.stat().st_mtime_ns for f in (out / "scored").glob("*.parquet")}
    done_before = shards_done(out / "manifest.json")
    res = run_filter(corpus, model, out, shard_rows, batch_size, max_s)
    rescored = [n for n, m in before.items() if (out / "scored" / n).stat().st_mtime_ns != m]
    res.update(shards_done_before=done_before, finished_shards_rescored=len(rescored))
    # rows this run scored itself (the finished shards were skipped), over its own wall time
    res["rows_scored_this_run"] = (res["shards_done"] - done_before) * shard_rows
    res["rows_per_s_this_run"] = round(res["rows_scored_this_run"] / res["wall_s"], 1)
    return res


def token_stats(n_units: int, tokenizer: str = "pkg:minilm") -> dict:
    """Tokens per unit (with `tokenizer`: a local HF tokenizer/model folder; a causal LM's renders
    use its chat template with tools=, as the filter does; characters too) and the share of
    prompt tokens whose whole prompt was seen before (what prefix caching / shared-prefix packing
    skip), over the first n_units units of the corpus, rendered as the filter renders them."""
    import itertools

    from transformers import AutoTokenizer

    from fcrm_ray.filter.extract import extract_row
    from fcrm_ray.models import prepare_tokenizer
    from fcrm_ray.paths import resolve_model_path
    from fcrm_ray.toolcall.render import render

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model_path(tokenizer)))
    seen: set = set()
    units = rows = p_tok = c_tok = p_chars = c_chars = repeat_tok = 0
    for i, row in enumerate(itertools.islice(corpus_rows(0), n_units * 2)):
        rows += 1
        us, _ = extract_row(json.loads(json.dumps(row)), row_id=str(i), index=i)
        for u in us:
            r = render(tok, u["tools"], u["conversation"], u["candidate"])
            pt = len(tok(r.prompt, add_special_tokens=False)["input_ids"])
            ct = len(tok(r.completion, add_special_tokens=False)["input_ids"])
            units += 1
            p_tok, c_tok = p_tok + pt, c_tok + ct
            p_chars, c_chars = p_chars + len(r.prompt), c_chars + len(r.completion)
            if r.prompt in seen:
                repeat_tok += pt
            seen.add(r.prompt)
        if units >= n_units:
            break
    total = p_tok + c_tok
    return {"tokenizer": tokenizer, "rows": rows, "units": units,
            "tokens_per_unit": round(total / units, 1), "prompt_tokens_per_unit": round(p_tok / units, 1),
            "completion_tokens_per_unit": round(c_tok / units, 1), "chars_per_unit": round((p_chars + c_chars) / units, 1),
            "chars_per_token": round((p_chars + c_chars) / total, 2),
            "repeated_prompt_token_share": round(repeat_tok / total, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", type=int, default=[])
    ap.add_argument("--model", default="tiny", choices=["tiny", "minilm"])
    ap.add_argument("--shard-rows", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--kill-after-shards", type=int, default=0, help="at the largest size: kill, then resume")
    ap.add_argument("--resume-seconds", type=float, default=600)
    ap.add_argument("--resume-dir", default=None,
                    help="an earlier run's output dir (killed or stopped by --max-seconds): resume it to the end "
                         "(needs --sizes N of its corpus; bounded by --resume-seconds)")
    ap.add_argument("--tokens", type=int, default=0, help="token statistics over this many units")
    ap.add_argument("--tokenizer", default="pkg:minilm", help="for --tokens: e.g. a local Qwen3 folder")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="filter_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"model": a.model, "shard_rows": a.shard_rows, "batch_size": a.batch_size, "runs": []}
    if a.tokens:
        results["tokens"] = token_stats(a.tokens, a.tokenizer)
        print(json.dumps(results["tokens"]), flush=True)
    if a.sizes:
        model = build_model(a.model, work / f"model-{a.model}")
    if a.resume_dir:
        if len(a.sizes) != 1:
            raise SystemExit("--resume-dir needs exactly one --sizes N (the size of the run being resumed)")
        n = a.sizes[0]
        res = {"rows": n, "resume": resume_check(work / f"corpus-{n}.jsonl", model, Path(a.resume_dir),
                                                 a.shard_rows, a.batch_size, a.resume_seconds)}
        results["runs"].append(res)
        print(json.dumps({k: v for k, v in res["resume"].items() if k != "trace"}), flush=True)
        print(json.dumps(results))
        return
    for n in a.sizes:
        corpus = work / f"corpus-{n}.jsonl"
        if not corpus.is_file():
            t = time.perf_counter()
            write_corpus(corpus, n)
            print(f"corpus {n} rows: {corpus.stat().st_size >> 20} MiB in {time.perf_counter() - t:.0f}s", flush=True)
        out = work / f"out-{a.model}-{n}-{time.time_ns()}"
        kill = a.kill_after_shards if n == max(a.sizes) else 0
        res = {"rows": n, **run_filter(corpus, model, out, a.shard_rows, a.batch_size, a.max_seconds, kill)}
        if kill and res["killed"] and res["killed"].startswith("after"):
            res["resume"] = resume_check(corpus, model, out, a.shard_rows, a.batch_size, a.resume_seconds)
        results["runs"].append(res)
        print(json.dumps({k: v for k, v in res.items() if k != "trace"}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
