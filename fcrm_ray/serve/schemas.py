"""Request and response models of the reward service (pydantic v2).

`POST /v1/rewards` scores candidate tool calls for a (tools, messages) context:

    {"tools": [...], "messages": [...], "candidates": ["[{\"name\": ...}]", [{"name": ..., "arguments": {...}}]],
     "reference": [{"fn": {"param": [values]}}], "model": "fcrm-rm"}

or `{"items": [<item>, ...]}` (also a bare JSON list of items). A candidate is raw model text or a
list of `{name, arguments}` calls. With a `reference` (BFCL possible-answer form) each candidate
also gets the verifier's verdict.

`POST /get_reward` is OpenRLHF's remote reward-model protocol: `{"query": [full texts],
"prompts": [...], "labels": [...]}` -> `{"rewards": [...], "scores": [...], "extra_logs": {...}}`
(see `fcrm_ray.serve.app` for how to point OpenRLHF at it).

Validation errors become 422 responses whose `detail` names the offending field (`loc`), so
clients learn what to fix; limits (candidates per item, items per request) are checked in the
ingress against the config and reported the same way.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Call(BaseModel):
    """One tool call in structured form."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


# A candidate: raw model output text, or a list of calls (a single call object is accepted too).
Candidate = Union[str, list[Call], Call]


class RewardItem(BaseModel):
    """One scoring context and its candidates."""

    model_config = ConfigDict(extra="forbid")
    tools: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(min_length=1)
    candidates: list[Candidate] = Field(min_length=1)
    reference: list[dict[str, Any]] | None = None
    id: str | None = None

    @field_validator("messages")
    @classmethod
    def _roles(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(v):
            if not isinstance(m.get("role"), str):
                raise ValueError(f"messages[{i}] has no string `role`")
        return v


class RewardRequest(BaseModel):
    """`POST /v1/rewards` body (batched form; a single item is wrapped by the ingress)."""

    model_config = ConfigDict(extra="forbid")
    items: list[RewardItem] = Field(min_length=1)
    model: str | None = None


class Verdict(BaseModel):
    correct: bool
    error_type: str | None = None
    detail: str = ""


class ItemResult(BaseModel):
    id: str | None = None
    rewards: list[float | None]  # None: the candidate could not be scored (longer than max_length)
    verdicts: list[Verdict] | None = None


class RewardResponse(BaseModel):
    model: str
    results: list[ItemResult]
    rewards: list[float | None] | None = None  # single-item requests: results[0].rewards


class GetRewardRequest(BaseModel):
    """OpenRLHF remote-RM request. `query` = prompt + response texts as the policy saw them;
    `prompts` lets the server split each query into (prompt, completion) so long prompts are
    truncated from the left like in training; `labels` are passed through (BFCL-style references
    add verifier correctness to `extra_logs`)."""

    model_config = ConfigDict(extra="ignore")  # RL frameworks add fields of their own
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None
    model: str | None = None


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


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
    status: str
    models: dict[str, str]


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
