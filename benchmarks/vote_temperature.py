"""Reward-weighted voting at several temperatures, from a finished `fcrm eval bon` run.

    python benchmarks/vote_temperature.py --run runs/eval/bon --candidates runs/bench/pools_real_validation.jsonl \
        --temperatures 0.5 1 2 4 8 16 1e6

Reads the run's `pools_scored.jsonl` (the rewards) and the pool file it scored (candidates and
references), judges every candidate again with the verifier, and prints the weighted vote
(`vote_sum`) beside majority voting at each n for each temperature: the numbers `fcrm eval bon`
would print with `vote_temperature=T`, without scoring the pools again. Choose T on validation
pools only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import bon, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="an `fcrm eval bon` output folder (has pools_scored.jsonl)")
    ap.add_argument("--candidates", required=True, help="the pool file that run scored")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 1, 2, 4, 8, 16, 1e6])
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 4, 8, 16])
    args = ap.parse_args()

    rewards = {}
    with open(Path(args.run) / "pools_scored.jsonl") as f:
        for line in f:
            row = json.loads(line)
            rewards[row["example_id"]] = row["rewards"]  # unscorable ones already filled by the run
    with tempfile.TemporaryDirectory() as tmp:
        pools, _ = bon.read_pools(args.candidates, Quarantine(Path(tmp) / "quarantine.jsonl"))
    scored = []
    for pool in pools:
        if pool["example_id"] in rewards:
            correct, _errors, keys = bon.judge_pool(pool)
            scored.append({"scores": rewards[pool["example_id"]], "correct": correct, "keys": keys})
    print(f"{len(scored)} pools of {args.candidates} scored in {args.run}")
    for t in args.temperatures:
        curve = metrics.bon_curve(scored, ns=args.ns, n_boot=10, vote_temperature=t)
        cells = [f"n={n}: vote {c['vote_sum']['accuracy']:.3f} / majority {c['majority']['accuracy']:.3f}"
                 for n, c in curve.items()]
        print(f"T={t:g}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
