"""Consistent random renaming of tools and parameters, so an RM cannot memorise names.

ToolRM obfuscates its training data against memorisation: function and parameter names become
random identifiers, schema keys are reordered, meaning is preserved. `obfuscate_example` does
that to one `Example`:

- every function name (catalog, reference, assistant `tool_calls` in the conversation) maps to
  `fn_xxxxx`, every *top-level* parameter name (schema `properties` and `required`, reference,
  call arguments) to `p_xxxx`. The parameter map is global across the catalog: the same original
  name gets the same random name in every tool, as it would in a real catalog.
- Nested property names (inside an `object` parameter) are left alone on purpose: they are part of
  the argument *value*, which the verifier compares key by key against the reference; renaming
  them would mean rewriting values, and the leak (names of sub-fields) is small.
- Tool order, property order, `required` order and the keys inside each property schema are
  shuffled (seeded).
- Free text is changed only where an identifier occurs verbatim: function names and
  identifier-like parameter names (with `_`, a camel hump or a digit) in descriptions, function
  names in conversation messages. Plain words ("location", "search") are left, so prose keeps
  its meaning.

`obfuscate_output` renames inside a model output: parsed calls are renamed and re-serialised in
the same surface (`surface.format_calls` styles); unparseable text gets whole-word replacement
(function names anywhere, parameter names only in key positions `"p":` / `p=`), so broken
outputs stay broken. Names outside the catalog (hallucinated tools or parameters) get stable
derived names too, so a rejected output never stands out by showing a readable name.

Round trip: `deobfuscate_calls(obfuscate(calls)) == calls`; `deobfuscate_tools` gives back the
catalog up to tool/property/`required` order.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from fcrm_ray.toolcall.schema import Example, ReferenceCall, ToolCall, ToolSpec
from fcrm_ray.toolcall.surface import detect_style, format_calls

_ALPHABET = string.ascii_lowercase + string.digits
FUNCTION_PREFIX = "fn_"
PARAM_PREFIX = "p_"
# JSON wrapper keys of call formats: a parameter with one of these names is not renamed in the
# raw-text fallback where it sits in key position, or the wrapper would be damaged.
_WRAPPER_KEYS = {"name", "arguments", "parameters", "function", "type", "id", "tool_calls"}


def _rand_name(rng: random.Random, prefix: str, k: int) -> str:
    return prefix + "".join(rng.choice(_ALPHABET) for _ in range(k))


def _derived_name(salt: str, name: str, prefix: str, k: int) -> str:
    h = hashlib.sha256(f"{salt}\x00{prefix}\x00{name}".encode()).digest()
    return prefix + "".join(_ALPHABET[b % len(_ALPHABET)] for b in h[:k])


@dataclass
class ObfuscationMap:
    """original -> obfuscated names. `functions` and `params` grow when an output names a tool or
    parameter outside the catalog (a derived, salted name is recorded so it can be inverted)."""

    functions: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    salt: str = ""

    def function(self, name: str) -> str:
        if name not in self.functions:
            self.functions[name] = self._fresh(name, FUNCTION_PREFIX, 5, self.functions)
        return self.functions[name]

    def param(self, name: str) -> str:
        if name not in self.params:
            self.params[name] = self._fresh(name, PARAM_PREFIX, 4, self.params)
        return self.params[name]

    def _fresh(self, name: str, prefix: str, k: int, table: dict[str, str]) -> str:
        used = set(table.values())
        cand, i = _derived_name(self.salt, name, prefix, k), 0
        while cand in used:
            i += 1
            cand = _derived_name(self.salt, f"{name}#{i}", prefix, k)
        return cand

    def invert(self) -> "ObfuscationMap":
        return ObfuscationMap(
            functions={v: k for k, v in self.functions.items()},
            params={v: k for k, v in self.params.items()},
            salt=self.salt + "#inv",
        )

    def to_dict(self) -> dict:
        return {"functions": dict(self.functions), "params": dict(self.params), "salt": self.salt}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ObfuscationMap":
        return cls(functions=dict(d.get("functions", {})), params=dict(d.get("params", {})),
                   salt=str(d.get("salt", "")))


# ----------------------------------------------------------------------------------------------
# Text replacement
# ----------------------------------------------------------------------------------------------


def _distinctive(name: str) -> bool:
    """Identifier-like enough that replacing it in prose cannot hit an ordinary word."""
    return bool(re.search(r"[._\d]|[a-z][A-Z]", name))


def _word_pattern(names: Iterable[str]) -> re.Pattern | None:
    names = sorted({n for n in names if n}, key=len, reverse=True)
    if not names:
        return None
    alt = "|".join(re.escape(n) for n in names)
    # not inside a longer identifier or dotted path on either side
    return re.compile(r"(?<![\w])(?<![\w]\.)(" + alt + r")(?![\w]|\.\w)")


def _replace_words(text: str, table: Mapping[str, str], only_distinctive: bool = True) -> str:
    names = [n for n in table if not only_distinctive or _distinctive(n)]
    pat = _word_pattern(names)
    if pat is None or not isinstance(text, str):
        return text
    return pat.sub(lambda m: table[m.group(1)], text)


def _replace_param_keys(text: str, table: Mapping[str, str]) -> str:
    """Parameter names in key positions only: `"p":`, `'p':` (JSON/dict) and `p=` (kwargs)."""
    names = sorted(table, key=len, reverse=True)
    if not names:
        return text
    alt = "|".join(re.escape(n) for n in names)
    json_keys = [n for n in names if n not in _WRAPPER_KEYS]
    if json_keys:
        jalt = "|".join(re.escape(n) for n in json_keys)
        text = re.sub(r"(?P<q>[\"'])(?P<n>" + jalt + r")(?P=q)(?P<rest>\s*:)",
                      lambda m: f"{m.group('q')}{table[m.group('n')]}{m.group('q')}{m.group('rest')}", text)
    return re.sub(r"(?<![\w.\"'])(?P<n>" + alt + r")(?P<rest>\s*=(?!=))",
                  lambda m: f"{table[m.group('n')]}{m.group('rest')}", text)


# ----------------------------------------------------------------------------------------------
# Calls, tools, references
# ----------------------------------------------------------------------------------------------


def rename_calls(calls: Iterable[ToolCall], mapping: ObfuscationMap, rename_unknown: bool = True) -> list[ToolCall]:
    """Calls with function and top-level argument names mapped; names outside the map get derived
    ones (`rename_unknown`) or stay as they are."""
    if rename_unknown:
        fn, pm = mapping.function, mapping.param
    else:
        fn = lambda n: mapping.functions.get(n, n)  # noqa: E731
        pm = lambda n: mapping.params.get(n, n)  # noqa: E731
    return [ToolCall(fn(c.name), {pm(k): copy.deepcopy(v) for k, v in c.arguments.items()}) for c in calls]


def deobfuscate_calls(calls: Iterable[ToolCall], mapping: ObfuscationMap) -> list[ToolCall]:
    """Map obfuscated calls (e.g. a policy's output on an obfuscated prompt) back to original names.
    `mapping` is the forward map returned by `obfuscate_example`; names it does not know stay."""
    inv = mapping.invert()
    return rename_calls(calls, inv, rename_unknown=False)


def _rename_tool(tool: ToolSpec, mapping: ObfuscationMap, rng: random.Random | None) -> ToolSpec:
    params = copy.deepcopy(tool.parameters)
    props = params.get("properties") or {}
    items = []
    for k, v in props.items():
        v = dict(v) if isinstance(v, Mapping) else v
        if isinstance(v, dict):
            if isinstance(v.get("description"), str):
                v["description"] = _rename_prose(v["description"], mapping, params_too=True)
            if rng is not None:  # reorder the keys inside each property schema too
                keys = list(v)
                rng.shuffle(keys)
                v = {kk: v[kk] for kk in keys}
        items.append((mapping.params.get(k, k), v))
    required = [mapping.params.get(r, r) for r in params.get("required") or []]
    if rng is not None:
        rng.shuffle(items)
        rng.shuffle(required)
    params["properties"] = dict(items)
    params["required"] = required
    return ToolSpec(
        name=mapping.functions.get(tool.name, tool.name),
        description=_rename_prose(tool.description, mapping, params_too=True),
        parameters=params,
    )


def _rename_prose(text: str, mapping: ObfuscationMap, params_too: bool) -> str:
    text = _replace_words(text, mapping.functions)
    if params_too:
        text = _replace_words(text, mapping.params)
    return text


def deobfuscate_tools(tools: Iterable[ToolSpec], mapping: ObfuscationMap) -> list[ToolSpec]:
    """The original catalog (names, descriptions, schemas) up to tool/property/`required` order."""
    inv = mapping.invert()
    return [_rename_tool(t, inv, None) for t in tools]


def _rename_reference(ref: Iterable[ReferenceCall], mapping: ObfuscationMap) -> list[ReferenceCall]:
    return [ReferenceCall(mapping.functions.get(r.name, r.name),
                          {mapping.params.get(k, k): copy.deepcopy(v) for k, v in r.params.items()}) for r in ref]


def deobfuscate_reference(ref: Iterable[ReferenceCall], mapping: ObfuscationMap) -> list[ReferenceCall]:
    return _rename_reference(ref, mapping.invert())


def _rename_message(m: Mapping, mapping: ObfuscationMap) -> dict:
    out = dict(m)
    if isinstance(out.get("content"), str):
        out["content"] = _replace_words(out["content"], mapping.functions)
    if out.get("role") == "tool" and isinstance(out.get("name"), str):
        out["name"] = mapping.function(out["name"])
    tcs = out.get("tool_calls")
    if isinstance(tcs, list):
        new = []
        for tc in tcs:
            tc = copy.deepcopy(tc)
            fn = tc.get("function", tc) if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                fn["name"] = mapping.function(fn["name"])
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        parsed = json.loads(args)
                    except json.JSONDecodeError:
                        parsed = None
                    if isinstance(parsed, dict):
                        renamed = {mapping.param(k): v for k, v in parsed.items()}
                        fn["arguments"] = json.dumps(renamed, ensure_ascii=False)
                elif isinstance(args, dict):
                    fn["arguments"] = {mapping.param(k): v for k, v in args.items()}
            new.append(tc)
        out["tool_calls"] = new
    return out


def obfuscate_example(example: Example, seed: int | str) -> tuple[Example, ObfuscationMap]:
    """An `Example` with random function/parameter names and shuffled schemas, and the map.
    Same example and seed -> same result."""
    rng = random.Random(f"fcrm-obfuscate:{seed}")
    fnames: list[str] = []
    pnames: list[str] = []
    for t in example.tools:
        fnames.append(t.name)
        pnames.extend(t.properties)
        pnames.extend(t.required)
    for r in example.reference:
        fnames.append(r.name)
        pnames.extend(r.params)
    for m in example.conversation:
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", tc) if isinstance(tc, Mapping) else None
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                fnames.append(fn["name"])
    mapping = ObfuscationMap(salt="".join(rng.choice(_ALPHABET) for _ in range(12)))
    plan = ((fnames, mapping.functions, FUNCTION_PREFIX, 5), (pnames, mapping.params, PARAM_PREFIX, 4))
    for names, table, prefix, k in plan:
        used = set(table.values())
        for name in sorted(set(names)):  # sorted: independent of set/hash order
            new = _rand_name(rng, prefix, k)
            while new in used:
                new = _rand_name(rng, prefix, k)
            used.add(new)
            table[name] = new
    tools = [_rename_tool(t, mapping, rng) for t in example.tools]
    rng.shuffle(tools)
    obf = Example(
        id=example.id,
        tools=tools,
        conversation=[_rename_message(m, mapping) for m in example.conversation],
        reference=_rename_reference(example.reference, mapping),
        source=example.source,
        category=example.category,
    )
    return obf, mapping


def obfuscate_output(text: Any, mapping: ObfuscationMap, rename_unknown: bool = True) -> str:
    """Rename function/parameter names inside a model output (see module docstring).
    `rename_unknown=False` leaves names the map does not know as they are (used to deobfuscate)."""
    from fcrm_ray.toolcall.parse import parse_calls

    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False, default=str)
    parsed = parse_calls(text)
    if not parsed.calls:  # unparseable (or no call at all): rewrite names in place, keep the rest
        return raw_rename(text, mapping, rename_unknown)
    renamed = rename_calls(parsed.calls, mapping, rename_unknown)
    style = detect_style(text)
    if style is not None:  # one of our surfaces: re-serialise in the same one
        out = format_calls(renamed, style)
        if _reparses(out, renamed):
            return out
    # Another surface (chatter around the call, Mistral/Llama tags, ...): rewrite names in place,
    # as long as the text still reads as the renamed calls; else fall back to a JSON list.
    out = raw_rename(text, mapping, rename_unknown)
    return out if _reparses(out, renamed) else format_calls(renamed, "json")


def _reparses(text: str, calls: Sequence[ToolCall]) -> bool:
    from fcrm_ray.toolcall.parse import parse_calls

    got = parse_calls(text).calls
    return got is not None and [c.to_dict() for c in got] == [c.to_dict() for c in calls]


_JSON_NAME = re.compile(r'(?P<pre>["\']name["\']\s*:\s*["\'])(?P<n>[^"\'\n]+)(?P<post>["\'])')
_PY_HEAD = re.compile(r"(?<![\w.\"'])(?P<n>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)(?P<post>\s*\()")


def raw_rename(text: str, mapping: ObfuscationMap, rename_unknown: bool = True) -> str:
    """Whole-word function names anywhere, parameter names in key positions only; for outputs
    that do not parse (so their breakage is kept exactly). With `rename_unknown`, tool names in
    `"name": "..."` values and Python call heads of code-like text are renamed even when the
    catalog does not have them (a hallucinated name must not stay readable)."""
    known = set(mapping.functions.values())
    if rename_unknown:
        def fn(m: re.Match) -> str:
            n = m.group("n")
            new = n if n in known else mapping.function(n)
            return m.group("pre") + new + m.group("post")

        text = _JSON_NAME.sub(fn, text)
        looks_python = text.lstrip()[:1] in ("[", "`") or _PY_HEAD.match(text.lstrip())
        if looks_python and not _JSON_NAME.search(text):
            text = _PY_HEAD.sub(lambda m: (m.group("n") if m.group("n") in known else mapping.function(m.group("n")))
                                + m.group("post"), text)
    text = _replace_words(text, {k: v for k, v in mapping.functions.items() if k not in known}, only_distinctive=False)
    text = _replace_param_keys(text, mapping.params)
    # identifier-like parameter names mentioned in prose ("drink_id") would stand out too
    return _replace_words(text, {k: v for k, v in mapping.params.items() if k not in _WRAPPER_KEYS})


def deobfuscate_output(text: str, mapping: ObfuscationMap) -> str:
    """The inverse of `obfuscate_output` for outputs written against the obfuscated catalog."""
    return obfuscate_output(text, mapping.invert(), rename_unknown=False)
