"""Request and response models of the reward service (pydantic v2).

`POST /v1/rewards` scores candidate tool calls for a (tools, messages) context:

    {"tools": [...], "messages": [...], "candidates": ["[{\"name\": ...}]", [{"name": ..., "arguments": {...}}]],
     "reference": [{"fn": {"param": [values]}}], "model": "fcrm-rm"}

or `{"items": [<item>, ...]}` (also a bare JSON list of items). A candidate is raw model text or a
list of `{name, arguments}` calls. With a `reference` (BFCL possible-answer form) each candidate
also gets the verifier's verdict.

An item may also be policy-rendered chat: `{"text": prompt + response, "prompt"?: ..., "reference"?: ...}`
(parsed back into tools, messages and the call; see `GetRewardRequest`).

`POST /get_reward` is OpenRLHF's remote reward-model protocol: `{"query": [full texts],
"prompts": [...], "labels": [...]}` -> `{"rewards": [...], "scores": [...], "extra_logs": {...}}`
(see `fcrm_ray.serve.app` for how to point OpenRLHF at it).

Validation errors become 422 responses whose `detail` and `field` name the offending field, so
clients learn what to fix; limits (candidates per item, items per request, nesting depth, string
and name lengths) are checked in the ingress against the config and reported the same way. Every
message is validated fully here (role, content, `tool_calls`), so nothing malformed reaches a
renderer inside a model replica.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Call(BaseModel):
    """One tool call in structured form."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


# A candidate: raw model output text, or a list of calls (a single call object is accepted too).
Candidate = Union[str, list[Call], Call]


# Roles the chat templates and the plain renderer know; anything else is a client error, not a
# template exception inside a model replica.
ROLES = ("system", "developer", "user", "assistant", "tool", "function", "ipython")


class CallFunction(BaseModel):
    """`function` of an OpenAI `tool_calls` entry; arguments as an object or a JSON string."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    arguments: Union[dict[str, Any], str] = Field(default_factory=dict)


class MessageToolCall(BaseModel):
    """One entry of `messages[].tool_calls` (OpenAI form; a flat `{name, arguments}` is accepted)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    type: str = "function"
    function: CallFunction

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        if isinstance(v, dict) and "function" not in v and "name" in v:
            return {"function": {"name": v["name"], "arguments": v.get("arguments", {})}}
        return v


class Message(BaseModel):
    """One chat message, validated fully at the ingress: a malformed message is a 422 naming it,
    never an exception inside the model replica (where it would fail the whole batch)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal[ROLES]  # type: ignore[valid-type]
    content: Union[str, list[dict[str, Any]], None] = None
    tool_calls: list[MessageToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None


class RewardItem(BaseModel):
    """One scoring context and its candidates."""

    model_config = ConfigDict(extra="forbid")
    tools: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[Message] = Field(min_length=1)
    candidates: list[Candidate] = Field(min_length=1)
    reference: Union[list[dict[str, Any]], str, None] = None
    id: str | None = None


class TextItem(BaseModel):
    """One policy-rendered conversation (chat template applied, tools in the prompt): `text` is
    prompt + response; `prompt` (optional) marks where the response starts. Parsed into (tools,
    messages, response) and scored like a `RewardItem` with one candidate."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    prompt: str | None = None
    reference: Union[list[dict[str, Any]], str, None] = None
    id: str | None = None


class RewardRequest(BaseModel):
    """`POST /v1/rewards` body (batched form; a single item is wrapped by the ingress)."""

    model_config = ConfigDict(extra="forbid")
    items: list[Union[RewardItem, TextItem]] = Field(min_length=1)
    model: str | None = None


class Verdict(BaseModel):
    correct: bool
    error_type: str | None = None
    detail: str = ""


class ItemResult(BaseModel):
    id: str | None = None
    # Unscorable candidates (empty, longer than max_length) get `reward.unscorable_reward` and
    # `unscorable: true`; an item that failed as a whole has rewards null and an `error`.
    rewards: list[float | None]
    unscorable: list[bool] | None = None
    model_rewards: list[float | None] | None = None  # the RM's own rewards, when reward.mode = mix
    verdicts: list[Verdict] | None = None
    parsed: bool | None = None  # text items: whether tools and a call were found in the text
    unparsed: str | None = None  # text items not parsed: why, and the rule applied (reward.unparsed)
    error: str | None = None


class RewardResponse(BaseModel):
    model: str
    mode: str = "rm"
    results: list[ItemResult]
    rewards: list[float | None] | None = None  # single-item requests: results[0].rewards


class GetRewardRequest(BaseModel):
    """OpenRLHF remote-RM request. `query` = prompt + response texts as the policy's chat template
    rendered them; `prompts` (optional) mark where each response starts (else: after the
    template's last assistant header). Each query is parsed back into tools, messages and the
    response (`toolcall.chat_parse`) and scored like a `/v1/rewards` candidate. `labels`: one
    reference per query (BFCL possible answer or a list of calls, object or JSON string; "" or
    null = none): the verifier's verdicts go to `extra_logs` and `error_types`, and into the
    reward under `reward.mode` verifier/mix."""

    model_config = ConfigDict(extra="ignore")  # RL frameworks add fields of their own
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None
    model: str | None = None


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)
    # Per-sample verifier error types ("" = correct or no label); outside extra_logs because
    # OpenRLHF turns every extra_logs entry into a float tensor.
    error_types: list[str] | None = None


class ModelInfo(BaseModel):
    name: str
    path: str
    max_batch_size: int
    batch_wait_timeout_s: float
    max_length: int
    device: str
    dtype: str
    details: dict[str, Any] = Field(default_factory=dict)


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: str  # "ok" (every model deployment can score) or "unavailable" (HTTP 503)
    models: dict[str, str]  # name -> "ready" or the reason it is not


def candidate_payload(c: Candidate) -> Any:
    """What the scorer and verifier take: raw text as is, calls as a list of plain dicts."""
    if isinstance(c, str):
        return c
    if isinstance(c, Call):
        c = [c]
    return [x.model_dump() for x in c]


def error_location(loc: tuple) -> str:
    """pydantic `loc` -> `items[0].candidates[3]` (the field a client must fix)."""
    out = ""
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"
