"""Benchmarks of `fcrm gateway` (results: benchmarks/RESULTS_gateway.md).

(i) `picks`: what the gateway returns over stored Best-of-N pools equals `fcrm eval bon` on the
same pools. `fcrm eval bon` runs first (its own code, `evaluate.bon.run_eval`); then every pool is
replayed through the gateway's path at each n: the first n candidates become one upstream chat
completion (their text as each choice's content), `gateway.core.candidates_from_responses` reads
them, the reward model scores them through `RewardBackend` (what the gateway's model deployment
runs), and `gateway.core.select` picks under each rule. Reported per rule and n: the gateway's
accuracy (verifier) with a bootstrap 95% CI, `fcrm eval bon`'s, and in how many pools the two
picked the same candidate.

    python benchmarks/bench_gateway.py picks --pools runs/quickstart/eval/bon-pools.jsonl \
        --model runs/quickstart/rm --out /tmp/bench_gateway

(ii) `latency`: the same tool-call requests sent straight to an OpenAI-compatible upstream and
through the gateway (a running `fcrm gateway` with `--gateway`, else its app under uvicorn here
with the reward model in process), interleaved one by one, K requests per n; p50 / p99 latency of
each, the median difference, the gateway's own overhead (its per-request stats: time not spent
waiting on the upstream) and its scoring throughput (candidates scored per second of scoring).

    fcrm gateway --upstream http://127.0.0.1:18011/v1 --config configs/gateway.yaml \
        model.path=runs/quickstart/rm port=18020 &
    python benchmarks/bench_gateway.py latency --upstream http://127.0.0.1:18011/v1 \
        --gateway http://127.0.0.1:18020/v1 --requests 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RULES = ("rm", "vote", "majority", "first")
EVAL_SELECTOR = {"rm": "rm", "vote": "vote_sum", "majority": "majority_rm"}  # `first` is index 0 in both


def bench_picks(args) -> dict:
    from fcrm_ray.config import load_config
    from fcrm_ray.evaluate import metrics as M
    from fcrm_ray.evaluate.bon import run_eval
    from fcrm_ray.evaluate.config import BonConfig
    from fcrm_ray.gateway import core
    from fcrm_ray.serve.backend import RewardBackend
    from fcrm_ray.serve.config import ModelConfig
    from fcrm_ray.toolcall.verify import verify

    out = Path(args.out)
    ns = [int(n) for n in args.ns.split(",")]
    cfg = load_config(BonConfig, None, [f"model.path={args.model}", f"candidates={args.pools}", f"out={out / 'eval'}",
                                        f"ns={json.dumps(ns)}", f"vote_temperature={args.vote_temperature}",
                                        f"max_pools={args.max_pools}"])
    t0 = time.perf_counter()
    b = run_eval(cfg)  # `fcrm eval bon`, unchanged
    eval_s = time.perf_counter() - t0
    records = {r["example_id"]: r for r in map(json.loads, open(out / "eval" / "pools_scored.jsonl"))}
    from fcrm_ray.data.quarantine import Quarantine
    from fcrm_ray.evaluate.bon import read_pools

    with Quarantine(out / "gw-quarantine.jsonl") as q:
        pools, _ = read_pools(args.pools, q)
    pools = [p for p in pools if p["example_id"] in records]
    backend = RewardBackend(ModelConfig(name="rm", path=args.model))
    t0 = time.perf_counter()
    outcome = {(r, n): [] for r in RULES for n in ns}
    same = {(r, n): 0 for r in RULES for n in ns}
    scored = 0
    for p in pools:
        rec = records[p["example_id"]]
        tools = [t.to_dict() for t in p["tools"]]
        for n in ns:
            if len(p["candidates"]) < n:
                continue
            upstream = {"choices": [{"index": i, "message": {"role": "assistant", "content": c},
                                     "finish_reason": "stop"} for i, c in enumerate(p["candidates"][:n])]}
            cands = core.candidates_from_responses([upstream], p["tools"])
            raw = backend.score_units([("cand", tools, p["conversation"], c.text) for c in cands])
            scored += len(cands)
            rewards = [None if isinstance(x, dict) else x for x in raw]
            for rule in RULES:
                i, _, _ = core.select(rewards, [c.key for c in cands], rule, args.vote_temperature)
                ok = bool(verify(cands[i].text, p["reference"], p["tools"]).correct)
                outcome[(rule, n)].append(float(ok))
                ref = 0 if rule == "first" else rec[f"{EVAL_SELECTOR[rule]}_pick"][str(n)]
                same[(rule, n)] += int(i == ref)
    gw_s = time.perf_counter() - t0
    rows = []
    for n in ns:
        curve = b["curve"].get(str(n))
        if not curve:
            continue
        for rule in RULES:
            vals = outcome[(rule, n)]
            lo, hi = M.bootstrap_ci(vals, seed=0)
            ev = curve["first" if rule == "first" else EVAL_SELECTOR[rule]]
            rows.append({"n": n, "rule": rule, "pools": len(vals), "gateway": sum(vals) / len(vals), "ci95": [lo, hi],
                         "eval_bon": ev["accuracy"], "eval_ci95": ev["ci95"], "same_pick": same[(rule, n)]})
    res = {"pools_file": str(args.pools), "model": str(args.model), "pools": len(pools), "ns": ns,
           "vote_temperature": args.vote_temperature, "rows": rows, "eval_bon_s": round(eval_s, 1),
           "gateway_replay_s": round(gw_s, 1), "candidates_scored": scored}
    (out / "picks.json").write_text(json.dumps(res, indent=2))
    print("| n | rule | pools | gateway accuracy [95% CI] | `fcrm eval bon` | same pick |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['rule']} | {r['pools']} | {r['gateway']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
              f"| {r['eval_bon']:.3f} | {r['same_pick']}/{r['pools']} |")
    print(f"eval bon {eval_s:.1f} s; gateway replay {gw_s:.1f} s, {scored} candidates scored")
    return res


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def bench_latency(args) -> dict:
    """Direct upstream vs gateway, interleaved request by request. `--gateway URL`: a running
    `fcrm gateway` (Ray Serve); else the gateway's app under uvicorn here, reward model in process."""
    import contextlib

    import httpx

    from tests.gateway_fakes import TOOL_JSON, serve_in_thread

    ns = [int(n) for n in args.ns.split(",")]
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo"]
    results = []
    with contextlib.ExitStack() as stack:
        gw_url = args.gateway
        if not gw_url:
            from fcrm_ray.config import load_config
            from fcrm_ray.gateway.app import local_score
            from fcrm_ray.gateway.config import GatewayConfig
            from fcrm_ray.gateway.service import Gateway, gateway_api

            cfg = load_config(GatewayConfig, None, [f"upstream.url={args.upstream}", f"model.path={args.model}",
                                                    "upstream.timeout_s=300", "selection.request_timeout_s=600"])
            state: dict = {"settings": {"token": "", "max_body_bytes": cfg.limits.max_body_bytes}}
            api = gateway_api(state)
            state["gateway"] = Gateway(cfg, None, local_score(cfg.model))
            gw_url = stack.enter_context(serve_in_thread(api)) + "/v1"

        async def run():
            async with httpx.AsyncClient(timeout=600) as c:
                async def once(base, n, i, stats=None):
                    body = {"model": args.served_model, "messages": [{"role": "user", "content":
                                                                      f"weather in {cities[i % len(cities)]}?"}],
                            "tools": [TOOL_JSON], "n": n, "temperature": 1.0, "max_tokens": args.max_tokens,
                            "seed": i}
                    if stats is not None:
                        body["fcrm"] = {"candidates": True}
                    t = time.perf_counter()
                    r = await c.post(f"{base}/chat/completions", json=body)
                    r.raise_for_status()
                    dt = time.perf_counter() - t
                    if stats is not None:
                        stats.append(r.json()["fcrm"]["stats"])
                    return dt

                for n in ns:
                    await once(args.upstream, n, 0)  # warm both paths
                    await once(gw_url, n, 0, [])
                    direct, via, stats = [], [], []
                    for i in range(args.requests):  # interleaved: both see the same machine load
                        direct.append(await once(args.upstream, n, i))
                        via.append(await once(gw_url, n, i, stats))
                    scored = sum(s["scored"] for s in stats)
                    score_s = sum(s["score_s"] for s in stats)
                    results.append({"n": n, "requests": args.requests,
                                    "direct_p50_s": _pct(direct, 0.5), "direct_p99_s": _pct(direct, 0.99),
                                    "gateway_p50_s": _pct(via, 0.5), "gateway_p99_s": _pct(via, 0.99),
                                    "overhead_p50_s": statistics.median(v - d for v, d in zip(via, direct)),
                                    "gateway_overhead_p50_s": statistics.median(s["overhead_s"] for s in stats),
                                    "candidates_scored_per_s": scored / score_s if score_s else None})

        asyncio.run(run())
    print("| n | requests | direct p50 / p99 (s) | gateway p50 / p99 (s) | median (gateway - direct) (s) "
          "| gateway's own overhead p50 (s) | candidates scored/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n']} | {r['requests']} | {r['direct_p50_s']:.3f} / {r['direct_p99_s']:.3f} | "
              f"{r['gateway_p50_s']:.3f} / {r['gateway_p99_s']:.3f} | {r['overhead_p50_s']:.3f} | "
              f"{r['gateway_overhead_p50_s']:.3f} | {r['candidates_scored_per_s']:.1f} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "latency.json").write_text(json.dumps(results, indent=2))
    return {"rows": results}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("picks")
    p.add_argument("--pools", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ns", default="1,2,4,8,16")
    p.add_argument("--vote-temperature", type=float, default=2.0)
    p.add_argument("--max-pools", type=int, default=0)
    q = sub.add_parser("latency")
    q.add_argument("--upstream", required=True)
    q.add_argument("--model", default="", help="reward model (in-process gateway; not with --gateway)")
    q.add_argument("--gateway", default="", help="a running gateway's base URL (…/v1); else one in process")
    q.add_argument("--served-model", default="tiny")
    q.add_argument("--ns", default="1,4,8")
    q.add_argument("--requests", type=int, default=20)
    q.add_argument("--max-tokens", type=int, default=48)
    q.add_argument("--out", default="")
    args = ap.parse_args(argv)
    bench_picks(args) if args.cmd == "picks" else bench_latency(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
