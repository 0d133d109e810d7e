"""ShareGPT rows with function calls: `conversations: [{from, value}]`, Glaive/Hermes-style call
turns (`<tool_call>`, `<functioncall>`, `from: function_call`), tools in a `tools` field or in the
system prompt."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.data.sources.fields import _check_reference, _json_field, _tool_calls_message
from fcrm_ray.data.sources.files import _Bad
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import Example, SchemaError, normalize_tools, reference_from_calls

_ROLE = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "function_call": "assistant", "tool": "tool", "observation": "tool", "function_response": "tool",
         "function": "tool", "ipython": "tool"}
_TOOLS_TAG = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_CALL_MARK = re.compile(r"<tool_call>|<functioncall>|<function_call>")


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON value starting with `{` or `[` found in free text."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        starts = [j for j in (text.find("{", i), text.find("[", i)) if j >= 0]
        if not starts:
            return out
        j = min(starts)
        try:
            obj, end = dec.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        out.append(obj)
        i = end


def tools_from_system_prompt(text: str) -> list:
    """Tool specs written into a system prompt (Hermes `<tools>...</tools>` or Glaive's bare
    JSON objects after the preamble). Returns [] when there are none."""
    blocks = _TOOLS_TAG.findall(text) or [text]
    found = []
    for b in blocks:
        for obj in _json_objects(b):
            for t in obj if isinstance(obj, list) else [obj]:
                if isinstance(t, Mapping) and (isinstance(t.get("name"), str) or isinstance(t.get("function"), Mapping)):
                    found.append(t)
    return found


def sharegpt_examples(row: Any, index: int) -> list[Example | _Bad]:
    """Every function-call turn -> one Example; earlier call turns become `tool_calls` messages."""
    try:
        if not isinstance(row, Mapping):
            raise SchemaError("malformed row: not a JSON object")
        turns = _json_field(row, "conversations", (list,))
        tools_raw = None
        if row.get("tools") not in (None, "", []):
            tools_raw = _json_field(row, "tools", (list,))
        sys_idx = None
        for k, t in enumerate(turns):
            if not isinstance(t, Mapping) or not isinstance(t.get("from"), str) or not isinstance(t.get("value"), str):
                raise SchemaError(f"bad turn: `conversations[{k}]` needs string `from` and `value`")
            if t["from"] not in _ROLE:
                raise SchemaError(f"bad turn: `conversations[{k}].from` = {t['from']!r} is not a known role")
        system = row.get("system") if isinstance(row.get("system"), str) else None
        if tools_raw is None:
            for k, t in enumerate(turns):
                if t["from"] == "system":
                    found = tools_from_system_prompt(t["value"])
                    if found:
                        tools_raw, sys_idx = found, k
                        break
            if tools_raw is None and system:
                tools_raw = tools_from_system_prompt(system) or None
                system = None if tools_raw else system
        if not tools_raw:
            raise SchemaError("no tools: no `tools` field and no tool specs in the system prompt")
        tools = normalize_tools(tools_raw)
    except SchemaError as e:
        return [_Bad(row, str(e))]
    base = str(row.get("id")) if row.get("id") not in (None, "") else stable_hash(turns)
    out: list[Example | _Bad] = []
    conv: list[dict] = [{"role": "system", "content": system}] if system else []
    for k, t in enumerate(turns):
        role = _ROLE[t["from"]]
        is_call = t["from"] == "function_call" or (role == "assistant" and _CALL_MARK.search(t["value"]))
        if k == sys_idx:
            continue  # the tool list lives in `tools`; a tool-only system prompt would duplicate it
        if not is_call:
            conv.append({"role": role, "content": t["value"]})
            continue
        parsed = parse_calls(t["value"])
        if not parsed.calls:
            out.append(_Bad({"row": row, "turn": k}, f"unparseable call turn: conversations[{k}] ({parsed.error})"))
            conv.append({"role": "assistant", "content": t["value"]})
            continue
        try:
            ref = reference_from_calls(parsed.calls)
            _check_reference(ref, tools)
            if not any(m["role"] == "user" for m in conv):
                raise SchemaError(f"no user message: before conversations[{k}]")
            out.append(Example(id=f"{base}-{k}", tools=tools, conversation=[dict(m) for m in conv], reference=ref,
                               source=str(row.get("source") or "sharegpt"), category=str(row.get("category") or "sharegpt")))
        except SchemaError as e:
            out.append(_Bad({"row": row, "turn": k}, str(e)))
        conv.append(_tool_calls_message(parsed.calls))
    return out or [_Bad(row, "no call turn: no function-call turn in `conversations`")]
