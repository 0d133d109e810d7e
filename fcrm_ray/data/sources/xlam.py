"""xLAM / APIGen rows: `query`, `tools`, `answers` (JSON strings), tools with a flat parameter
dict and Python-ish types (`"str, optional"`, `"List[int]"`)."""

from __future__ import annotations

import re
from typing import Any, Mapping

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.data.sources.fields import _calls_from_tool_calls, _check_reference, _json_field
from fcrm_ray.toolcall.schema import Example, SchemaError, normalize_tool, reference_from_calls

_PY_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
             "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
             "set": "array", "sequence": "array", "dict": "object", "mapping": "object", "object": "object",
             "array": "array"}


def _py_type_schema(t: str) -> dict:
    """`List[int]` / `Dict[str, Any]` / `Optional[str]` / `str` -> a JSON-Schema fragment ({} = any)."""
    t = t.strip()
    m = re.fullmatch(r"(?:typing\.)?(\w+)\s*(?:\[(.*)\])?", t)
    if not m:
        return {}
    head, inner = m.group(1).lower(), m.group(2)
    if head == "optional" and inner:
        return _py_type_schema(inner)
    if head == "union" and inner:
        parts = [p for p in (s.strip() for s in _split_top(inner)) if p.lower() not in ("none", "nonetype")]
        return _py_type_schema(parts[0]) if len(parts) == 1 else {}
    mapped = _PY_TYPES.get(head)
    if mapped is None:
        return {}
    out: dict = {"type": mapped}
    if mapped == "array" and inner:
        first = _split_top(inner)[0]
        item = _py_type_schema(first)
        if item:
            out["items"] = item
    return out


def _split_top(s: str) -> list[str]:
    """Split on commas not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def xlam_tool(raw: Any):
    """An xLAM tool (flat `{param: {type: "str, optional", description, default}}`) -> ToolSpec.
    Tools already in JSON-Schema form pass through `normalize_tool`."""
    if isinstance(raw, Mapping):
        fn = raw.get("function") if isinstance(raw.get("function"), Mapping) else raw
        params = fn.get("parameters")
        if isinstance(params, Mapping) and "properties" not in params and params.get("type") not in ("object", "dict"):
            props, required = {}, []
            for p, spec in params.items():
                if not isinstance(spec, Mapping):
                    raise SchemaError(f"bad tool: parameter `{p}` of {fn.get('name')!r} is not an object")
                tstr = str(spec.get("type", ""))
                # "str, optional", "int, default=5", "List[Dict[str, Any]]": the first top-level
                # piece is the type, the others are flags
                pieces = [s.strip() for s in _split_top(tstr)]
                optional = any(s.lower() == "optional" for s in pieces[1:]) or pieces[0].lower().startswith("optional[")
                schema = _py_type_schema(pieces[0]) if pieces[0] else {}
                if spec.get("description"):
                    schema["description"] = str(spec["description"])
                if "default" in spec and spec["default"] not in (None, ""):
                    schema["default"] = spec["default"]
                props[str(p)] = schema
                if not optional:
                    required.append(str(p))
            fn = {**fn, "parameters": {"type": "object", "properties": props, "required": required}}
        raw = fn
    return normalize_tool(raw)


def xlam_example(row: Any, index: int, category: str = "xlam") -> Example:
    if not isinstance(row, Mapping):
        raise SchemaError("malformed row: not a JSON object")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SchemaError("missing field: `query`")
    tools_raw = _json_field(row, "tools", (list,))
    tools = [xlam_tool(t) for t in tools_raw]
    answers = _json_field(row, "answers", (list,))
    calls = _calls_from_tool_calls(answers, "answers")
    ref = reference_from_calls(calls)
    # An optional parameter the answer leaves out may also be passed with its default value.
    by_name = {t.name: t for t in tools}
    for r in ref:
        t = by_name.get(r.name)
        if t is None:
            continue
        for p, schema in t.properties.items():
            if p not in r.params and p not in t.required and "default" in schema:
                r.params[p] = ["", schema["default"]]
    _check_reference(ref, tools)
    rid = row.get("id")
    eid = f"xlam-{rid}" if rid not in (None, "") else f"xlam-{stable_hash(query, tools_raw)}"
    return Example(id=eid, tools=tools, conversation=[{"role": "user", "content": query}], reference=ref,
                   source="xlam", category=str(row.get("category") or category))
