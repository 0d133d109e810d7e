"""Canonical data model for tool catalogs, tool calls, reference answers and examples.

Everything is plain data (dataclasses over dicts/lists/str/numbers) so it crosses process
boundaries, Parquet and JSON without custom code. Tool specs are normalised to JSON Schema
(OpenAI function format); BFCL's Python-flavoured dialect (`"type": "dict"`, `"float"`,
`"tuple"`, `"any"`) is translated on the way in.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

CORRECT = "correct"

# FC-RewardBench's error taxonomy (paper-notes.md), in the benchmark's order of frequency.
ERROR_TYPES: tuple[str, ...] = (
    "incorrect_parameter_value",
    "incorrect_function_name",
    "incorrect_number_of_functions",
    "missing_optional_parameter",
    "missing_required_parameter",
    "incorrect_parameter_type",
    "unexpected_parameter",
    "incorrect_output_format",
)


class SchemaError(ValueError):
    """Input that cannot be turned into the canonical data model (goes to quarantine)."""


# BFCL / Python type names -> JSON Schema type names.
_TYPE_ALIASES = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "double": "number",
    "number": "number",
    "int": "integer",
    "integer": "integer",
    "long": "integer",
    "str": "string",
    "string": "string",
    "char": "string",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "tuple": "array",
    "arraylist": "array",
    "hashmap": "object",
    "null": "null",
}


def _normalize_schema(node: Any, where: str) -> dict:
    """Recursively translate one (sub)schema to JSON Schema; unknown/`any` types drop `type`."""
    if not isinstance(node, Mapping):
        raise SchemaError(f"{where}: schema must be an object, got {type(node).__name__}")
    out = {k: copy.deepcopy(v) for k, v in node.items() if k not in ("properties", "items", "additionalProperties")}
    t = node.get("type")
    if isinstance(t, str):
        mapped = _TYPE_ALIASES.get(t.strip().lower())
        if mapped is None:  # "any" and exotic Java/JS names: accept any value
            out.pop("type", None)
        else:
            out["type"] = mapped
    elif isinstance(t, list):
        out["type"] = [_TYPE_ALIASES.get(str(x).lower(), str(x)) for x in t]
    elif t is not None:
        raise SchemaError(f"{where}.type: expected a string, got {t!r}")
    if "properties" in node:
        props = node["properties"]
        if not isinstance(props, Mapping):
            raise SchemaError(f"{where}.properties: expected an object")
        out["properties"] = {str(k): _normalize_schema(v, f"{where}.properties.{k}") for k, v in props.items()}
    if "items" in node:
        items = node["items"]
        out["items"] = _normalize_schema(items, f"{where}.items") if isinstance(items, Mapping) else copy.deepcopy(items)
    if "additionalProperties" in node:
        ap = node["additionalProperties"]
        out["additionalProperties"] = _normalize_schema(ap, f"{where}.additionalProperties") if isinstance(ap, Mapping) else ap
    if "required" in out:
        req = out["required"]
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise SchemaError(f"{where}.required: expected a list of strings")
    return out


@dataclass(frozen=True)
class ToolSpec:
    """One tool of a catalog: name, description and a JSON-Schema `object` for its parameters."""

    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}, "required": []})

    @property
    def properties(self) -> dict[str, dict]:
        return self.parameters.get("properties", {}) or {}

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []) or [])

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)}

    def to_openai(self) -> dict:
        """OpenAI `tools=[...]` entry, the form chat templates take."""
        return {"type": "function", "function": self.to_dict()}


def normalize_tool(raw: Any) -> ToolSpec:
    """Accept an OpenAI tool (`{"type": "function", "function": {...}}`), a bare function spec,
    or BFCL's dialect, and return a `ToolSpec` with JSON-Schema parameters."""
    if isinstance(raw, ToolSpec):
        return raw
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SchemaError(f"tool is not valid JSON: {e.msg}") from None
    if not isinstance(raw, Mapping):
        raise SchemaError(f"tool must be an object, got {type(raw).__name__}")
    if raw.get("type") == "function" and isinstance(raw.get("function"), Mapping):
        raw = raw["function"]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SchemaError("tool has no string `name`")
    desc = raw.get("description") or ""
    if not isinstance(desc, str):
        desc = json.dumps(desc, ensure_ascii=False)
    params = raw.get("parameters", raw.get("input_schema"))
    if params is None:
        params = {"type": "object", "properties": {}, "required": []}
    params = _normalize_schema(params, f"tool {name!r}.parameters")
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    params.setdefault("required", [])
    return ToolSpec(name=name, description=desc, parameters=params)


def normalize_tools(raw: Any) -> list[ToolSpec]:
    """A catalog from a list (or JSON string of a list) of tools in any accepted format."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SchemaError(f"tools is not valid JSON: {e.msg}") from None
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise SchemaError(f"tools must be a list, got {type(raw).__name__}")
    return [normalize_tool(t) for t in raw]


@dataclass(frozen=True)
class ToolCall:
    """A function call as a model made it: a name and keyword arguments."""

    name: str
    arguments: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "arguments": copy.deepcopy(self.arguments)}

    def key(self) -> str:
        """Canonical string (sorted keys) used for dedup and majority votes."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, default=str)


_TEXT_PARTS = ("text", "input_text", "output_text")


def content_text(content: Any) -> str:
    """A message's content as text. OpenAI / Anthropic content parts (`[{"type": "text", "text":
    ...}]`) give their text, one part per line, non-text parts (images, files) dropped, so a
    client that sends parts gets the input a client sending the plain string gets. Any other
    structure (a tool result as an object or a list of records) is written as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)) and content and all(
            isinstance(p, str) or (isinstance(p, Mapping) and "type" in p) for p in content):
        return "\n".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content
                         if isinstance(p, str) or (p.get("type") in _TEXT_PARTS and "text" in p))
    return json.dumps(content, ensure_ascii=False, default=str)


def calls_to_text(calls: Iterable[ToolCall]) -> str:
    """The canonical text form of a list of calls: a JSON list of `{name, arguments}`."""
    return json.dumps([c.to_dict() for c in calls], ensure_ascii=False)


_OMIT = object()


def _is_alt_dict(v: Any) -> bool:
    """BFCL writes nested dict answers as `{key: [acceptable values]}`."""
    return isinstance(v, Mapping) and all(isinstance(x, list) for x in v.values())


def _choose(alts: Any, rng: "random.Random | None") -> Any:
    """One acceptable alternative (the first when `rng` is None); "" means "omit"."""
    if not alts:
        return _OMIT
    pick = alts[0] if rng is None else rng.choice(list(alts))
    return _OMIT if isinstance(pick, str) and pick == "" else pick


def resolve_acceptable(value: Any, rng: "random.Random | None" = None) -> Any:
    """A concrete value from one acceptable value of a reference: nested possible-answer dicts
    pick one alternative per key (the first when `rng` is None; "" leaves the key out)."""
    if _is_alt_dict(value):
        out = {}
        for k, alts in value.items():
            choice = _choose(alts, rng)
            if choice is not _OMIT:
                out[k] = resolve_acceptable(choice, rng)
        return out
    if isinstance(value, list):
        return [resolve_acceptable(x, rng) for x in value]
    return copy.deepcopy(value)


@dataclass(frozen=True)
class ReferenceCall:
    """A reference call in BFCL's possible-answer form: each parameter maps to the list of
    acceptable values; an empty string `""` in the list means the parameter may be omitted."""

    name: str
    params: dict = field(default_factory=dict)  # param -> list of acceptable values

    def may_omit(self, param: str) -> bool:
        return "" in self.params.get(param, [])

    def resolve(self, rng: "random.Random | None" = None) -> ToolCall:
        """A concrete call this reference accepts. `rng=None`: the canonical form (first
        acceptable value per parameter, nested `{key: [alternatives]}` dicts unwrapped the same
        way, parameters whose pick is "" left out); otherwise a random acceptable value each."""
        args = {}
        for p, alts in self.params.items():
            choice = _choose(alts, rng)
            if choice is not _OMIT:
                args[p] = resolve_acceptable(choice, rng)
        return ToolCall(self.name, args)

    def canonical_call(self) -> ToolCall:
        return self.resolve(None)

    def to_bfcl(self) -> dict:
        return {self.name: copy.deepcopy(self.params)}


def reference_from_bfcl(raw: Any) -> list[ReferenceCall]:
    """Parse BFCL's `ground_truth` list `[{fn: {param: [values]}}]` (or a JSON string of it)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SchemaError(f"reference is not valid JSON: {e.msg}") from None
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise SchemaError(f"reference must be a list, got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, ReferenceCall):
            out.append(item)
            continue
        if not isinstance(item, Mapping) or len(item) != 1:
            raise SchemaError(f"reference[{i}] must be an object with exactly one function name")
        (name, params), = item.items()
        if not isinstance(params, Mapping):
            raise SchemaError(f"reference[{i}].{name} must map parameters to lists of values")
        norm = {}
        for p, values in params.items():
            if not isinstance(values, list):
                values = [values]
            norm[str(p)] = copy.deepcopy(values)
        out.append(ReferenceCall(str(name), norm))
    return out


def reference_from_calls(calls: Iterable[ToolCall]) -> list[ReferenceCall]:
    """A reference that accepts exactly the given calls (one acceptable value per argument)."""
    return [ReferenceCall(c.name, {k: [copy.deepcopy(v)] for k, v in c.arguments.items()}) for c in calls]


def reference_to_bfcl(ref: Iterable[ReferenceCall]) -> list[dict]:
    return [r.to_bfcl() for r in ref]


@dataclass
class Example:
    """One tool-calling task: catalog, conversation so far, and the reference answer."""

    id: str
    tools: list[ToolSpec]
    conversation: list[dict]  # chat messages: {"role": ..., "content": ...} (+ tool_calls / tool turns)
    reference: list[ReferenceCall]
    source: str = ""
    category: str = ""

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "category": self.category,
            "tools": [t.to_dict() for t in self.tools],
            "conversation": copy.deepcopy(self.conversation),
            "reference": reference_to_bfcl(self.reference),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Example":
        for key in ("id", "tools", "conversation", "reference"):
            if key not in d:
                raise SchemaError(f"example is missing `{key}`")
        conv = d["conversation"]
        if isinstance(conv, str):
            try:
                conv = json.loads(conv)
            except json.JSONDecodeError as e:
                raise SchemaError(f"conversation is not valid JSON: {e.msg}") from None
        if not isinstance(conv, list) or not all(isinstance(m, Mapping) and "role" in m for m in conv):
            raise SchemaError("conversation must be a list of messages with a `role`")
        return cls(
            id=str(d["id"]),
            tools=normalize_tools(d["tools"]),
            conversation=[dict(m) for m in conv],
            reference=reference_from_bfcl(d["reference"]),
            source=str(d.get("source", "") or ""),
            category=str(d.get("category", "") or ""),
        )

    def tool(self, name: str) -> ToolSpec | None:
        for t in self.tools:
            if t.name == name:
                return t
        return None
