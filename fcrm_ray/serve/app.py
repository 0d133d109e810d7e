"""`fcrm serve`: the reward service as a Ray Serve application.

    fcrm serve --config configs/serve.yaml [key=value ...]   # e.g. models.fcrm-rm.path=runs/rm-minilm
    fcrm serve --config configs/serve.yaml --emit-config configs/serve_deploy.yaml   # for `serve deploy`
    serve run fcrm_ray.serve.app:app_builder config=configs/serve.yaml              # Serve's own CLI

Shape: one FastAPI ingress deployment (`RewardIngress`: auth, size limits, validation, fan-out)
and one deployment per reward model (`RewardModel_<name>`):

- batching: every candidate of every request goes into the model replica's `MicroBatcher`; one
  forward runs at a time, and the next batch is everything that queued meanwhile (up to
  `models.<name>.batch_size`). `batch_wait_timeout_s` is how long an idle replica waits for company.
  See `MicroBatcher` for why this is not `@serve.batch`.
- `max_ongoing_requests` defaults to 2 x batch_size (Serve's default of 5 would cap the queue
  a batch is taken from); the autoscaling target defaults to batch_size.
- `autoscaling` (min/max replicas, target ongoing requests) and `ray_actor_options` (num_gpus,
  num_cpus) per model come from the config.
- isolation: the ingress validates everything a renderer reads (messages, tool_calls, tools,
  references, nesting depth, string and name lengths) and answers 4xx naming the field; inside
  a model replica a unit that still fails to render or score fails alone (its item gets `error`
  and null rewards, `/get_reward` flags it in `extra_logs.error`), its batch neighbours are scored.
- unscorable candidates (empty, longer than max_length) get `reward.unscorable_reward` (default:
  strictly below anything the model's head can output; see `RewardConfig`), flagged `unscorable`.
- a model replica that dies mid-request: the ingress retries the call (`limits.model_retries`)
  so with >= 2 replicas the survivor answers; with none left, 503 + Retry-After.
- `/healthz` is readiness: 200 only when every model deployment answers (a replica answers after
  its warm-up forward), else 503. It and Ray Serve's own `/-/healthz` and `/-/routes` (served by
  the proxy, outside this app: they show app names and route prefixes) need no token; every
  other route needs `Authorization: Bearer <token>` when a token is set (401 otherwise).
- safety: the proxy binds `host` (127.0.0.1 unless configured); a host that is not loopback
  (including "") needs a bearer token (ServeConfig.validate). Bodies over
  `limits.max_body_bytes` get 413 (also chunked ones, counted while reading); a body that is not
  readable JSON gets 400; JSON of the wrong shape or over a limit gets 422 with `detail` and
  `field` naming the place (e.g. `items[0].candidates`).
- rendered chat in: `/get_reward` queries and `{"text"}` items are read back into tools, messages
  and the response (`toolcall.chat_parse`, `reward.chat_family`) and scored like a `/v1/rewards`
  candidate (`text_work`); no catalog or no call -> `reward.unparsed` (penalty | raw_text), flagged.
- verifier in the reward: a reference (`reference` / `labels`) adds the verifier's verdicts;
  `reward.mode` rm | verifier | mix combines them (`combine`).
- scoring goes through `fcrm_ray.scoring.RewardScorer`, the same function eval and filter use.

Routes: `POST /v1/rewards`, `POST /get_reward` (OpenRLHF remote RM), `GET /healthz` (readiness),
`GET /v1/models`.

    curl -s localhost:8000/v1/rewards -H 'content-type: application/json' -d '{
      "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
      "messages": [{"role": "user", "content": "Weather in Paris?"}],
      "candidates": ["[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
                     [{"name": "get_weather", "arguments": {"city": "Rome"}}]],
      "reference": [{"get_weather": {"city": ["Paris"]}}]}'
    # -> {"model": "fcrm-rm", "rewards": [r1, r2], "results": [{"rewards": [...], "verdicts": [...]}]}
    curl -s localhost:8000/get_reward -H 'content-type: application/json' \
      -d '{"query": ["<prompt><response>"], "prompts": ["<prompt>"]}'
    # -> {"rewards": [...], "scores": [...], "extra_logs": {"unscorable": [...], "error": [...]}}
    # with a token: -H "Authorization: Bearer $FCRM_SERVE_TOKEN"

OpenRLHF: start `fcrm serve` and pass `--remote_rm_url http://HOST:PORT/get_reward` to
`openrlhf.cli.train_ppo_ray` (newer releases: `--reward.remote_url`). OpenRLHF POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` and reads `rewards` (also `scores`,
`extra_logs`); its client sends no auth header, so keep the token off (loopback / private network)
or put a proxy in front.

Metrics: Ray Serve's own Prometheus metrics (`ray_serve_num_http_requests`,
`ray_serve_deployment_processing_latency_ms` ...; batch sizes are in `GET /v1/models`) are exported by each node's
metrics agent on Ray's metrics export port (`ray start --metrics-export-port=8080`, or
`ray.init(_metrics_export_port=...)`; `fcrm serve` sets it from `metrics_export_port` when it
starts Ray itself); scrape `http://NODE:PORT/metrics`.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (`request: Request`)
# at definition time.

import asyncio
import hmac
import json
import os
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError

from fcrm_ray.common.ray_cluster import ray_init
from fcrm_ray.config import ConfigError, config_arg_parser, from_dict, load_config, to_dict
from fcrm_ray.models import RewardModelError, check_reward_model_dir
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.scoring import finite_or_none, make_scorer
from fcrm_ray.serve.config import ModelConfig, ServeConfig
from fcrm_ray.serve.schemas import GetRewardRequest, RewardItem, TextItem, candidate_payload
from fcrm_ray.serve.schemas import error_location as loc_str
from fcrm_ray.toolcall import chat_parse
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.render import render
from fcrm_ray.toolcall.schema import SchemaError, ToolCall, normalize_tools, reference_from_bfcl, reference_from_calls
from fcrm_ray.toolcall.verify import PRECEDENCE, verify

# --- scoring backend (runs inside model replicas) -----------------------------------------------

# Reward floor for heads whose range we cannot bound (see head_lower_bound); documented in
# RewardConfig. Any head fcrm trains (BERT-style encoders, causal LMs with a final RMSNorm or
# LayerNorm) gets its provable bound instead.
FALLBACK_FLOOR = -100.0


def head_lower_bound(model: Any) -> float | None:
    """B >= 0 such that the reward head cannot output less than -B for ANY input, from the head's
    weights (the representation it reads is bounded by construction), or None if unknown.

    - BERT-style: `classifier(tanh(pooler))` (or RoBERTa's `out_proj(tanh(dense))`): every input
      coordinate is in (-1, 1), so |r| < |w|_1 + |b|.
    - causal LM `score` over a final RMSNorm (weight * x / rms(x)) or LayerNorm: the normalised
      vector has L2 norm <= sqrt(d), so |r| <= sqrt(d) * |w * gamma|_2 + |w . beta| + |b|."""
    # local: only model replicas run this; the ingress replicas and `fcrm serve` import this module too
    import torch

    def lin(m):
        return m if isinstance(m, torch.nn.Linear) and m.out_features == 1 else None

    def wb(m):
        w = m.weight.detach().double().reshape(-1)
        b = float(m.bias.detach().double().abs().sum()) if m.bias is not None else 0.0
        return w, b

    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = getattr(model, "classifier", None)
    if lin(head) is not None:
        pooler = getattr(base, "pooler", None)
        if isinstance(getattr(pooler, "activation", None), torch.nn.Tanh):
            w, b = wb(head)
            return float(w.abs().sum()) + b
        return None
    if head is not None and lin(getattr(head, "out_proj", None)) is not None and hasattr(head, "dense"):
        w, b = wb(head.out_proj)  # RoBERTa-style: out_proj(tanh(dense(x)))
        return float(w.abs().sum()) + b
    score, norm = lin(getattr(model, "score", None)), getattr(base, "norm", None)
    if score is None or norm is None or getattr(norm, "weight", None) is None:
        return None
    w, b = wb(score)
    gamma = norm.weight.detach().double().reshape(-1)
    name = type(norm).__name__
    if "Gemma" in name or not ("RMSNorm" in name or isinstance(norm, torch.nn.LayerNorm)):
        return None  # Gemma scales by (1 + weight); other norms: unknown
    bound = math.sqrt(gamma.numel()) * float((w * gamma).norm()) + b
    beta = getattr(norm, "bias", None)
    if beta is not None:
        bound += abs(float((w * beta.detach().double().reshape(-1)).sum()))
    return bound


class RewardBackend:
    """A `RewardScorer` plus the glue to score a batch of mixed units in as few forwards as possible,
    one bad unit failing alone.

    Units: `("cand", tools, messages, candidate)` rendered with `toolcall.render` (the training
    rendering) and `("text", prompt, completion)` (pre-rendered text). Results per unit: a finite
    float, None (unscorable: empty, or too long for max_length) or `{"error": reason}` (the unit
    could not be rendered or scored; the rest of the batch is unaffected)."""

    def __init__(self, mcfg: ModelConfig):
        self.cfg = mcfg
        self.scorer = make_scorer(mcfg.path, **mcfg.scorer_kwargs())
        # vLLM holds its weights in its own process: no bound to read from a head there
        self.lower_bound = head_lower_bound(self.scorer.model) if self.scorer.model is not None else None

    def score_units(self, units: list[tuple]) -> list[Any]:
        out: list[Any] = [None] * len(units)
        groups: dict[str, list[tuple[int, str]]] = {}  # rendered prompt -> [(unit, completion)]
        for i, u in enumerate(units):
            try:
                if u[0] == "text":
                    prompt, completion = str(u[1]), str(u[2])
                else:
                    r = render(self.scorer.tokenizer, u[1], u[2], u[3])
                    prompt, completion = r.prompt, r.completion
            except Exception as e:  # a template or renderer exception: this unit only
                out[i] = _unit_error("render", e)
                continue
            groups.setdefault(prompt, []).append((i, completion))
        specs = [(p, [c for _, c in members]) for p, members in groups.items()]
        try:  # one call: prefix sharing and length bucketing across the whole batch
            results = self.scorer.score_groups(specs)
        except Exception:  # isolate: score group by group, a failing group fails alone
            results = []
            for spec in specs:
                try:
                    results.append(self.scorer.score_groups([spec])[0])
                except Exception as e:
                    results.append([_unit_error("score", e)] * len(spec[1]))
        for members, scores in zip(groups.values(), results):
            for (i, _), s in zip(members, scores):
                out[i] = s if isinstance(s, dict) else finite_or_none(s)
        return out

    def warm_up(self) -> None:
        """One forward before the replica reports ready (the first one pays lazy initialisation)."""
        self.score_units([("text", "[USER] warm up\n[CALL]", " ok")])

    def info(self) -> dict:
        info = getattr(self.scorer, "model_info", None)
        return dict(info()) if callable(info) else {}


def _unit_error(stage: str, e: BaseException) -> dict:
    return {"error": f"{stage} failed: {type(e).__name__}: {str(e)[:300]}"}



class MicroBatcher:
    """Continuous batching for one model replica: one forward at a time, and the next batch is
    everything that queued while the previous forward ran (up to max_batch_size).

    Why not `@serve.batch`: its loop forms the NEXT batch as soon as `batch_wait_timeout_s` has
    passed after the first arrival, then parks it behind `max_concurrent_batches`; a batch's
    contents are fixed while it waits. Under load on a CPU replica (forwards of 50-500 ms, arrivals
    every 10-50 ms) that gives batches of 1-3 however many requests are queued (issue 16 measured
    2.5-2.8 candidates at 32 clients, max_batch_size 1 vs 32 made no difference). Here a batch is
    formed only when the model is free to run it. `batch_wait_timeout_s` applies only when the
    replica was idle: a lone request waits that long for company, a busy replica never waits."""

    def __init__(self, fn, max_batch_size: int, wait_s: float):
        self.fn, self.max_batch_size, self.wait_s = fn, max_batch_size, wait_s
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.batches = self.units = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, unit: Any) -> Any:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        self.queue.append((unit, fut))
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                if self.wait_s > 0 and len(self.queue) < self.max_batch_size:
                    await asyncio.sleep(self.wait_s)
            batch = [(u, f) for u, f in self.queue[:self.max_batch_size] if not f.done()]  # done = cancelled
            del self.queue[:self.max_batch_size]
            if not batch:
                continue
            self.batches += 1
            self.units += len(batch)
            try:  # in a thread, so requests keep queueing (and the next batch fills) during the forward
                results = await asyncio.to_thread(self.fn, [u for u, _ in batch])
            except Exception as e:  # the backend isolates per unit; this is a last resort
                results = [_unit_error("batch", e)] * len(batch)
            for (_, f), r in zip(batch, results):
                if not f.done():
                    f.set_result(r)


# --- request handling (pure async functions over deployment handles; testable without Serve) ------

# Per-replica settings the HTTP middleware reads (set in RewardIngress.__init__; each replica is
# its own process, so this is not shared state between replicas).
SETTINGS: dict = {}


class RequestError(Exception):
    """A client error: HTTP status + the field to fix."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def response(self):
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse({"detail": str(self), "field": self.field}, status_code=self.status, headers=headers)


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


async def call_model(cfg: ServeConfig, state: ServiceState, name: str, make_call):
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


async def _lower_bound(cfg: ServeConfig, state: ServiceState, name: str, handle) -> float | None:
    """The model head's reward lower bound (asked once per ingress replica; only for "auto")."""
    if cfg.reward.floor_value() is not None:
        return None
    if name not in state.bounds:
        info = await call_model(cfg, state, name, lambda: handle.info.remote())
        state.bounds[name] = (info.get("details") or {}).get("reward_lower_bound")
    return state.bounds[name]


def unscorable_value(rcfg, lower_bound: float | None, scored: list[float]) -> float:
    """The reward of an unscorable candidate (see `RewardConfig`): the configured penalty or the
    head's bound - margin, capped at (lowest scorable reward of the response) - margin."""
    floor = rcfg.floor_value()
    if floor is None:
        floor = -lower_bound - rcfg.unscorable_margin if lower_bound is not None else FALLBACK_FLOOR
    if scored:
        floor = min(floor, min(scored) - rcfg.unscorable_margin)
    return floor


def token_ok(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def _route(settings: dict, path: str) -> str:
    return (settings.get("route_prefix") or "/").rstrip("/") + path


def parse_body(body: bytes, limits=None) -> Any:
    """JSON body -> value. 400 if it is not JSON we can read; 422 naming the place if it breaks a
    shape limit (depth, string or name length)."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body", "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, "body", f"malformed JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise RequestError(400, "body", "JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer over Python's 4,300-digit conversion limit
        raise RequestError(400, "body", f"unreadable JSON value: {str(e)[:120]}") from None
    if limits is not None:
        check_shape(data, limits)
    return data


def _where(path: tuple) -> str:
    if not path:
        return "body"
    return error_location(path[:8]) + ("..." if len(path) > 8 else "")  # deep paths: the way in


def error_location(loc: tuple) -> str:
    return loc_str(loc)


def check_shape(data: Any, lim) -> None:
    """Walk the parsed body once (iteratively: no recursion a hostile body can exhaust) and
    enforce limits.max_json_depth / max_string_chars / max_name_chars."""
    stack = [(data, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > lim.max_string_chars:
                raise RequestError(422, _where(path), f"string of {len(node)} characters exceeds "
                                                      f"limits.max_string_chars={lim.max_string_chars}")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > lim.max_json_depth:
            raise RequestError(422, _where(path), f"nested deeper than limits.max_json_depth={lim.max_json_depth}")
        if isinstance(node, list):
            stack.extend((v, path + (i,), depth + 1) for i, v in enumerate(node))
            continue
        for k, v in node.items():
            if len(k) > lim.max_name_chars or (k == "name" and isinstance(v, str) and len(v) > lim.max_name_chars):
                what = "key" if len(k) > lim.max_name_chars else "name"
                n = len(k) if what == "key" else len(v)
                raise RequestError(422, _where(path + ((k[:40],) if what == "name" else ())),
                                   f"{what} of {n} characters exceeds limits.max_name_chars={lim.max_name_chars}")
            stack.append((v, path + (k,), depth + 1))


def _validation_error(e, prefix: tuple = ()) -> RequestError:
    first = e.errors()[0]
    return RequestError(422, error_location(prefix + tuple(first["loc"])), first["msg"])


def _check_len(value: Any, limit: int, field: str, key: str) -> None:
    if isinstance(value, list) and len(value) > limit:
        raise RequestError(422, field, f"{len(value)} entries exceed limits.{key}={limit}")


def _model_handle(cfg: ServeConfig, models: dict, name: str | None):
    m = cfg.model(name)
    if m is None or m.name not in models:
        raise RequestError(422, "model", f"unknown model {name!r}; serving {sorted(models)}")
    return m, models[m.name]


def parse_reference(raw: Any):
    """A reference in any form clients send: BFCL's possible answer `[{fn: {param: [values]}}]`,
    a list of calls `[{"name", "arguments"}]`, or a JSON string of either. SchemaError if neither."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError, ValueError) as e:
            raise SchemaError(f"reference is not valid JSON: {str(e)[:100]}") from None
    if isinstance(raw, dict):
        raw = [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in raw):
        calls = []
        for i, x in enumerate(raw):
            args = x.get("arguments", x.get("parameters", {}))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except (json.JSONDecodeError, RecursionError, ValueError):
                    raise SchemaError(f"reference[{i}].arguments is not a JSON object") from None
            if not isinstance(args, dict):
                raise SchemaError(f"reference[{i}].arguments must be an object")
            calls.append(ToolCall(x["name"], args))
        return reference_from_calls(calls)
    return reference_from_bfcl(raw)


def _verdict(v: Any) -> dict:
    return {"correct": bool(v.correct), "error_type": v.error_type, "detail": str(v.detail or "")[:300]}


def combine(rcfg, model_reward: float | None, unscorable: bool, floor: float, verdict: dict | None) -> float:
    """The reward of one candidate under `reward.mode`:
      rm:       the model's reward (an unscorable candidate: `floor`);
      verifier: +1 if the verifier says correct, else -1;
      mix:      model reward + verifier_weight * (+1 correct / -1 wrong); an unscorable candidate
                gets floor - verifier_weight, below every scorable candidate's mix.
    Without a verdict (no reference) mix falls back to the model's reward."""
    rm = floor if unscorable or model_reward is None else model_reward
    if verdict is None or rcfg.mode == "rm":
        return rm
    v = 1.0 if verdict["correct"] else -1.0
    if rcfg.mode == "verifier":
        return v
    if unscorable:
        return floor - rcfg.verifier_weight
    return rm + rcfg.verifier_weight * v


def _scores_of(rewards: list[float]) -> list[float]:
    return [1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, r)))) for r in rewards]


def _normalize_item(it: Any, where: str):
    """(normalized tools, reference or None, messages as plain dicts) of a validated RewardItem."""
    try:
        specs = normalize_tools(it.tools)
    except SchemaError as e:
        raise RequestError(422, f"{where}tools", str(e)) from None
    try:
        ref = parse_reference(it.reference) if it.reference is not None else None
    except SchemaError as e:
        raise RequestError(422, f"{where}reference", str(e)) from None
    messages = [m.model_dump(exclude_none=True) for m in it.messages]
    return specs, ref, messages


async def handle_rewards(cfg: ServeConfig, models: dict, body: bytes, state: ServiceState | None = None) -> Any:
    """`POST /v1/rewards`: a single item, `{"items": [...]}` or a bare list of items. An item is
    `{tools, messages, candidates, reference?}` or `{text, prompt?, reference?}` (rendered chat)."""
    state = state or ServiceState()
    try:
        data = parse_body(body, cfg.limits)
        single = isinstance(data, dict) and "items" not in data
        if isinstance(data, list):
            data = {"items": data}
        elif single:
            data = dict(data)
            data = {"model": data.pop("model", None), "items": [data]}
        elif not isinstance(data, dict):
            raise RequestError(422, "body", f"expected a JSON object or list, got {type(data).__name__}")
        extra = sorted(set(data) - {"items", "model"})
        if extra:
            raise RequestError(422, extra[0] or "body", f"extra input {extra[0]!r} is not permitted")
        lim = cfg.limits
        items = data.get("items")
        if not isinstance(items, list) or not items:
            raise RequestError(422, "items", "a non-empty list of items is required")
        _check_len(items, lim.max_items_per_request, "items", "max_items_per_request")
        if data.get("model") is not None and not isinstance(data["model"], str):
            raise RequestError(422, "model", "must be a string")
        mcfg, handle = _model_handle(cfg, models, data.get("model"))
        works: list[tuple[str | None, Work]] = []  # (item id, its scoring work)
        for i, raw in enumerate(items):
            where = "" if single else f"items[{i}]."
            prefix = () if single else ("items", i)
            if isinstance(raw, dict):
                _check_len(raw.get("candidates"), lim.max_candidates_per_item, f"{where}candidates",
                           "max_candidates_per_item")
            cls = TextItem if isinstance(raw, dict) and "text" in raw else RewardItem
            try:
                it = cls.model_validate(raw)
            except ValidationError as e:
                raise _validation_error(e, prefix) from None
            if cls is TextItem:
                ref = _text_reference(it.reference, f"{where}reference")
                works.append((it.id, text_work(cfg, it.text, it.prompt, ref)))
                continue
            specs, ref, messages = _normalize_item(it, where)
            payloads = [candidate_payload(c) for c in it.candidates]
            works.append((it.id, Work("cand", it.tools, messages, payloads, reference=ref, specs=specs)))
        if cfg.reward.mode == "verifier" and any(w.reference is None for _, w in works):
            raise RequestError(422, "reference", "reward.mode=verifier needs a reference for every item")
    except RequestError as e:
        return e.response()
    try:
        return await _score_items(cfg, state, mcfg, handle, works, single)
    except RequestError as e:
        return e.response()


def _text_reference(raw: Any, field: str):
    if raw is None:
        return None
    try:
        return parse_reference(raw)
    except SchemaError as e:
        raise RequestError(422, field, str(e)) from None


@dataclass
class Work:
    """One item's scoring work. kind: "cand" (tools + messages + candidate calls, rendered like
    training), "text" (raw prompt/completion text) or "penalty" (no model call: unscorable)."""

    kind: str
    tools: Any = None
    messages: Any = None
    candidates: list = field(default_factory=list)
    text: tuple[str, str] = ("", "")
    reference: Any = None
    specs: list = field(default_factory=list)
    parsed: bool | None = None  # rendered-text items: tool catalog and a call found
    reason: str = ""  # why a rendered-text item was not parsed
    unparsed: str = ""  # "no_catalog" | "no_call" | ""

    def size(self) -> int:
        return len(self.candidates) if self.kind == "cand" else 1

    def verify_inputs(self) -> list[Any]:
        return list(self.candidates) if self.kind == "cand" else [self.text[1]]


def _verifier_logs(verdicts: list[dict | None]) -> dict[str, list[float]]:
    """Per-sample verifier results as float lists (OpenRLHF turns each extra_logs entry into a
    tensor, so strings cannot go there): `verifier_correct` (1/0, -1 = no label) and one
    `verifier_error/<error_type>` indicator per error type of `toolcall.verify`."""
    logs = {"verifier_correct": [-1.0 if v is None else float(v["correct"]) for v in verdicts]}
    for t in PRECEDENCE:
        logs[f"verifier_error/{t}"] = [float(v is not None and v["error_type"] == t) for v in verdicts]
    return logs


async def _score_items(cfg: ServeConfig, state: ServiceState, mcfg, handle, items: list[tuple], single: bool) -> Any:
    works = [w for _, w in items]
    raw = await _score_works(cfg, state, mcfg, handle, works)
    bound = await _lower_bound(cfg, state, mcfg.name, handle) if cfg.reward.mode != "verifier" else None
    floor = unscorable_value(cfg.reward, bound, [x for r in raw for x in r if isinstance(x, float)])
    results = []
    for (item_id, w), r in zip(items, raw):
        verdicts = None
        if w.reference is not None:
            verdicts = [_verdict(verify(c, w.reference, w.specs)) for c in w.verify_inputs()]
        rewards = [None if isinstance(x, dict) else combine(cfg.reward, x, x is None, floor,
                                                           verdicts[j] if verdicts else None)
                   for j, x in enumerate(r)]
        res: dict[str, Any] = {"id": item_id, "rewards": rewards, "unscorable": [x is None for x in r]}
        if cfg.reward.mode == "mix":  # (verifier mode runs no model)
            res["model_rewards"] = [None if isinstance(x, dict) else (floor if x is None else x) for x in r]
        if verdicts is not None:
            res["verdicts"] = verdicts
        if w.parsed is not None:
            res["parsed"] = w.parsed
        if w.reason:
            res["unparsed"] = w.reason
        errors = [x["error"] for x in r if isinstance(x, dict)]
        if errors:
            res["error"] = errors[0]
        results.append(res)
    if single and results[0].get("error") and all(x is None for x in results[0]["rewards"]):
        return RequestError(422, "candidates", results[0]["error"]).response()
    out: dict[str, Any] = {"model": mcfg.name, "mode": cfg.reward.mode, "results": results}
    if single:
        out["rewards"] = results[0]["rewards"]
    return out


def text_work(cfg: ServeConfig, text: str, prompt: str | None, ref) -> Work:
    """A policy-rendered conversation (prompt + response text, as RL frameworks send it) -> Work.

    The text is split into prompt and response (at `prompt` when given and found, else after the
    family's last assistant header), read back into (tools, messages, response) with
    `toolcall.chat_parse.parse_rendered_chat` (family: `reward.chat_family`), and scored as one
    candidate of that context: the rendering the RM was trained on. A prompt without a parsable
    tool catalog, or a response without a tool call, follows `reward.unparsed`: "penalty" (the
    unscorable reward) or "raw_text" (the raw prompt/completion text, off the training
    distribution). Either way the item is flagged (`parsed: false`, extra_logs `no_catalog` /
    `no_call`)."""
    fam = cfg.reward.chat_family
    at = text.find(prompt) if prompt else -1
    if at >= 0:
        p, r = text[:at + len(prompt)], text[at + len(prompt):]
    else:
        try:
            p, r = chat_parse.split_query(text, fam)
        except chat_parse.ChatParseError:
            p, r = "", text
    try:
        chat = chat_parse.parse_rendered_chat(p, r, fam)
        specs = normalize_tools(chat.tools)
    except (chat_parse.ChatParseError, SchemaError) as e:
        return _unparsed(cfg, p, r, ref, [], "no_catalog", str(e))
    if not parse_calls(chat.response).calls:
        return _unparsed(cfg, p, chat.response, ref, specs, "no_call", "no tool call in the response")
    return Work("cand", chat.tools, chat.messages, [chat.response], text=(p, chat.response), reference=ref,
                specs=specs, parsed=True)


def _unparsed(cfg: ServeConfig, prompt: str, response: str, ref, specs: list, kind: str, why: str) -> Work:
    rule = cfg.reward.unparsed
    return Work("text" if rule == "raw_text" else "penalty", text=(prompt, response), reference=ref, specs=specs,
                parsed=False, reason=f"{kind}: {why[:200]} (reward.unparsed={rule})", unparsed=kind)


async def _score_works(cfg: ServeConfig, state: ServiceState, mcfg, handle, works: list[Work]) -> list[list]:
    """Model results per Work (aligned with its candidates): float, None (unscorable) or
    {"error"}. reward.mode=verifier needs no model: every result is 0.0."""
    if cfg.reward.mode == "verifier":
        return [[0.0] * w.size() for w in works]
    texts = [w for w in works if w.kind == "text"]  # one call for all of a request's texts

    async def attempt():
        calls = [handle.score_group.remote(w.tools, w.messages, w.candidates) for w in works if w.kind == "cand"]
        if texts:
            calls.append(handle.score_texts.remote([w.text[0] for w in texts], [w.text[1] for w in texts]))
        got = list(await asyncio.gather(*calls))
        text_scores = iter(got.pop() if texts else [])
        cand_scores = iter(got)
        return [list(next(cand_scores)) if w.kind == "cand" else [next(text_scores)] if w.kind == "text"
                else [None] for w in works]

    return await call_model(cfg, state, mcfg.name, attempt)


def split_query(query: str, prompt: str | None) -> tuple[str, str]:
    """(prompt, completion) of an OpenRLHF query: the completion is what follows the prompt.
    Without a usable prompt the whole query is the completion (scored with an empty prompt)."""
    if prompt:
        at = query.find(prompt)
        if at >= 0:
            cut = at + len(prompt)
            return query[:cut], query[cut:]
    return "", query


async def handle_get_reward(cfg: ServeConfig, models: dict, body: bytes, state: ServiceState | None = None) -> Any:
    """`POST /get_reward` (OpenRLHF remote RM). `rewards` follow `reward.mode`; `scores` =
    sigmoid(reward) in (0, 1), what OpenRLHF's dynamic filtering expects; `extra_logs` are
    per-sample float lists it logs: `unscorable` (1 = got reward.unscorable_reward: empty or over
    max_length), `error` (1 = could not be rendered/scored; also gets the unscorable reward)."""
    state = state or ServiceState()
    try:
        data = parse_body(body, cfg.limits)
        if not isinstance(data, dict):
            raise RequestError(422, "body", f"expected a JSON object, got {type(data).__name__}")
        _check_len(data.get("query"), cfg.limits.max_queries_per_request, "query", "max_queries_per_request")
        try:
            req = GetRewardRequest.model_validate(data)
        except ValidationError as e:
            raise _validation_error(e) from None
        n = len(req.query)
        for key in ("prompts", "labels"):
            v = getattr(req, key)
            if v is not None and len(v) != n:
                raise RequestError(422, key, f"has {len(v)} entries, `query` has {n}")
        mcfg, handle = _model_handle(cfg, models, req.model)
        refs = [None] * n
        for i, lab in enumerate(req.labels or []):
            if lab not in (None, ""):
                refs[i] = _text_reference(lab, f"labels[{i}]")
        if cfg.reward.mode == "verifier" and any(r is None for r in refs):
            raise RequestError(422, "labels", "reward.mode=verifier needs a label (reference) for every query")
    except RequestError as e:
        return e.response()
    prompts = req.prompts or [None] * n
    works = [text_work(cfg, q, p, r) for q, p, r in zip(req.query, prompts, refs)]
    try:
        raw = await _score_works(cfg, state, mcfg, handle, works)
        bound = await _lower_bound(cfg, state, mcfg.name, handle) if cfg.reward.mode != "verifier" else None
    except RequestError as e:
        return e.response()
    flat = [r[0] for r in raw]
    floor = unscorable_value(cfg.reward, bound, [x for x in flat if isinstance(x, float)])
    rewards, verdicts = [], []
    logs: dict[str, list[float]] = {"unscorable": [], "error": [], "no_catalog": [], "no_call": []}
    for x, w in zip(flat, works):
        verdict = _verdict(verify(w.verify_inputs()[0], w.reference, w.specs)) if w.reference is not None else None
        verdicts.append(verdict)
        bad = isinstance(x, dict) or x is None
        rewards.append(combine(cfg.reward, None if bad else x, bad, floor, verdict))
        logs["unscorable"].append(1.0 if bad else 0.0)
        logs["error"].append(1.0 if isinstance(x, dict) else 0.0)
        logs["no_catalog"].append(float(w.unparsed == "no_catalog"))
        logs["no_call"].append(float(w.unparsed == "no_call"))
    out: dict[str, Any] = {"rewards": rewards, "scores": _scores_of(rewards), "extra_logs": logs}
    if any(r is not None for r in refs):
        logs.update(_verifier_logs(verdicts))
        out["error_types"] = ["" if v is None else (v["error_type"] or "") for v in verdicts]
    return out


async def handle_healthz(cfg: ServeConfig, models: dict, state: ServiceState) -> tuple[int, dict]:
    """Readiness: 200 only if every model deployment can score now. A deployment that answered a
    scoring call in the last second counts as ready without a probe (under load a probe would
    queue behind the batch); otherwise it is asked (`ready`, which its replica answers after its
    warm-up forward) within limits.health_timeout_s."""

    async def probe(name, h) -> str:
        if time.monotonic() - state.last_ok.get(name, -1e9) < 1.0:
            return "ready"
        resp = h.ready.remote()
        try:
            async def wait():
                return await resp
            await asyncio.wait_for(wait(), cfg.limits.health_timeout_s)
        except asyncio.TimeoutError:
            getattr(resp, "cancel", lambda: None)()
            return f"unavailable: no answer in {cfg.limits.health_timeout_s:g} s"
        except Exception as e:
            return f"unavailable: {type(e).__name__}"
        return "ready"

    names = list(models)
    states = await asyncio.gather(*(probe(n, models[n]) for n in names))
    out = dict(zip(names, states))
    ok = all(s == "ready" for s in states)
    return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "models": out}


# --- deployments ---------------------------------------------------------------------------------

def _deployments():
    """The deployment classes and the FastAPI app they serve, made per call (Serve pickles the
    classes by value to the replicas)."""

    @serve.deployment
    class RewardModelDeployment:
        """One reward model behind a MicroBatcher (batch_size candidates per forward)."""

        def __init__(self, model_cfg: dict):
            self.cfg = from_dict(ModelConfig, model_cfg)
            self.backend = RewardBackend(self.cfg)
            self.backend.warm_up()  # ready = has scored once
            self.batcher = MicroBatcher(self.backend.score_units, self.cfg.batch_size,
                                        self.cfg.batch_wait_timeout_s)

        async def score_group(self, tools: list, messages: list, candidates: list) -> list:
            return list(await asyncio.gather(*(self.batcher.submit(("cand", tools, messages, c)) for c in candidates)))

        async def score_texts(self, prompts: list[str], completions: list[str]) -> list:
            return list(await asyncio.gather(*(self.batcher.submit(("text", p, c)) for p, c in zip(prompts, completions))))

        def ready(self) -> bool:
            return True

        def info(self) -> dict:
            c, b = self.cfg, self.batcher
            return {"name": c.name, "path": c.path, "max_batch_size": c.batch_size,
                    "batch_wait_timeout_s": c.batch_wait_timeout_s,
                    "max_length": self.backend.scorer.max_length,  # as resolved (training's when null)
                    "device": c.device, "dtype": c.dtype,
                    "details": {**_jsonable(self.backend.info()), "batches": b.batches, "candidates": b.units,
                                "mean_batch_size": b.units / b.batches if b.batches else 0.0,
                                "reward_lower_bound": self.backend.lower_bound}}

    api = FastAPI(title="fcrm reward service", version="1")

    @api.middleware("http")
    async def guard(request: Request, call_next):
        # Auth and the size limit run before routing and body parsing, for every route but the
        # public readiness probe (which says only whether each model can score).
        settings = SETTINGS
        token = settings.get("token") or ""
        if token and request.url.path.rstrip("/") != _route(settings, "/healthz"):
            if not token_ok(request.headers.get("authorization", ""), token):
                return JSONResponse({"detail": "missing or wrong bearer token (header `Authorization`)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        limit = settings.get("max_body_bytes", 0)
        if length and limit and length.isdigit() and int(length) > limit:
            return JSONResponse({"detail": f"body: {length} bytes exceeds limits.max_body_bytes={limit}",
                                 "field": "body"}, status_code=413)
        return await call_next(request)

    @serve.deployment
    @serve.ingress(api)
    class RewardIngress:
        """HTTP front: validates, enforces limits, fans items out to the model deployments."""

        def __init__(self, cfg: dict, token: str, **models):
            self.cfg = from_dict(ServeConfig, cfg)
            self.models = models  # name -> DeploymentHandle
            self.state = ServiceState()
            SETTINGS.update(token=token, max_body_bytes=self.cfg.limits.max_body_bytes,
                            route_prefix=self.cfg.route_prefix)

        @api.get("/healthz")
        async def healthz(self):
            status, body = await handle_healthz(self.cfg, self.models, self.state)
            return JSONResponse(body, status_code=status, headers={"Retry-After": "1"} if status == 503 else None)

        @api.get("/v1/models")
        async def models_info(self) -> dict:
            infos = await asyncio.gather(*(h.info.remote() for h in self.models.values()))
            return {"default": self.cfg.model(None).name, "models": list(infos)}

        @api.post("/v1/rewards")
        async def rewards(self, request: Request):
            try:
                body = await read_body(request, self.cfg.limits.max_body_bytes)
            except RequestError as e:
                return e.response()
            return await handle_rewards(self.cfg, self.models, body, self.state)

        @api.post("/get_reward")
        async def get_reward(self, request: Request):
            try:
                body = await read_body(request, self.cfg.limits.max_body_bytes)
            except RequestError as e:
                return e.response()
            return await handle_get_reward(self.cfg, self.models, body, self.state)

    return RewardModelDeployment, RewardIngress


async def read_body(request, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it passes `limit`:
    a chunked upload carries no content-length, and must not be held whole before the check."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body", f"more than limits.max_body_bytes={limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, default=str))


# --- application ---------------------------------------------------------------------------------

def deployment_options(m: ModelConfig) -> dict:
    """Serve options of one model deployment (also written into the `serve deploy` YAML)."""
    return {
        "name": f"RewardModel_{m.name}",
        "max_ongoing_requests": m.effective_max_ongoing_requests(),
        "autoscaling_config": {
            "min_replicas": m.autoscaling.min_replicas,
            "max_replicas": m.autoscaling.max_replicas,
            "initial_replicas": max(1, m.autoscaling.min_replicas),
            "target_ongoing_requests": m.effective_target_ongoing(),
            "upscale_delay_s": m.autoscaling.upscale_delay_s,
            "downscale_delay_s": m.autoscaling.downscale_delay_s,
        },
        "ray_actor_options": {"num_cpus": m.ray_actor_options.num_cpus, "num_gpus": m.ray_actor_options.num_gpus},
    }


def ingress_options(cfg: ServeConfig) -> dict:
    return {"name": "RewardIngress", "num_replicas": cfg.ingress.num_replicas,
            "max_ongoing_requests": cfg.ingress.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": cfg.ingress.num_cpus}}


def build_app(cfg: ServeConfig):
    """The bound Serve application (for `serve.run`, tests and `serve run`)."""
    model_cls, ingress_cls = _deployments()
    models = {m.name: model_cls.options(**deployment_options(m)).bind(to_dict(m)) for m in cfg.models.values()}
    return ingress_cls.options(**ingress_options(cfg)).bind(to_dict(cfg), cfg.resolved_token(), **models)


def app_builder(args: dict):
    """Serve application builder: `import_path: fcrm_ray.serve.app:app_builder` with
    `args: {config: configs/serve.yaml, overrides: [...]}` (what `serve deploy` and `serve run` call)."""
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    return build_app(load_config(ServeConfig, args.get("config") or None, list(overrides)))


def deploy_config(cfg: ServeConfig, config_path: str | None, overrides: list[str]) -> dict:
    """A `serve deploy`-able config (Serve's ServeDeploySchema) for this ServeConfig. The token is
    never written: replicas read it from `auth_token_env` (set it in the runtime_env/cluster)."""
    safe = [o for o in overrides if not o.startswith("auth_token=")]
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.limits.request_timeout_s},
        "applications": [{
            "name": cfg.app_name,
            "route_prefix": cfg.route_prefix,
            "import_path": "fcrm_ray.serve.app:app_builder",
            "args": {"config": config_path or "", "overrides": safe},
            "deployments": [ingress_options(cfg)] + [deployment_options(m) for m in cfg.models.values()],
        }],
    }


def main(argv: list[str] | None = None, prog: str = "fcrm serve") -> int:
    parser = config_arg_parser(prog, "Serve reward models over HTTP with Ray Serve")
    parser.add_argument("--emit-config", metavar="FILE", help="write a `serve deploy` YAML and exit")
    parser.add_argument("--metrics-export-port", type=int, default=0,
                        help="Prometheus port of the local Ray node's metrics agent (when fcrm starts Ray)")
    args = parser.parse_args(argv)
    cfg = load_config(ServeConfig, args.config, args.overrides)
    if args.emit_config:
        import yaml  # local: PyYAML is no declared dependency (a dev extra; here through omegaconf)

        text = yaml.safe_dump(deploy_config(cfg, args.config, list(args.overrides)), sort_keys=False)
        Path(args.emit_config).parent.mkdir(parents=True, exist_ok=True)
        Path(args.emit_config).write_text(
            "# Generated by `fcrm serve --emit-config`; deploy with `serve deploy " + args.emit_config + "`.\n" + text)
        print(f"wrote {args.emit_config}")
        return 0
    for m in cfg.models.values():  # fail here, not in a replica restart loop
        try:
            check_reward_model_dir(resolve_model_path(m.path))
        except (RewardModelError, FileNotFoundError) as e:
            raise ConfigError(f"config key `models.{m.name}.path`: {e}") from None

    local = cfg.ray.starts_local()
    init = {"_metrics_export_port": args.metrics_export_port} if args.metrics_export_port and local else {}
    if local and os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        # Ray (2.60) binds its own gRPC ports on every interface and turns a loopback node IP into
        # the reachable one, so a local Ray cannot be kept on loopback; its token auth (on by
        # default for local clusters since 2.59) is what keeps those ports closed. Say so.
        print("fcrm serve: warning: RAY_AUTH_MODE=disabled - the local Ray's ports listen beyond loopback "
              "without authentication", file=sys.stderr, flush=True)
    ray_init(cfg.ray, dashboard=None, **init)

    def _stop(*_):  # SIGTERM (systemd, Kubernetes, `kill`) shuts down like Ctrl-C
        raise KeyboardInterrupt

    if cfg.blocking:
        signal.signal(signal.SIGTERM, _stop)
    deployed = False
    try:
        serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.limits.request_timeout_s})
        serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=False)
        deployed = True
        print(f"fcrm serve: {', '.join(cfg.models)} on http://{cfg.host}:{cfg.port}{cfg.route_prefix} "
              f"(auth {'on' if cfg.resolved_token() else 'off'})", flush=True)
        while cfg.blocking:
            time.sleep(3600)
    except KeyboardInterrupt:  # also while still deploying: the app must not outlive us
        pass
    finally:
        # A shared cluster keeps running: remove only our app. A Ray instance this process started
        # goes down with `ray.shutdown()` and takes Serve with it (`serve.shutdown()` first only
        # adds its controller's 30 s shutdown timeout on a busy machine).
        if (cfg.blocking or not deployed) and not local:
            serve.delete(cfg.app_name)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
