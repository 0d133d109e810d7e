"""OpenAI chat rows `{messages, tools}`: every assistant turn with `tool_calls` is one example
(the messages before it are the conversation)."""

from __future__ import annotations

from typing import Any, Mapping

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.data.sources.fields import _calls_from_tool_calls, _check_reference, _json_field, _messages
from fcrm_ray.data.sources.files import _Bad
from fcrm_ray.toolcall.schema import Example, SchemaError, normalize_tools, reference_from_calls


def openai_examples(row: Any, index: int) -> list[Example | _Bad]:
    """Every assistant turn with `tool_calls` -> one Example (conversation = messages before)."""
    try:
        if not isinstance(row, Mapping):
            raise SchemaError("malformed row: not a JSON object")
        msgs = _messages(_json_field(row, "messages", (list,)), "messages")
        tools = normalize_tools(_json_field(row, "tools", (list,)))
    except SchemaError as e:
        return [_Bad(row, str(e))]
    base = str(row.get("id")) if row.get("id") not in (None, "") else stable_hash(msgs, row.get("tools"))
    category = str(row.get("category") or "openai")
    out: list[Example | _Bad] = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        try:
            calls = _calls_from_tool_calls(m["tool_calls"], f"messages[{i}].tool_calls")
            ref = reference_from_calls(calls)
            _check_reference(ref, tools)
            if not any(x["role"] == "user" for x in msgs[:i]):
                raise SchemaError(f"no user message: before messages[{i}]")
            out.append(Example(id=f"{base}-{i}", tools=tools, conversation=msgs[:i], reference=ref,
                               source=str(row.get("source") or "openai"), category=category))
        except SchemaError as e:
            out.append(_Bad({"row": row, "turn": i}, str(e)))
    return out or [_Bad(row, "no call turn: no assistant message with `tool_calls`")]
