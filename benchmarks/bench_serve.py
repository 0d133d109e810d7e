"""Load and fault benchmark of the reward service, loopback only, bounded.

    python benchmarks/bench_serve.py --model minilm --clients 1 8 32 --duration 8 --parts load faults

load: for batching off (`max_batch_size=1`) and on (`--batch-size`, default 32) the same Serve
application (`fcrm_ray.serve.app.build_app`) is deployed on a local Ray (2 CPUs, 127.0.0.1) and
warmed up; then for each client count, that many asyncio clients each send single-candidate
`POST /v1/rewards` requests (BFCL contexts, a correct or a mutated call) back to back for
`--duration` seconds. Reported per (batching, clients): requests/s, p50/p99 latency, errors, and
the mean batch size the replica ran (its counters in `GET /v1/models`, before and after).

faults: with 1 and with 2 model replicas, `--fault-clients` clients that do NOT retry send
requests; after `--kill-after` s one model replica is killed (`ray.kill`). Reported: requests,
failed requests (any non-200 or transport error), the seconds without service (the longest
gap between two successful answers after the kill), and what `/healthz` (probed every 0.25 s
during the run) said after the kill. Each fault run stops `--after-recovery` s after service resumed, or at `--fault-cap` s.

Models: `tiny` = `models.build_tiny_bert_rm`; `minilm` = all-MiniLM-L6-v2 + fresh scalar head
(the forward cost of the real CPU model; scores are meaningless, timings are not); or
`--model-path` for a trained RM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import socket
import sys
import tempfile
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


def _q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")


async def _load(url: str, bodies: list[dict], clients: int, duration: float, timeout: float,
                kill_at: float | None = None, kill=None, stop_after_recovery: float = 2.0,
                min_after_kill: float = 5.0) -> dict:
    """`clients` concurrent clients, each one request at a time (no retries), for `duration` s.
    With `kill`: it runs at `kill_at` s, and the run ends `stop_after_recovery` s after the service
    flows again (3 successes within a second, at least `min_after_kill` s after the kill)."""
    import httpx

    lat: list[float] = []
    ok_times: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    t0 = time.perf_counter()
    stop = [t0 + duration]
    killed_at: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as h:
        async def client():
            while time.perf_counter() < stop[0]:
                t = time.perf_counter()
                try:
                    r = await h.post("/v1/rewards", json=bodies[next(counter) % len(bodies)])
                    good, why = r.status_code == 200, f"HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    good, why = False, type(e).__name__
                if good:
                    lat.append(time.perf_counter() - t)
                    ok_times.append(time.perf_counter())
                else:
                    errors.append(why)

        async def killer():
            await asyncio.sleep(kill_at)
            await asyncio.to_thread(kill)
            killed_at.append(time.perf_counter())
            while True:
                await asyncio.sleep(0.2)
                now = time.perf_counter()
                if now - killed_at[0] > min_after_kill and len(ok_times) >= 3 and ok_times[-3] > now - 1.0:
                    stop[0] = min(stop[0], now + stop_after_recovery)
                    return
                if now > stop[0]:
                    return

        health: list[tuple[float, int]] = []

        async def prober():  # what /healthz says during the run, every 0.25 s
            async with httpx.AsyncClient(base_url=url, timeout=5) as hh:
                while time.perf_counter() < stop[0]:
                    try:
                        code = (await hh.get("/healthz")).status_code
                    except httpx.HTTPError:
                        code = 0
                    health.append((time.perf_counter(), code))
                    await asyncio.sleep(0.25)

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        if kill is not None:
            tasks += [asyncio.create_task(killer()), asyncio.create_task(prober())]
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return {"lat": lat, "ok_times": ok_times, "errors": errors, "wall": wall, "health": health,
            "killed_at": killed_at[0] if killed_at else None}


def _summary(r: dict) -> dict:
    lat = r["lat"]
    return {"requests": len(lat), "errors": len(r["errors"]), "rps": round(len(lat) / r["wall"], 2),
            "p50_ms": round(_q(lat, 0.5), 1), "p99_ms": round(_q(lat, 0.99), 1)}


def _outage(ok_times: list[float], t_kill: float) -> float:
    """Longest gap between successive successful answers from the kill on (the kill itself
    counts as the start: a gap opened by it is measured from the last success before it)."""
    before = [t for t in ok_times if t <= t_kill]
    seq = ([before[-1]] if before else [t_kill]) + [t for t in ok_times if t > t_kill]
    return max((b - a for a, b in zip(seq, seq[1:])), default=float("nan"))


def _serve_cfg(model: str, port: int, batch: int, wait_ms: float, clients_max: int, replicas: int):
    from fcrm_ray.config import load_config
    from fcrm_ray.serve.config import ServeConfig

    return load_config(ServeConfig, None, [
        f"models.rm.path={model}", f"models.rm.batch_size={batch}",
        f"models.rm.batch_wait_timeout_s={wait_ms / 1000 if batch > 1 else 0}",
        f"models.rm.max_ongoing_requests={max(2 * batch, clients_max)}", "models.rm.max_length=384",
        f"models.rm.ray_actor_options.num_cpus={1.0 if replicas == 1 else 0.5}",
        f"models.rm.autoscaling.min_replicas={replicas}", f"models.rm.autoscaling.max_replicas={replicas}",
        "ingress.num_cpus=0.1", f"port={port}", "app_name=bench"])


def _details(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/v1/models", timeout=60).json()["models"][0]["details"]


def run_load(a, model: str, bodies: list[dict], port: int) -> list[dict]:
    from ray import serve

    from fcrm_ray.serve.app import build_app

    url, rows = f"http://127.0.0.1:{port}", []
    for batch in (1, a.batch_size):
        cfg = _serve_cfg(model, port, batch, a.wait_ms, max(a.clients), 1)
        serve.run(build_app(cfg), name="bench", route_prefix="/")
        asyncio.run(_load(url, bodies, 4, 2.0, a.timeout))  # warm-up
        for n in a.clients:
            before = _details(url)
            r = _summary(asyncio.run(_load(url, bodies, n, a.duration, a.timeout)))
            after = _details(url)
            nb = after["batches"] - before["batches"]
            r.update(batching="on" if batch > 1 else "off", max_batch_size=batch, clients=n,
                     mean_batch_size=round((after["candidates"] - before["candidates"]) / nb, 2) if nb else 0.0,
                     load_avg=round(os.getloadavg()[0], 1))
            rows.append(r)
            print(json.dumps(r), flush=True)
        serve.delete("bench")
    return rows


def run_faults(a, model: str, bodies: list[dict], port: int) -> list[dict]:
    import ray
    from ray import serve

    from fcrm_ray.serve.app import build_app

    url, rows = f"http://127.0.0.1:{port}", []
    for replicas in (1, 2):
        cfg = _serve_cfg(model, port, a.batch_size, a.wait_ms, a.fault_clients, replicas)
        serve.run(build_app(cfg), name="bench", route_prefix="/")
        asyncio.run(_load(url, bodies, 4, 2.0, a.timeout))
        victims = sorted(x["name"] for x in ray.util.list_named_actors(all_namespaces=True)
                         if x["name"].startswith("SERVE_REPLICA::bench#RewardModel"))
        assert len(victims) == replicas, victims

        def kill():
            ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)

        res = asyncio.run(_load(url, bodies, a.fault_clients, a.fault_cap, a.timeout, kill_at=a.kill_after,
                                kill=kill, stop_after_recovery=a.after_recovery))
        t_kill = res["killed_at"]
        after = [(t - t_kill, c) for t, c in res["health"] if t >= t_kill]
        unready = [t for t, c in after if c != 200]
        row = {"replicas": replicas, "clients": a.fault_clients, **_summary(res),
               "failed": len(res["errors"]), "failed_kinds": sorted(set(res["errors"])),
               "seconds_without_service": round(_outage(res["ok_times"], t_kill), 2),
               # /healthz after the kill: how many probes said 503 and over which span
               "healthz_probes": len(after), "healthz_503": len(unready),
               "healthz_503_span_s": [round(min(unready), 1), round(max(unready), 1)] if unready else None,
               "load_avg": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        serve.delete("bench")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny", choices=["tiny", "minilm"])
    ap.add_argument("--model-path", default=None, help="a trained RM folder instead of --model")
    ap.add_argument("--parts", nargs="+", default=["load", "faults"], choices=["load", "faults"])
    ap.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--batch-size", type=int, default=32, help="models.<name>.batch_size of the batching-on runs")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per load point")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--wait-ms", type=float, default=10.0, help="batch_wait_timeout_s in ms (batching on)")
    ap.add_argument("--fault-clients", type=int, default=8)
    ap.add_argument("--kill-after", type=float, default=3.0)
    ap.add_argument("--after-recovery", type=float, default=2.0)
    ap.add_argument("--fault-cap", type=float, default=45.0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None, help="write the results JSON here")
    a = ap.parse_args()

    import ray
    from ray import serve

    from bench_filter import build_model

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_serve_"))
    model = a.model_path or build_model(a.model, work / f"model-{a.model}")
    bodies = _requests(200)
    port = _port()
    results = {"model": a.model_path or a.model, "load_avg_start": os.getloadavg(), "args": vars(a)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        if "load" in a.parts:
            results["load"] = run_load(a, model, bodies, port)
        if "faults" in a.parts:
            results["faults"] = run_faults(a, model, bodies, port)
    finally:
        serve.shutdown()
        ray.shutdown()
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results))
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
