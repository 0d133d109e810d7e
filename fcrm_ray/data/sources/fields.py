"""Field decoding and checks shared by the format readers; each raises `SchemaError` naming the
field, which the readers turn into a quarantine reason."""

from __future__ import annotations

import json
from typing import Any, Mapping

from fcrm_ray.toolcall.schema import ReferenceCall, SchemaError, ToolCall


def _json_field(row: Mapping, key: str, kinds: tuple[type, ...]) -> Any:
    """row[key], decoding a JSON string; raises SchemaError naming the field."""
    if key not in row or row[key] is None:
        raise SchemaError(f"missing field: `{key}`")
    v = row[key]
    if isinstance(v, str) and str not in kinds:
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise SchemaError(f"bad field: `{key}` is not valid JSON ({e.msg})") from None
    if hasattr(v, "tolist"):  # numpy arrays from pandas-written Parquet
        v = v.tolist()
    if not isinstance(v, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise SchemaError(f"bad field: `{key}` must be a {names}, got {type(v).__name__}")
    return v


def _messages(raw: Any, where: str) -> list[dict]:
    if not isinstance(raw, list):
        raise SchemaError(f"bad field: `{where}` must be a list of messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise SchemaError(f"bad message: `{where}[{i}]` must be an object with a string `role`")
        out.append(dict(m))
    return out


def _check_reference(ref: list[ReferenceCall], tools) -> None:
    if not ref:
        raise SchemaError("empty reference: no reference call")
    names = {t.name for t in tools}
    unknown = sorted({r.name for r in ref} - names)
    if unknown:
        raise SchemaError(f"unknown function: reference calls {unknown} not in the tool catalog")


def _calls_from_tool_calls(raw: Any, where: str) -> list[ToolCall]:
    """OpenAI `tool_calls` (or bare `{name, arguments}` objects) -> ToolCalls."""
    if not isinstance(raw, list) or not raw:
        raise SchemaError(f"bad field: `{where}` must be a non-empty list")
    calls = []
    for i, tc in enumerate(raw):
        if not isinstance(tc, Mapping):
            raise SchemaError(f"bad call: `{where}[{i}]` is not an object")
        fn = tc.get("function") if isinstance(tc.get("function"), Mapping) else tc
        name = fn.get("name")
        args = fn.get("arguments", fn.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise SchemaError(f"bad call: `{where}[{i}].arguments` is not valid JSON ({e.msg})") from None
        if not isinstance(name, str) or not name:
            raise SchemaError(f"bad call: `{where}[{i}]` has no string `name`")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise SchemaError(f"bad call: `{where}[{i}].arguments` must be an object")
        calls.append(ToolCall(name, dict(args)))
    return calls


def _tool_calls_message(calls: list[ToolCall], content: str = "") -> dict:
    return {"role": "assistant", "content": content,
            "tool_calls": [{"type": "function", "function": c.to_dict()} for c in calls]}
