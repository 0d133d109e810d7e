"""Calls from an ingress to model deployments: a replica that dies mid-request is retried on a live
one, then answered 503 + Retry-After; `ServiceState` remembers what an ingress replica learnt
about its model deployments."""

import asyncio
import time

from ray.exceptions import ActorUnavailableError, RayActorError

from fcrm_ray.serve.guard import RequestError


def replica_unavailable(e: BaseException) -> RequestError | None:
    """A model replica that died or is being replaced mid-request -> 503 with Retry-After (after
    the ingress's own retries). Any other error stays a 500."""
    if isinstance(e, (RayActorError, ActorUnavailableError)):
        return RequestError(503, "model", f"model replica unavailable ({type(e).__name__}); retry the request")
    return None


class ServiceState:
    """What one ingress replica remembers about its model deployments: each model's reward lower
    bound (asked once) and when a call last succeeded (so /healthz need not probe under load)."""

    def __init__(self):
        self.bounds: dict[str, float | None] = {}
        self.last_ok: dict[str, float] = {}


async def call_model(cfg, state: ServiceState, name: str, make_call):
    """Await `make_call()` (a model-deployment call); a dead replica is retried
    `limits.model_retries` times with backoff (Serve routes the retry to a live replica), then
    becomes RequestError(503)."""
    lim = cfg.limits
    for attempt in range(lim.model_retries + 1):
        try:
            out = await make_call()
        except Exception as e:
            err = replica_unavailable(e)
            if err is None:
                raise
            if attempt == lim.model_retries:
                raise err from None
            await asyncio.sleep(lim.model_retry_backoff_s * (2 ** attempt))
        else:
            state.last_ok[name] = time.monotonic()
            return out

