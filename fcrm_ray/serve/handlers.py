"""The reward service's request handlers: pure async functions over deployment handles (testable
without Serve). `POST /v1/rewards`, `POST /get_reward` and `GET /healthz` of `fcrm serve`; the
reward arithmetic (`combine`, `unscorable_value`) lives here too."""

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fcrm_ray.serve.backend import FALLBACK_FLOOR
from fcrm_ray.serve.config import ServeConfig
from fcrm_ray.serve.guard import RequestError, check_len, parse_body, validation_error
from fcrm_ray.serve.replicas import ServiceState, call_model
from fcrm_ray.serve.schemas import GetRewardRequest, RewardItem, TextItem, candidate_payload
from fcrm_ray.toolcall import chat_parse
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import SchemaError, ToolCall, normalize_tools, reference_from_bfcl, reference_from_calls
from fcrm_ray.toolcall.verify import PRECEDENCE, verify


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
        check_len(items, lim.max_items_per_request, "items", "max_items_per_request")
        if data.get("model") is not None and not isinstance(data["model"], str):
            raise RequestError(422, "model", "must be a string")
        mcfg, handle = _model_handle(cfg, models, data.get("model"))
        works: list[tuple[str | None, Work]] = []  # (item id, its scoring work)
        for i, raw in enumerate(items):
            where = "" if single else f"items[{i}]."
            prefix = () if single else ("items", i)
            if isinstance(raw, dict):
                check_len(raw.get("candidates"), lim.max_candidates_per_item, f"{where}candidates",
                           "max_candidates_per_item")
            cls = TextItem if isinstance(raw, dict) and "text" in raw else RewardItem
            try:
                it = cls.model_validate(raw)
            except ValidationError as e:
                raise validation_error(e, prefix) from None
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
        check_len(data.get("query"), cfg.limits.max_queries_per_request, "query", "max_queries_per_request")
        try:
            req = GetRewardRequest.model_validate(data)
        except ValidationError as e:
            raise validation_error(e) from None
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
