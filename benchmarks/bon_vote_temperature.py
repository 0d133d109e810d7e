"""Choose `vote_temperature` (reward-weighted voting, `fcrm eval bon`) on VALIDATION pools.

Re-evaluates an existing `fcrm eval bon` run (its `pools_scored.jsonl` rewards) at several
temperatures, without scoring again, and prints vote_sum beside the RM pick and majority vote,
each with its bootstrap 95% CI, for every n. Run it on the validation pools only; the test pools
are evaluated once, with the temperature chosen here.

    fcrm eval bon --model RM --candidates BENCH/pools_real_validation.jsonl --out runs/bon-val
    python benchmarks/bon_vote_temperature.py --run runs/bon-val --pools BENCH/pools_real_validation.jsonl \
        --temperatures 0.5 1 2 4 8 16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import bon as B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="an `fcrm eval bon` output folder (pools_scored.jsonl)")
    ap.add_argument("--pools", required=True, help="the pool file that run scored")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 1, 2, 4, 8, 16])
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()

    scored = {r["example_id"]: r["rewards"] for r in map(json.loads, open(Path(args.run) / "pools_scored.jsonl"))}
    with Quarantine(None) as q:
        pools, _ = B.read_pools(args.pools, q)
    pools = [p for p in pools if p["example_id"] in scored]
    rewards = [scored[p["example_id"]] for p in pools]
    print(f"{len(pools)} pools from {args.pools}; rewards from {args.run}")
    print("| T | n | RM pick | vote_sum | majority | first | oracle |")
    print("|---|---|---|---|---|---|---|")
    for t in args.temperatures:
        curve, _ = B.evaluate_pools(pools, rewards, args.ns, n_boot=args.n_boot, vote_temperature=t)
        for n, row in curve.items():
            cells = [f"{row[s]['accuracy']:.3f} [{row[s]['ci95'][0]:.3f}, {row[s]['ci95'][1]:.3f}]"
                     if row[s].get("ci95") else f"{row[s]['accuracy']:.3f}"
                     for s in ("rm", "vote_sum", "majority", "first", "oracle")]
            print(f"| {t:g} | {n} ({row['pools']}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
