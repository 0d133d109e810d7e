"""The gateway's request handling, framework-light: `Gateway.chat` answers `POST /v1/chat/completions`
(Best-of-N for tool requests, pass-through otherwise) given an httpx client for the upstream and
an async scoring function; `gateway_api` mounts it on a FastAPI app behind the serve kit's guard
(auth, body limit). The Ray Serve deployment (`gateway.app`) and the tests build the same API."""

# No `from __future__ import annotations`: FastAPI reads the route signatures at definition time.

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fcrm_ray.gateway.core import (BonPlan, candidates_from_responses, completion_response, plan_request, select,
                                   sse_lines, stream_chunks, sum_usage)
from fcrm_ray.gateway.upstream import UpstreamError, error_body, fetch_candidates, make_client, post_json
from fcrm_ray.serve.guard import RequestError, add_guard, parse_body, read_body

log = logging.getLogger("ray.serve")  # in a replica: Serve's replica log

# score(tools, messages, candidate texts) -> per candidate: float, None (unscorable) or {"error": ...}
ScoreFn = Callable[[list, list, list], Awaitable[list]]

COUNTERS = ("requests", "bon_requests", "passthrough_requests", "candidates_asked", "candidates_received",
            "candidates_scored", "upstream_errors", "failed_requests")


class Gateway:
    """One gateway replica's service: config, upstream client, scorer, counters. `metrics` (optional)
    maps counter names to objects with `inc(value)` (Ray Serve's `metrics.Counter` in a replica)."""

    def __init__(self, cfg: Any, client: httpx.AsyncClient | None, score: ScoreFn, metrics: dict | None = None):
        self.cfg, self._client, self.score = cfg, client, score
        self.metrics = metrics or {}
        self.counts = {k: 0 for k in COUNTERS}

    @property
    def client(self) -> httpx.AsyncClient:
        """The upstream client; made on first use when none was given (in the serving event loop)."""
        if self._client is None:
            self._client = make_client(self.cfg.upstream)
        return self._client

    @client.setter
    def client(self, value: httpx.AsyncClient) -> None:
        self._client = value

    def _count(self, name: str, value: int = 1) -> None:
        self.counts[name] += value
        m = self.metrics.get(name)
        if m is not None and value:
            m.inc(value)

    async def chat(self, body: bytes) -> Response:
        t0 = time.perf_counter()
        self._count("requests")
        try:
            plan = plan_request(parse_body(body, self.cfg.limits), self.cfg.selection)
        except RequestError as e:
            return e.response()
        if not plan.best_of_n:
            self._count("passthrough_requests")
            return await self._pass_through(plan)
        self._count("bon_requests")
        try:
            return await asyncio.wait_for(self._best_of_n(plan, t0), self.cfg.selection.request_timeout_s)
        except asyncio.TimeoutError:
            self._count("failed_requests")
            return _error(504, f"Best-of-N request took longer than selection.request_timeout_s="
                               f"{self.cfg.selection.request_timeout_s:g} s", "timeout")
        except RequestError as e:
            self._count("failed_requests")
            return e.response()

    async def _best_of_n(self, plan: BonPlan, t0: float) -> Response:
        sel = self.cfg.selection
        self._count("candidates_asked", plan.n)
        t_up = time.perf_counter()
        fetched = await fetch_candidates(self.client, self.cfg.upstream, plan)
        upstream_s = time.perf_counter() - t_up
        self._count("upstream_errors", len(fetched.errors))
        cands = candidates_from_responses(fetched.responses, plan.specs)[:plan.n]
        self._count("candidates_received", len(cands))
        if not cands and fetched.errors:  # all failed: the upstream's own status and error
            self._count("failed_requests")
            e = fetched.errors[-1]
            return JSONResponse(e.payload(), status_code=e.status)
        if len(cands) < sel.min_candidates:
            self._count("failed_requests")
            return _error(502, f"{len(cands)} candidates received, selection.min_candidates={sel.min_candidates} "
                               f"({len(fetched.errors)} upstream calls failed)", "too_few_candidates")
        t_sc = time.perf_counter()
        raw = await self.score(plan.tools, plan.messages, [c.text for c in cands])
        score_s = time.perf_counter() - t_sc
        for c, r in zip(cands, raw):
            if isinstance(r, dict):  # this candidate broke scoring: it alone ranks last
                c.error = str(r.get("error", "scoring failed"))[:300]
            else:
                c.reward = r
        self._count("candidates_scored", sum(c.reward is not None for c in cands))
        picked, rewards, flags = select([c.reward for c in cands], [c.key for c in cands], plan.rule,
                                        plan.vote_temperature)
        opts = plan.request.fcrm
        model = str(plan.body.get("model") or self.cfg.upstream.model or "")
        resp = completion_response(cands, picked, rewards, flags, model=model, usage=sum_usage(fetched.responses),
                                   rule=plan.rule, n_asked=plan.n, extension=bool(opts and opts.candidates))
        stats = {"asked": plan.n, "received": len(cands), "scored": sum(c.reward is not None for c in cands),
                 "picked": picked, "rule": plan.rule, "upstream_calls": fetched.calls,
                 "upstream_errors": len(fetched.errors), "upstream_s": round(upstream_s, 4),
                 "score_s": round(score_s, 4),
                 "overhead_s": round(time.perf_counter() - t0 - upstream_s, 4)}
        log.info("best-of-n %s", stats)  # counts and timings only: no request or response content
        if "fcrm" in resp:
            resp["fcrm"]["stats"] = stats
        if plan.request.stream:
            include = bool((plan.request.stream_options or {}).get("include_usage"))
            lines = sse_lines(stream_chunks(resp, include))
            return StreamingResponse(_iter(lines), media_type="text/event-stream")
        return JSONResponse(resp)

    async def _pass_through(self, plan: BonPlan) -> Response:
        """Forward the request unchanged; a streaming answer is relayed as it arrives."""
        body = dict(plan.body)
        if self.cfg.upstream.model:
            body["model"] = self.cfg.upstream.model
        if not plan.request.stream:
            try:
                return JSONResponse(await post_json(self.client, self.cfg.upstream, "/chat/completions", body))
            except UpstreamError as e:
                self._count("upstream_errors")
                return JSONResponse(e.payload(), status_code=e.status)
        req = self.client.build_request("POST", "/chat/completions", json=body)
        try:
            r = await self.client.send(req, stream=True)
        except httpx.TimeoutException:
            return _error(504, "upstream timed out", "timeout")
        except httpx.TransportError as e:
            return _error(502, f"upstream unreachable: {type(e).__name__}", "upstream_error")
        if r.status_code >= 400:
            await r.aread()
            await r.aclose()
            self._count("upstream_errors")
            return JSONResponse(error_body(r) if isinstance(error_body(r), dict) else
                                {"error": {"message": r.text[:2000], "code": r.status_code}}, status_code=r.status_code)

        async def relay():
            try:
                async for chunk in r.aiter_raw():
                    yield chunk
            finally:
                await r.aclose()

        return StreamingResponse(relay(), status_code=r.status_code,
                                 media_type=r.headers.get("content-type", "text/event-stream"))

    async def models(self) -> Response:
        try:
            return JSONResponse(await _get_json(self.client, "/models"))
        except UpstreamError as e:
            return JSONResponse(e.payload(), status_code=e.status)


async def _get_json(client: httpx.AsyncClient, path: str) -> dict:
    try:
        r = await client.get(path)
    except httpx.HTTPError as e:
        raise UpstreamError(502, f"upstream unreachable: {type(e).__name__}") from None
    if r.status_code >= 400:
        raise UpstreamError(r.status_code, error_body(r))
    try:
        return r.json()
    except ValueError:
        raise UpstreamError(502, "upstream answered malformed JSON") from None


async def _iter(lines):
    for line in lines:
        yield line


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "gateway_error", "code": code}}, status_code=status)


# The serving replica's gateway and guard settings (`install`); one per process. Routes reach them
# through module-level functions, which Serve's pickling of the app resolves by reference.
REPLICA: dict = {"settings": {}}


def install(gateway: Gateway, settings: dict) -> None:
    REPLICA["gateway"] = gateway
    REPLICA["settings"].update(settings)


def replica_settings() -> dict:
    return REPLICA["settings"]


def _lookup(state: dict | None) -> Gateway:
    return (REPLICA if state is None else state)["gateway"]


def gateway_api(state: dict | None = None) -> FastAPI:
    """The gateway's FastAPI app. With `state` (tests, benchmarks): `state["gateway"]` is the
    `Gateway`, `state["settings"]` what the guard reads (token, max_body_bytes, route_prefix).
    Without: the replica's, set by `install` (the Serve ingress)."""
    api = FastAPI(title="fcrm Best-of-N gateway", version="1")
    if state is None:
        add_guard(api, replica_settings)
    else:
        add_guard(api, state.setdefault("settings", {}))

    @api.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models():
        return await _lookup(state).models()

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        gw = _lookup(state)
        try:
            body = await read_body(request, gw.cfg.limits.max_body_bytes)
        except RequestError as e:
            return e.response()
        return await gw.chat(body)

    @api.get("/stats")
    async def stats():
        return dict(_lookup(state).counts)

    return api
