"""Calls to the upstream OpenAI-compatible server (httpx, async): one chat completion with
retries (429, 5xx, connection errors and timeouts, exponential backoff), and `fetch_candidates`,
which gets n candidates through `n` or n parallel calls and keeps what arrived when some fail.
The upstream token comes from an environment variable and only ever goes into the header."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from fcrm_ray.gateway.core import BonPlan, upstream_body


class UpstreamError(Exception):
    """An upstream call that failed for good: the status and error body the client should see."""

    def __init__(self, status: int, body: Any, retryable: bool = False):
        super().__init__(f"upstream answered {status}")
        self.status, self.body, self.retryable = status, body, retryable

    def payload(self) -> dict:
        if isinstance(self.body, dict) and "error" in self.body:
            return self.body  # OpenAI-shaped already: pass it through as it came
        return {"error": {"message": str(self.body)[:2000], "type": "upstream_error", "code": self.status}}


def make_client(ucfg: Any) -> httpx.AsyncClient:
    """One pooled client per gateway replica (keep-alive to the upstream)."""
    key = ucfg.api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = httpx.Timeout(ucfg.timeout_s, connect=ucfg.connect_timeout_s)
    limits = httpx.Limits(max_connections=ucfg.max_connections, max_keepalive_connections=ucfg.max_connections)
    return httpx.AsyncClient(base_url=ucfg.url.rstrip("/"), headers=headers, timeout=timeout, limits=limits)


def error_body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text[:2000]


async def post_json(client: httpx.AsyncClient, ucfg: Any, path: str, body: dict) -> dict:
    """POST `body`; the decoded JSON object of a 2xx answer. 429, 5xx, timeouts and connection
    errors are retried `ucfg.retries` times with backoff; other 4xx fail at once. A 2xx whose body
    is not a JSON object, or a completion without `choices`, is a 502."""
    err: UpstreamError | None = None
    for attempt in range(ucfg.retries + 1):
        if attempt:
            await asyncio.sleep(ucfg.retry_backoff_s * (2 ** (attempt - 1)))
        try:
            r = await client.post(path, json=body)
        except httpx.TimeoutException:
            err = UpstreamError(504, f"upstream timed out after {ucfg.timeout_s:g} s (upstream.timeout_s)", True)
            continue
        except httpx.TransportError as e:
            err = UpstreamError(502, f"upstream unreachable: {type(e).__name__}", True)
            continue
        if r.status_code == 429 or r.status_code >= 500:
            err = UpstreamError(r.status_code, error_body(r), True)
            continue
        if r.status_code >= 400:
            raise UpstreamError(r.status_code, error_body(r))
        try:
            data = r.json()
        except (json.JSONDecodeError, ValueError):
            err = UpstreamError(502, "upstream answered malformed JSON", True)
            continue
        if not isinstance(data, dict) or (path.endswith("/chat/completions") and not isinstance(data.get("choices"), list)):
            err = UpstreamError(502, "upstream answered JSON that is not a chat completion (no `choices`)", True)
            continue
        return data
    raise err  # type: ignore[misc]


@dataclass
class Fetched:
    """What the upstream gave for one Best-of-N request."""

    responses: list[dict] = field(default_factory=list)
    errors: list[UpstreamError] = field(default_factory=list)
    calls: int = 0
    parallel: bool = False  # candidates came (also) from n=1 calls

    def choices(self) -> int:
        return sum(len(r.get("choices") or []) for r in self.responses)


async def _gather(client, ucfg, plan: BonPlan, model: str, count: int, first_seed: int, out: Fetched) -> None:
    calls = [post_json(client, ucfg, "/chat/completions", upstream_body(plan, 1, model, seed_offset=first_seed + i))
             for i in range(count)]
    out.calls += count
    out.parallel = True
    for res in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(res, UpstreamError):
            out.errors.append(res)
        elif isinstance(res, BaseException):
            raise res
        else:
            out.responses.append(res)


async def fetch_candidates(client: httpx.AsyncClient, ucfg: Any, plan: BonPlan) -> Fetched:
    """n candidates for `plan`: `upstream.n_mode` "n" = one call with `n`; "parallel" = n calls
    with n=1; "auto" = one call with `n`, then parallel calls for what is missing when the upstream
    returned fewer choices (it ignores `n`) or refused `n` with a 400."""
    out = Fetched()
    n, model = plan.n, ucfg.model
    if ucfg.n_mode == "parallel" or n == 1 and ucfg.n_mode != "n":
        await _gather(client, ucfg, plan, model, n, 0, out)
        return out
    out.calls += 1
    try:
        out.responses.append(await post_json(client, ucfg, "/chat/completions", upstream_body(plan, n, model)))
    except UpstreamError as e:
        out.errors.append(e)
        if ucfg.n_mode == "n" or e.status != 400:
            return out
    missing = n - out.choices()
    if ucfg.n_mode == "auto" and missing > 0:
        await _gather(client, ucfg, plan, model, missing, out.choices(), out)
    return out
