"""One scored request against a running `fcrm serve`: a BFCL example's correct call and verified
wrong versions of it, over HTTP. The pipeline's serve stage uses it to check a service it started;
anyone can run it against a deployed one (`check(url)`)."""

from __future__ import annotations

import json
import random
import time

from fcrm_ray.data.sources import read_bfcl
from fcrm_ray.serve.client import RewardClient
from fcrm_ray.toolcall.mutate import mutate_all


def wait_healthy(url: str, timeout_s: float, alive=lambda: True) -> bool:
    """Poll `/healthz` until it answers (True), `alive()` turns False or `timeout_s` passes (False)."""
    client = RewardClient(url, retries=0, timeout=10)
    deadline = time.monotonic() + timeout_s
    while alive():
        try:
            client.healthz()
            return True
        except Exception:
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
    return False


def check(url: str, category: str = "live_simple", n_wrong: int = 3) -> dict:
    """Score the first `category` example's reference call and `n_wrong` mutations of it; the
    result says whether the correct call was ranked first."""
    ex = next(iter(read_bfcl([category])))
    good = json.dumps([r.canonical_call().to_dict() for r in ex.reference])
    wrong = [m for m in mutate_all(ex, random.Random(0)) if m.calls][:n_wrong]
    candidates = [good] + [m.text for m in wrong]
    t0 = time.perf_counter()
    with RewardClient(url, retries=2, timeout=60) as rc:
        resp = rc.rewards([t.to_dict() for t in ex.tools], ex.conversation, candidates,
                          reference=[r.to_bfcl() for r in ex.reference])
        models = rc.models()
    latency = time.perf_counter() - t0
    rewards = resp["rewards"]
    return {"url": url, "example_id": ex.id, "latency_s": round(latency, 3),
            "candidates": [{"label": "correct" if i == 0 else wrong[i - 1].error_type, "reward": r}
                           for i, r in enumerate(rewards)],
            "correct_ranked_first": bool(rewards) and rewards[0] == max(rewards),
            "models": models}
