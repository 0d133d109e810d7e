"""The gateway's pure core (no Ray, no HTTP): read an OpenAI chat request, turn upstream chat
completions into Best-of-N candidates, pick one with the rule `fcrm eval bon` reports
(`evaluate.metrics.pick`), and shape the pick as an OpenAI `chat.completion` (or its SSE chunks).

A candidate's surface is whatever the upstream returned: parsed `tool_calls` (vLLM with a tool
parser, hosted APIs) or raw text with calls in it (`toolcall.parse.parse_calls` reads both). Its
`text` is what the reward model scores and the verifier's canonical key reads: the calls as a JSON
list `[{"name", "arguments"}]`, or the raw content when the upstream parsed none."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fcrm_ray.evaluate import metrics as M
from fcrm_ray.serve.guard import RequestError, validation_error
from fcrm_ray.serve.schemas import Message
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import SchemaError, ToolCall, normalize_tools
from fcrm_ray.toolcall.verify import canonical_key

RULES = ("rm", "vote", "majority", "first")
# gateway rule -> `metrics.pick` selector ("vote" is the summed, temperature-scaled weighted vote;
# "majority" the most frequent canonical call with the reward model breaking ties)
PICK_OF_RULE = {"rm": "rm", "vote": "vote_sum", "majority": "majority_rm", "first": "first"}
# Request keys the gateway reads itself and does not forward to the upstream.
GATEWAY_KEYS = ("fcrm", "stream", "stream_options")


# --- the request ----------------------------------------------------------------------------------

class BonOptions(BaseModel):
    """The opt-in extension of a request: `"fcrm": {"rule": ..., "n": ..., "candidates": true}`
    (openai client: `extra_body={"fcrm": {...}}`)."""

    model_config = ConfigDict(extra="forbid")
    rule: Literal["rm", "vote", "majority", "first"] | None = None
    n: int | None = Field(default=None, ge=1)
    candidates: bool = False  # return every candidate's calls, reward and the rule in the response


class ChatRequest(BaseModel):
    """What the gateway reads of an OpenAI chat request; every other key goes to the upstream."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Union[str, dict[str, Any], None] = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    fcrm: BonOptions | None = None


@dataclass
class BonPlan:
    """A validated request: what to ask the upstream and how to pick."""

    body: dict  # the client's JSON body (forwarded minus GATEWAY_KEYS)
    request: ChatRequest
    best_of_n: bool
    n: int = 1
    rule: str = "first"
    vote_temperature: float = 1.0
    tools: list = field(default_factory=list)  # as the client sent them (what the RM renders)
    specs: list = field(default_factory=list)  # normalized ToolSpecs (what the parser types with)
    messages: list = field(default_factory=list)  # validated messages as plain dicts


def plan_request(data: Any, selection: Any) -> BonPlan:
    """Validate a parsed request body against the gateway's rules (422 naming the field) and decide
    whether it is answered by Best-of-N (`tools` present and `tool_choice` not "none") or passed
    through. `selection`: a `gateway.config.SelectionConfig`."""
    if not isinstance(data, dict):
        raise RequestError(422, "body", f"expected a JSON object, got {type(data).__name__}")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as e:
        raise validation_error(e) from None
    bon = bool(req.tools) and req.tool_choice != "none"
    plan = BonPlan(body=data, request=req, best_of_n=bon)
    if not bon:
        return plan
    try:
        plan.specs = normalize_tools(req.tools)
    except SchemaError as e:
        raise RequestError(422, "tools", str(e)) from None
    opts = req.fcrm or BonOptions()
    n = opts.n or req.n or selection.n
    if n > selection.max_n:
        raise RequestError(422, "fcrm.n" if opts.n else "n", f"{n} candidates exceed selection.max_n={selection.max_n}")
    plan.n = n
    plan.rule = selection.rule_for(n, opts.rule)
    plan.vote_temperature = selection.vote_temperature
    plan.tools = list(req.tools)
    plan.messages = [m.model_dump(exclude_none=True) for m in req.messages]
    return plan


def upstream_body(plan: BonPlan, n: int, model: str = "", seed_offset: int = 0) -> dict:
    """The body one upstream call gets: the client's minus the gateway's own keys, with `n`, a
    non-streaming answer, and (for parallel calls of a seeded request) a distinct seed per call."""
    body = {k: v for k, v in plan.body.items() if k not in GATEWAY_KEYS}
    body["n"] = n
    if model:
        body["model"] = model
    if seed_offset and isinstance(body.get("seed"), int):
        body["seed"] = body["seed"] + seed_offset
    return body


# --- candidates -------------------------------------------------------------------------------------

@dataclass
class Candidate:
    """One upstream choice, read as tool calls."""

    message: dict  # the upstream's assistant message
    finish_reason: str | None
    text: str  # what the RM scores and the verifier keys
    calls: list[ToolCall] | None  # None: no call could be read
    key: str  # `verify.canonical_key(text)`, the unit of the votes
    parse_error: str | None = None
    reward: float | None = None  # the RM's reward; None = unscorable or failed
    error: str | None = None  # why scoring failed for this candidate alone


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def candidate_text(message: Mapping) -> str:
    """The surface of one upstream message: its `tool_calls` as a JSON list of `{name, arguments}`
    (arguments decoded when they are a JSON string; left as the string when not, which then does
    not parse), else its text content."""
    tcs = message.get("tool_calls")
    if isinstance(tcs, list) and tcs:
        calls = []
        for tc in tcs:
            fn = tc.get("function") if isinstance(tc, Mapping) else None
            fn = fn if isinstance(fn, Mapping) else (tc if isinstance(tc, Mapping) else {})
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except (json.JSONDecodeError, RecursionError, ValueError):
                    pass  # kept as text: the candidate does not parse, and is keyed and ranked as such
            calls.append({"name": fn.get("name"), "arguments": args})
        return json.dumps(calls, ensure_ascii=False)
    return _content_text(message.get("content"))


def candidates_from_responses(responses: Sequence[Mapping], specs: Sequence[Any] | None = None) -> list[Candidate]:
    """Every choice of every upstream response, in order (responses in request order, choices by
    their `index`). Choices without a usable message become candidates that do not parse."""
    out = []
    for resp in responses:
        choices = resp.get("choices") if isinstance(resp, Mapping) else None
        if not isinstance(choices, list):
            continue
        ordered = sorted((c for c in choices if isinstance(c, Mapping)),
                         key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
        for ch in ordered:
            msg = ch.get("message")
            msg = dict(msg) if isinstance(msg, Mapping) else {"role": "assistant", "content": None}
            text = candidate_text(msg)
            parsed = parse_calls(text, specs)
            out.append(Candidate(message=msg, finish_reason=ch.get("finish_reason"), text=text, calls=parsed.calls,
                                 key=canonical_key(text), parse_error=parsed.error))
    return out


def sum_usage(responses: Sequence[Mapping]) -> dict:
    """`usage` summed over the upstream responses (every candidate's tokens are paid for)."""
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for r in responses:
        u = r.get("usage") if isinstance(r, Mapping) else None
        if isinstance(u, Mapping):
            for k in total:
                v = u.get(k)
                if isinstance(v, int):
                    total[k] += v
    return total


# --- selection --------------------------------------------------------------------------------------

def select(rewards: Sequence[float | None], keys: Sequence[str], rule: str, vote_temperature: float = 1.0
           ) -> tuple[int, list[float], list[bool]]:
    """(picked index, filled rewards, unscorable flags): missing rewards are filled below every
    scorable one (`metrics.fill_unscorable_rewards`, as `fcrm eval bon` does), then `rule` picks
    with `metrics.pick` over all candidates."""
    if rule not in PICK_OF_RULE:
        raise ValueError(f"unknown rule {rule!r}; one of {RULES}")
    filled, flags = M.fill_unscorable_rewards(list(rewards))
    return M.pick(PICK_OF_RULE[rule], filled, list(keys), len(filled), vote_temperature), filled, flags


# --- the response ------------------------------------------------------------------------------------

def openai_tool_calls(calls: Sequence[ToolCall], upstream_calls: Any = None) -> list[dict]:
    """OpenAI `tool_calls`: ids (the upstream's when it gave them), `function.arguments` as a JSON string."""
    ids = [tc.get("id") for tc in upstream_calls if isinstance(tc, Mapping)] if isinstance(upstream_calls, list) else []
    out = []
    for i, c in enumerate(calls):
        cid = ids[i] if i < len(ids) and isinstance(ids[i], str) and ids[i] else f"call_{uuid.uuid4().hex[:24]}"
        out.append({"id": cid, "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}})
    return out


def chosen_message(c: Candidate) -> tuple[dict, str]:
    """(assistant message, finish_reason) of the pick: its calls as OpenAI `tool_calls` when it has
    any (also when the upstream returned them as text), else the upstream's message as it came."""
    if c.calls:
        upstream_calls = c.message.get("tool_calls")
        content = c.message.get("content") if upstream_calls else None
        return ({"role": "assistant", "content": content, "tool_calls": openai_tool_calls(c.calls, upstream_calls)},
                "tool_calls")
    msg = {"role": "assistant", "content": _content_text(c.message.get("content")) or None}
    # calls that did not parse are not returned as calls: the turn ends as text
    return msg, c.finish_reason if c.finish_reason not in (None, "tool_calls") else "stop"


def completion_response(cands: Sequence[Candidate], picked: int, rewards: Sequence[float], unscorable: Sequence[bool],
                        *, model: str, usage: Mapping, rule: str, n_asked: int, extension: bool,
                        completion_id: str | None = None, created: int | None = None) -> dict:
    """The OpenAI `chat.completion` of the pick; with `extension`, an `fcrm` block holding every
    candidate's calls and reward and the rule."""
    msg, finish = chosen_message(cands[picked])
    out = {"id": completion_id or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
           "created": int(created if created is not None else time.time()), "model": model,
           "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
           "usage": dict(usage)}
    if extension:
        out["fcrm"] = {"rule": rule, "n": n_asked, "received": len(cands), "picked": picked, "candidates": [
            {"index": i, "calls": [c.to_dict() for c in x.calls] if x.calls is not None else None,
             "content": None if x.calls is not None else x.text, "reward": rewards[i], "unscorable": unscorable[i],
             "parse_error": x.parse_error, "error": x.error}
            for i, x in enumerate(cands)]}
    return out


def stream_chunks(completion: Mapping, include_usage: bool = False) -> list[dict]:
    """A finished `chat.completion` as OpenAI `chat.completion.chunk`s: the role, each tool call
    (whole, with its index), the content, then the finish reason (and usage when asked)."""
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    choice = completion["choices"][0]
    msg = choice["message"]

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    for i, tc in enumerate(msg.get("tool_calls") or []):
        out.append(chunk({"tool_calls": [{"index": i, **tc}]}))
    if msg.get("content"):
        out.append(chunk({"content": msg["content"]}))
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append({**head, "choices": [], "usage": completion.get("usage")})
    if "fcrm" in completion:
        out[-1] = {**out[-1], "fcrm": completion["fcrm"]}
    return out


def sse_lines(chunks: Sequence[Mapping]) -> list[bytes]:
    """Server-sent events as OpenAI sends them: `data: <json>` per chunk, then `data: [DONE]`."""
    return [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
