"""Load test of the reward service on loopback: dynamic batching vs `max_batch_size=1`.

    python benchmarks/bench_serve.py --model minilm --clients 8 --duration 20
    python benchmarks/bench_serve.py --model tiny --clients 16 --duration 10 --batch-sizes 1 16

For each max_batch_size the same Serve application (`fcrm_ray.serve.app.build_app`) is deployed
on a local Ray (2 CPUs, 127.0.0.1), warmed up, then `--clients` threads each send single-candidate
`POST /v1/rewards` requests (BFCL contexts, one correct or mutated call each) back to back for
`--duration` seconds or until `--max-requests` in total; every request has a client timeout.
Reported per setting: requests/s (= candidates/s), p50/p99 latency, errors, the mean batch size
the replica actually ran (from `GET /v1/models`); and the throughput
ratio batched / unbatched. `max_ongoing_requests` follows the config default (2 x batch size, at
least `--clients`), so the unbatched run is not capped below the client count.

Models: `tiny` = `models.build_tiny_bert_rm`; `minilm` = all-MiniLM-L6-v2 + fresh scalar head
(the forward cost of the real CPU model; scores are meaningless, timings are not).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _requests(n: int, seed: int = 0) -> list[dict]:
    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.toolcall.mutate import mutate_all

    rng = random.Random(seed)
    out = []
    for ex in itertools.islice(read_bfcl(["simple_python", "multiple"]), n):
        calls = [r.canonical_call().to_dict() for r in ex.reference]
        muts = [m.text for m in mutate_all(ex, rng)[:1]]
        for cand in [json.dumps(calls)] + muts:
            out.append({"tools": [t.to_openai() for t in ex.tools], "messages": ex.conversation, "candidates": [cand]})
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(url: str, bodies: list[dict], clients: int, duration: float, max_requests: int, timeout: float) -> dict:
    import httpx

    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration
    counter = itertools.count()

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as h:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                t = time.perf_counter()
                try:
                    r = h.post("/v1/rewards", json=bodies[i % len(bodies)])
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t
                with lock:
                    if ok:
                        lat.append(dt)
                    else:
                        errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {"requests": len(lat), "errors": errors[0], "wall_s": wall, "rps": len(lat) / wall,
            "p50_ms": q(0.50), "p99_ms": q(0.99), "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny", choices=["tiny", "minilm"])
    ap.add_argument("--model-path", default=None, help="a trained RM folder instead of --model")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--max-requests", type=int, default=5000)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--wait-ms", type=float, default=10.0, help="batch_wait_timeout_s in ms")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    import ray
    from ray import serve

    from bench_filter import build_model
    from fcrm_ray.config import load_config
    from fcrm_ray.serve.app import build_app
    from fcrm_ray.serve.config import ServeConfig

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_serve_"))
    model = a.model_path or build_model(a.model, work / f"model-{a.model}")
    bodies = _requests(200)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    results = {"model": a.model_path or a.model, "clients": a.clients, "duration_s": a.duration, "runs": []}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for bs in a.batch_sizes:
            cfg = load_config(ServeConfig, None, [
                f"models.rm.path={model}", f"models.rm.max_batch_size={bs}",
                f"models.rm.batch_wait_timeout_s={a.wait_ms / 1000 if bs > 1 else 0}",
                f"models.rm.max_ongoing_requests={max(2 * bs, a.clients)}", "models.rm.max_length=384",
                "models.rm.ray_actor_options.num_cpus=1", "ingress.num_cpus=0.1", f"port={port}"])
            serve.run(build_app(cfg), name="bench", route_prefix="/")
            load(url, bodies, min(4, a.clients), 3.0, 50, a.timeout)  # warm-up (threads, tokenizer caches)
            import httpx

            before = httpx.get(f"{url}/v1/models", timeout=30).json()["models"][0]["details"]
            r = load(url, bodies, a.clients, a.duration, a.max_requests, a.timeout)
            after = httpx.get(f"{url}/v1/models", timeout=30).json()["models"][0]["details"]
            r["max_batch_size"] = bs
            nb = after["batches"] - before["batches"]  # one replica (max_replicas=1 by default)
            r["mean_batch_size"] = (after["candidates"] - before["candidates"]) / nb if nb else 0.0
            results["runs"].append(r)
            print(json.dumps(r), flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    by = {r["max_batch_size"]: r for r in results["runs"]}
    if 1 in by and len(by) > 1:
        best = max((b for b in by if b != 1), key=lambda b: by[b]["rps"])
        results["throughput_ratio"] = by[best]["rps"] / by[1]["rps"] if by[1]["rps"] else float("nan")
        results["p50_ratio"] = by[best]["p50_ms"] / by[1]["p50_ms"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
