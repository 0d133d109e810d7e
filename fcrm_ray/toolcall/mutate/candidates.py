"""Every candidate rewrite of one example for one error type (`_Builder`, one method per type
of `schema.ERROR_TYPES`), each tagged with its `kind` and a weight within its family."""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fcrm_ray.toolcall.mutate.names import (
    COMMON_PARAMS,
    _adapt_args,
    _hallucinated_names,
    _name_tokens,
    _param_name_variants,
    _plausible_value,
    _similarity,
)
from fcrm_ray.toolcall.mutate.reference import resolve_reference
from fcrm_ray.toolcall.mutate.spans import _WORD_RE, _context
from fcrm_ray.toolcall.mutate.values import _COUNTRIES, _US_STATES, _parse_date, _same_kind, _shape, _value_candidates
from fcrm_ray.toolcall.schema import Example, ToolCall, ToolSpec
from fcrm_ray.toolcall.surface import format_calls, py_literal, style_supports


@dataclass
class _Cand:
    kind: str
    calls: list[ToolCall] | None = None
    text: str | None = None
    weight: float = 1.0


def _replace(calls: Sequence[ToolCall], i: int, call: ToolCall) -> list[ToolCall]:
    out = list(calls)
    out[i] = call
    return out


def _with_arg(call: ToolCall, key: str, value: Any) -> ToolCall:
    args = dict(call.arguments)
    args[key] = value
    return ToolCall(call.name, args)


def _without_arg(call: ToolCall, key: str) -> ToolCall:
    return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != key})


def _renamed_arg(call: ToolCall, old: str, new: str) -> ToolCall:
    return ToolCall(call.name, {(new if k == old else k): v for k, v in call.arguments.items()})


class _Builder:
    """Everything the candidate builders need about one example."""

    def __init__(self, example: Example, rng: random.Random):
        self.ex = example
        self.rng = rng
        # Half the time the rejected side starts from a non-canonical acceptable form, like a real
        # model whose other arguments are fine but not written as the first listed answer.
        self.base = resolve_reference(example.reference, rng if rng.random() < 0.5 else None)
        self.refs = list(example.reference)
        self.ctx = _context(example, self.base)
        self.names = [t.name for t in example.tools]

    def tool(self, name: str) -> ToolSpec | None:
        return self.ex.tool(name)

    def schema(self, call: ToolCall, p: str) -> Mapping:
        t = self.tool(call.name)
        return (t.properties.get(p) if t else None) or {}

    # -- incorrect_parameter_value -----------------------------------------------------------
    def param_value(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            for p, v in call.arguments.items():
                others = [o for j, c in enumerate(self.base) for q, o in c.arguments.items() if (j, q) != (i, p)]
                # values of the same parameter in sibling calls first: the classic parallel mix-up
                same_param = [c.arguments[p] for j, c in enumerate(self.base) if j != i and p in c.arguments]
                for kind, nv, w in _value_candidates(v, ref.params.get(p, []), self.schema(call, p), self.ctx, i, p,
                                                     same_param + others):
                    out.append(_Cand(kind, _replace(self.base, i, _with_arg(call, p, nv)), weight=w))
            keys = list(call.arguments)
            for a in range(len(keys)):  # two values swapped within the call
                for b in range(a + 1, len(keys)):
                    va, vb = call.arguments[keys[a]], call.arguments[keys[b]]
                    if (_same_kind(va, vb) and va != vb and isinstance(va, (str, int, float))
                            and _shape(va) == _shape(vb)):
                        swapped = _with_arg(_with_arg(call, keys[a], vb), keys[b], va)
                        out.append(_Cand("swapped_params", _replace(self.base, i, swapped), weight=1.0))
        for i in range(len(self.base)):  # one value swapped across two calls of the same tool
            for j in range(i + 1, len(self.base)):
                ci, cj = self.base[i], self.base[j]
                if ci.name != cj.name:
                    continue
                for p in ci.arguments:
                    if p in cj.arguments and ci.arguments[p] != cj.arguments[p]:
                        calls = list(self.base)
                        calls[i] = _with_arg(ci, p, cj.arguments[p])
                        calls[j] = _with_arg(cj, p, ci.arguments[p])
                        out.append(_Cand("swapped_across_calls", calls, weight=1.5))
        return out

    # -- incorrect_function_name ---------------------------------------------------------------
    def function_name(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            spec = self.tool(call.name)
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                sim = _similarity(spec, sib) if spec else 0.1
                # mostly arguments fitted to the sibling's schema, sometimes the original ones as they were
                adapt = self.rng.random() < 0.7
                args = _adapt_args(call.arguments, sib, self.ctx, self.rng) if adapt else dict(call.arguments)
                out.append(_Cand("sibling_tool", _replace(self.base, i, ToolCall(sib.name, args)), weight=0.2 + sim))
            for kind, name, w in _hallucinated_names(call.name, self.names):
                calls = _replace(self.base, i, ToolCall(name, dict(call.arguments)))
                out.append(_Cand("hallucinated_" + kind, calls, weight=w))
        return out

    # -- incorrect_number_of_functions ---------------------------------------------------------
    def number_of_functions(self) -> list[_Cand]:
        out = []
        base = self.base
        if len(base) > 1:
            for i in range(len(base)):
                out.append(_Cand("dropped_call", base[:i] + base[i + 1:], weight=1.0))
            # merged calls: one call whose differing string values are joined ("A and B")
            if len({c.name for c in base}) == 1:
                merged = dict(base[0].arguments)
                ok = False
                for p in merged:
                    vals = [c.arguments.get(p) for c in base]
                    if all(isinstance(v, str) for v in vals) and len(set(vals)) > 1:
                        merged[p] = self.rng.choice([", ", " and "]).join(vals)
                        ok = True
                if ok:
                    out.append(_Cand("merged_calls", [ToolCall(base[0].name, merged)], weight=1.2))
            if len(base) > 2:
                out.append(_Cand("dropped_call", base[:-2], weight=0.4))
        for i, call in enumerate(base):
            out.append(_Cand("duplicate_call", base[: i + 1] + [call] + base[i + 1:], weight=0.4))
            # repeated call with another value (a model that "also" tries another reading)
            ref = self.refs[i]
            for p, v in call.arguments.items():
                alts = ref.params.get(p, [])
                for kind, nv, w in _value_candidates(v, alts, self.schema(call, p), self.ctx, i, p, []):
                    if kind in ("wrong_span", "enum_other", "default_value", "near_synonym", "entity_alias",
                                "location_qualifier_added", "location_state_expanded", "boolean_flipped"):
                        calls = base[: i + 1] + [_with_arg(call, p, nv)] + base[i + 1:]
                        out.append(_Cand("repeated_call_other_value", calls, weight=0.3 * w))
            # split call: a comma/and-joined string value spread over two calls
            for p, v in call.arguments.items():
                if isinstance(v, str):
                    parts = [s.strip() for s in re.split(r",\s*|\s+and\s+", v) if s.strip()]
                    # a list packed into one string ("repo1,repo2", "Paris and Rome"), not an address
                    if (2 <= len(parts) <= 3 and not _parse_date(v) and not parts[0][:1].isdigit()
                            and not any(x.upper() in _US_STATES or x.lower() in _COUNTRIES for x in parts)):
                        split = [_with_arg(call, p, s) for s in parts]
                        out.append(_Cand("split_call", base[:i] + split + base[i + 1:], weight=0.8))
            spec = self.tool(call.name)
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                sim = _similarity(spec, sib) if spec else 0.1
                extra = ToolCall(sib.name, _adapt_args(call.arguments, sib, self.ctx, self.rng))
                pos = self.rng.choice([i, i + 1])
                out.append(_Cand("extra_sibling_call", base[:pos] + [extra] + base[pos:], weight=0.3 + sim))
        return out

    # -- missing parameters ---------------------------------------------------------------------
    def missing_required(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            spec = self.tool(call.name)
            if not spec:
                continue
            for p in spec.required:
                if p not in call.arguments:
                    continue
                out.append(_Cand("dropped_required", _replace(self.base, i, _without_arg(call, p)), weight=1.0))
                for alt in _param_name_variants(p):
                    if alt not in spec.properties:
                        calls = _replace(self.base, i, _renamed_arg(call, p, alt))
                        out.append(_Cand("renamed_required", calls, weight=0.4))
        return out

    def missing_optional(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            spec = self.tool(call.name)
            required = set(spec.required) if spec else set()
            for p, alts in ref.params.items():
                if p in call.arguments and p not in required and "" not in alts:
                    out.append(_Cand("dropped_optional", _replace(self.base, i, _without_arg(call, p)), weight=1.0))
        return out

    # -- unexpected_parameter -------------------------------------------------------------------
    def unexpected(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            spec = self.tool(call.name)
            if not spec:
                continue
            props = spec.properties
            for p, ps in props.items():  # in the schema but not wanted by the reference
                if p not in ref.params and p not in call.arguments:
                    value = _plausible_value(p, ps, self.ctx, self.rng)
                    out.append(_Cand("schema_param_not_expected", _replace(self.base, i, _with_arg(call, p, value)),
                                     weight=1.5))
            desc_words = {w.lower() for w in _WORD_RE.findall(spec.description)}
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                for p, ps in sib.properties.items():
                    if p not in props:
                        value = _plausible_value(p, ps, self.ctx, self.rng)
                        calls = _replace(self.base, i, _with_arg(call, p, value))
                        out.append(_Cand("sibling_param", calls, weight=0.6))
            topic = desc_words | set(_name_tokens(call.name))
            for p, (v, triggers) in COMMON_PARAMS.items():
                if p in props:
                    continue
                w = 1.0 if topic & set(triggers) else 0.05
                calls = _replace(self.base, i, _with_arg(call, p, copy.deepcopy(v)))
                out.append(_Cand("common_param", calls, weight=w))
            for p in call.arguments:  # an optional parameter under a made-up name
                if p in spec.required:
                    continue
                for alt in _param_name_variants(p):
                    if alt not in props:
                        calls = _replace(self.base, i, _renamed_arg(call, p, alt))
                        out.append(_Cand("renamed_optional", calls, weight=0.8))
        return out

    # -- incorrect_parameter_type ---------------------------------------------------------------
    def param_type(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            for p, v in call.arguments.items():
                st = self.schema(call, p).get("type")
                st = st if isinstance(st, str) else None
                new: list[tuple[str, Any, float]] = []
                if isinstance(v, bool):
                    as_text = self.rng.choice(["true", "True"] if v else ["false", "False"])
                    new += [("bool_as_string", as_text, 1.0),
                            ("bool_as_int", int(v), 0.3)]
                elif isinstance(v, (int, float)):
                    new.append(("number_as_string", str(v), 1.5))
                    if isinstance(v, int) and st == "integer":
                        new.append(("int_as_float", float(v), 1.0))
                    if st in ("integer", "number", "string"):
                        new.append(("scalar_wrapped_in_list", [v], 0.3))
                elif isinstance(v, str):
                    if re.fullmatch(r"-?\d+", v.strip()):
                        new.append(("numeric_string_as_number", int(v.strip()), 1.5))
                    elif re.fullmatch(r"-?\d+\.\d+", v.strip()):
                        new.append(("numeric_string_as_number", float(v.strip()), 1.5))
                    elif v.strip().lower() in ("true", "false"):
                        new.append(("string_as_bool", v.strip().lower() == "true", 1.0))
                    if st == "string":
                        new.append(("scalar_wrapped_in_list", [v], 0.4))
                elif isinstance(v, list):
                    new.append(("list_as_string", json.dumps(v, ensure_ascii=False), 1.2))
                    if all(isinstance(x, (str, int, float)) for x in v):
                        new.append(("list_as_csv", ", ".join(str(x) for x in v), 1.0))
                    if len(v) == 1:
                        new.append(("list_unwrapped", copy.deepcopy(v[0]), 1.5))
                elif isinstance(v, Mapping):
                    new.append(("dict_as_string", json.dumps(v, ensure_ascii=False), 1.0))
                for kind, nv, w in new:
                    out.append(_Cand(kind, _replace(self.base, i, _with_arg(call, p, nv)), weight=w))
        return out

    # -- incorrect_output_format ----------------------------------------------------------------
    def output_format(self) -> list[_Cand]:
        rng, base = self.rng, self.base
        out = []
        if not base:
            return out
        for style in ("json", "json_pretty", "tool_call", "python"):
            s = format_calls(base, style)
            if len(s) > 12:
                cut = rng.randint(max(4, int(len(s) * 0.4)), len(s) - 3)
                out.append(_Cand("truncated_" + style, text=s[:cut], weight=1.0))
        js = format_calls(base, "json")
        out.append(_Cand("missing_closing_bracket", text=js[:-1], weight=1.0))
        out.append(_Cand("missing_closing_bracket", text=js[:-2] + "]", weight=0.6))
        out.append(_Cand("fenced_missing_bracket", text="```json\n" + js[:-1] + "\n```", weight=1.0))
        if style_supports(base, "python"):
            py = format_calls(base, "python")
            out.append(_Cand("python_unbalanced", text=py[:-2] + "]", weight=1.0))
            out.append(_Cand("python_unbalanced", text=py[:-1], weight=0.6))
            pos = ", ".join(f"{c.name}({', '.join(py_literal(v) for v in c.arguments.values())})" for c in base)
            if any(c.arguments for c in base):
                out.append(_Cand("positional_arguments", text=f"[{pos}]", weight=0.8))
            def unquoted(c: ToolCall) -> str:
                args = ", ".join(f"{k}={v if isinstance(v, str) else py_literal(v)}" for k, v in c.arguments.items())
                return f"{c.name}({args})"

            unq = ", ".join(unquoted(c) for c in base)
            if any(isinstance(v, str) and (" " in v or "," in v) for c in base for v in c.arguments.values()):
                out.append(_Cand("unquoted_string_arguments", text=f"[{unq}]", weight=0.8))
        c0 = base[0]
        args_str = json.dumps(c0.arguments, ensure_ascii=False)
        broken_args = json.dumps([{"name": c0.name, "arguments": args_str[:-1]}], ensure_ascii=False)
        out.append(_Cand("arguments_string_broken", text=broken_args, weight=0.6))
        out.append(_Cand("tool_call_unterminated",
                         text="<tool_call>\n" + json.dumps(c0.to_dict(), ensure_ascii=False)[:-2], weight=0.6))
        # arguments as `k=v` (how models write them in prose; also keeps names renamable by obfuscation)
        described = ", ".join(f"{k}={py_literal(v)}" for k, v in c0.arguments.items())
        spec = self.tool(c0.name)
        req = (spec.required if spec else []) or list(c0.arguments)
        nl = [
            f"I'll use the {c0.name} function" + (f" with {described}." if described else "."),
            f"To do this, I would call {c0.name}" + (f" with {described}." if described else ".")
            + " Let me know if you want me to proceed.",
            f"Sure! I can help with that. I need to call {c0.name} for this request.",
        ]
        if req:
            nl.append(f"Could you please provide the {req[0].replace('_', ' ')}? "
                      "I need it before I can help with this request.")
        for t in nl:
            out.append(_Cand("natural_language", text=t, weight=0.5))
        return out


_BUILDERS = {
    "incorrect_parameter_value": _Builder.param_value,
    "incorrect_function_name": _Builder.function_name,
    "incorrect_number_of_functions": _Builder.number_of_functions,
    "missing_required_parameter": _Builder.missing_required,
    "missing_optional_parameter": _Builder.missing_optional,
    "unexpected_parameter": _Builder.unexpected,
    "incorrect_parameter_type": _Builder.param_type,
    "incorrect_output_format": _Builder.output_format,
}
