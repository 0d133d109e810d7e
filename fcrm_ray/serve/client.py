"""Python client of the reward service: timeouts, retries with backoff, bounded concurrency.

    from fcrm_ray.serve.client import RewardClient
    rc = RewardClient("http://127.0.0.1:8000", token=None)
    rc.rewards(tools, messages, ["[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"])
    rc.get_reward(["<prompt><response>"], prompts=["<prompt>"])
    rc.get_reward_many(queries, prompts, labels, chunk_size=32)   # <= max_concurrency requests in flight

Retried (up to `retries` times, exponential `backoff` with jitter, at least the server's
`Retry-After`): connection errors and timeouts, 5xx, and 429 (too many requests). Not retried:
any other 4xx (the request itself is wrong); it raises `RewardServiceError` carrying the status
and the server's `detail`, which names the field to fix. Every request has a `timeout`.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx


class RewardServiceError(RuntimeError):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


class RewardClient:
    """Synchronous client (thread-safe); `retries` extra attempts with exponential `backoff`
    seconds (capped at `max_backoff`); the `*_many` methods keep at most `max_concurrency`
    requests in flight."""

    def __init__(self, base_url: str, token: str | None = None, retries: int = 3, backoff: float = 0.5,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None, max_concurrency: int = 4,
                 max_backoff: float = 30.0):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.max_concurrency = max_concurrency
        self.retried = 0  # retries made so far (5xx/429 answers and connection errors), for load tests and logs
        self._lock = threading.Lock()
        limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport,
                                  limits=limits)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        attempt = 0
        while True:
            wait = 0.0
            try:
                r = self._http.request(method, path, json=json)
            except httpx.TransportError:  # connect/read errors and timeouts: the server may come back
                if attempt >= self.retries:
                    raise
            else:
                if r.status_code < 400:
                    return r.json()
                if not _retryable(r.status_code) or attempt >= self.retries:
                    raise RewardServiceError(r.status_code, _detail(r))
                wait = _retry_after(r)
            # full jitter: clients retrying after the same outage do not come back in lockstep
            delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            time.sleep(max(wait, random.uniform(0.5 * delay, delay)))
            attempt += 1
            with self._lock:
                self.retried += 1

    def _many(self, bodies: list[tuple[str, dict]]) -> list[Any]:
        if len(bodies) <= 1 or self.max_concurrency == 1:
            return [self._request("POST", p, b) for p, b in bodies]
        with ThreadPoolExecutor(min(self.max_concurrency, len(bodies))) as ex:
            return list(ex.map(lambda pb: self._request("POST", *pb), bodies))

    def rewards(self, tools: Sequence[Any], messages: Sequence[dict], candidates: Sequence[Any],
                reference: Any = None, model: str | None = None) -> dict:
        """Rewards (and verdicts when `reference` is given) for one context's candidates:
        `{"model", "rewards": [...], "results": [{"rewards", "verdicts"?}]}`."""
        body: dict[str, Any] = {"tools": list(tools), "messages": list(messages), "candidates": list(candidates)}
        if reference is not None:
            body["reference"] = reference
        if model:
            body["model"] = model
        return self._request("POST", "/v1/rewards", body)

    def rewards_batch(self, items: Sequence[dict], model: str | None = None) -> dict:
        body: dict[str, Any] = {"items": list(items)}
        if model:
            body["model"] = model
        return self._request("POST", "/v1/rewards", body)

    def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                   labels: Sequence[Any] | None = None) -> dict:
        """OpenRLHF protocol: `{"rewards", "scores", "extra_logs"}`."""
        body: dict[str, Any] = {"query": list(queries)}
        if prompts is not None:
            body["prompts"] = list(prompts)
        if labels is not None:
            body["labels"] = list(labels)
        return self._request("POST", "/get_reward", body)

    def get_reward_many(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                        labels: Sequence[Any] | None = None, chunk_size: int = 32) -> dict:
        """`get_reward` over many queries: chunks of `chunk_size`, at most `max_concurrency` in
        flight, answers concatenated in order (`rewards`, `scores`, every `extra_logs` list)."""
        n, bodies = len(queries), []
        for i in range(0, n, chunk_size):
            body: dict[str, Any] = {"query": list(queries[i:i + chunk_size])}
            if prompts is not None:
                body["prompts"] = list(prompts[i:i + chunk_size])
            if labels is not None:
                body["labels"] = list(labels[i:i + chunk_size])
            bodies.append(("/get_reward", body))
        out: dict[str, Any] = {"rewards": [], "scores": [], "extra_logs": {}}
        for part in self._many(bodies):
            out["rewards"] += part["rewards"]
            out["scores"] += part["scores"]
            for k, v in part.get("extra_logs", {}).items():
                out["extra_logs"].setdefault(k, []).extend(v)
            if "error_types" in part:
                out.setdefault("error_types", []).extend(part["error_types"])
        return out

    def rewards_many(self, items: Sequence[dict], chunk_size: int = 64, model: str | None = None) -> list[dict]:
        """`rewards_batch` over many items, chunked, at most `max_concurrency` in flight; the
        per-item `results` in order."""
        bodies = []
        for i in range(0, len(items), chunk_size):
            body: dict[str, Any] = {"items": list(items[i:i + chunk_size])}
            if model:
                body["model"] = model
            bodies.append(("/v1/rewards", body))
        return [r for part in self._many(bodies) for r in part["results"]]

    def healthz(self) -> dict:
        return self._request("GET", "/healthz")

    def models(self) -> dict:
        return self._request("GET", "/v1/models")


def _retry_after(r: httpx.Response) -> float:
    """The server's Retry-After in seconds (delta form), capped at 60; 0 if absent."""
    try:
        return min(60.0, max(0.0, float(r.headers.get("retry-after", 0))))
    except ValueError:
        return 0.0


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json()
        return str(d.get("detail", d)) if isinstance(d, dict) else str(d)
    except ValueError:
        return r.text[:500]
