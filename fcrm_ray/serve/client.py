"""Python client of the reward service, with retries on connection errors and 5xx responses.

    from fcrm_ray.serve.client import RewardClient
    rc = RewardClient("http://127.0.0.1:8000", token=None)
    rc.rewards(tools, messages, ["[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"])
    rc.get_reward(["<prompt><response>"], prompts=["<prompt>"])

4xx responses are not retried (the request itself is wrong): they raise `RewardServiceError`
carrying the status and the server's `detail`, which names the field to fix.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import httpx


class RewardServiceError(RuntimeError):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class RewardClient:
    """Thin synchronous client; `retries` extra attempts with exponential `backoff` seconds."""

    def __init__(self, base_url: str, token: str | None = None, retries: int = 3, backoff: float = 0.5,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries, self.backoff = retries, backoff
        self.retried = 0  # retries made so far (5xx answers and connection errors), for load tests and logs
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                r = self._http.request(method, path, json=json)
            except httpx.TransportError:  # connect/read errors and timeouts: the server may come back
                if attempt >= self.retries:
                    raise
            else:
                if r.status_code < 400:
                    return r.json()
                if r.status_code < 500 or attempt >= self.retries:
                    raise RewardServiceError(r.status_code, _detail(r))
            time.sleep(self.backoff * (2 ** attempt))
            attempt += 1
            self.retried += 1

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

    def healthz(self) -> dict:
        return self._request("GET", "/healthz")

    def models(self) -> dict:
        return self._request("GET", "/v1/models")


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json()
        return str(d.get("detail", d)) if isinstance(d, dict) else str(d)
    except ValueError:
        return r.text[:500]
