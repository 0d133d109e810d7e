"""Drawing candidates by how often real models make each kind of mistake (`GROUP_WEIGHTS`) and
keeping those the verifier finds wrong with exactly the asked error type; the chosen side's
alternative acceptable forms."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from fcrm_ray.toolcall.mutate.candidates import _BUILDERS, _Builder, _Cand
from fcrm_ray.toolcall.mutate.reference import resolve_reference
from fcrm_ray.toolcall.schema import ERROR_TYPES, Example, ToolCall
from fcrm_ray.toolcall.surface import format_calls


@dataclass(frozen=True)
class Mutation:
    """A rejected output: `text` as a model would emit it, the parsed `calls` (None when the text
    does not parse, i.e. format errors), the verified `error_type`, and the `kind` of rewrite."""

    text: str
    calls: list[ToolCall] | None
    error_type: str
    kind: str


# Sampling weights. Candidates are grouped (a group is a family of rewrites: all reformatted
# entities, all hallucinated names, ...); a group is drawn by its weight, then a candidate of the
# group by its own weight. So a family with many candidates (wrong spans exist for every
# parameter) is not favoured just for having many, and the mix follows how often real models
# make each kind of mistake. Groups not listed weigh 1.0.
_GROUP_OF_PREFIX = {
    "hallucinated_": "hallucinated_name", "date_": "reformatted", "location_": "reformatted",
    "time_": "reformatted", "entity_alias": "reformatted", "near_synonym": "reformatted",
    "abbreviated": "reformatted", "digit_off_by_one": "reformatted", "list_element_": "list_edit",
    "list_reordered": "list_edit", "nested_": "nested_value", "truncated_": "truncated",
}
GROUP_WEIGHTS: dict[str, float] = {
    # incorrect_parameter_value
    "wrong_span": 3.0, "wrong_span_word": 0.6, "span_boundary": 1.5, "span_truncated": 1.0,
    "overlong_span": 0.8, "unresolved_relative_date": 1.5,
    "plural_singular": 0.4, "swapped_params": 1.2, "swapped_across_calls": 2.0, "enum_other": 1.5,
    "default_value": 1.2, "off_by_one": 1.0, "unit_scaled": 1.2, "rounded": 0.6, "sign_dropped": 0.8,
    "reformatted": 2.5, "boolean_flipped": 1.2, "list_edit": 1.0, "nested_value": 1.0,
    # incorrect_function_name: siblings first, as in the benchmark
    "sibling_tool": 3.0, "hallucinated_name": 1.3,
    # incorrect_number_of_functions
    "dropped_call": 2.0, "merged_calls": 1.2, "duplicate_call": 0.5, "repeated_call_other_value": 1.0,
    "split_call": 0.8, "extra_sibling_call": 1.5,
    # missing_required_parameter
    "dropped_required": 2.0, "renamed_required": 0.8,
    # unexpected_parameter
    "schema_param_not_expected": 2.0, "sibling_param": 1.0, "common_param": 1.0, "renamed_optional": 1.0,
    # incorrect_parameter_type
    "number_as_string": 2.0, "int_as_float": 1.2, "bool_as_string": 1.5, "bool_as_int": 0.3,
    "numeric_string_as_number": 1.5, "string_as_bool": 0.8, "list_as_string": 1.0, "list_as_csv": 0.8,
    "list_unwrapped": 1.5, "dict_as_string": 0.8, "scalar_wrapped_in_list": 0.4,
    # incorrect_output_format
    "truncated": 1.5, "missing_closing_bracket": 1.0, "fenced_missing_bracket": 0.8,
    "python_unbalanced": 1.0, "positional_arguments": 0.8, "unquoted_string_arguments": 0.8,
    "arguments_string_broken": 0.5, "tool_call_unterminated": 0.6, "natural_language": 1.0,
}


def group_of(kind: str) -> str:
    for prefix, group in _GROUP_OF_PREFIX.items():
        if kind.startswith(prefix):
            return group
    return kind


def _draw(cands: list[_Cand], rng: random.Random) -> Iterable[_Cand]:
    """Weighted draws without replacement: first a group, then a candidate of that group."""
    by_group: dict[str, list[_Cand]] = {}
    for c in cands:
        by_group.setdefault(group_of(c.kind), []).append(c)
    while by_group:
        groups = list(by_group)
        g = rng.choices(groups, weights=[GROUP_WEIGHTS.get(x, 1.0) for x in groups])[0]
        pool = by_group[g]
        i = rng.choices(range(len(pool)), weights=[max(c.weight, 1e-6) for c in pool])[0]
        yield pool.pop(i)
        if not pool:
            del by_group[g]


def _shuffle_args(calls: Sequence[ToolCall], rng: random.Random, p: float) -> list[ToolCall]:
    """Argument order as models vary it (mostly schema order, sometimes not); same on both sides."""
    out = []
    for c in calls:
        items = list(c.arguments.items())
        if len(items) > 1 and rng.random() < p:
            rng.shuffle(items)
        out.append(ToolCall(c.name, dict(items)))
    return out


ARG_SHUFFLE_P = 0.2


def _verify(text: str, example: Example):
    from fcrm_ray.toolcall.verify import verify  # sibling module of the pure core

    return verify(text, example.reference, example.tools)


def mutate(example: Example, error_type: str, rng: random.Random, n: int = 1,
           max_checks: int | None = None) -> list[Mutation]:
    """Up to `n` distinct rejected outputs wrong with exactly `error_type` (verifier-checked).
    Fewer when the example does not admit the error (no optional parameters, one-tool catalog
    for some flavours, ...). Deterministic given the state of `rng`."""
    if error_type not in _BUILDERS:
        raise ValueError(f"unknown error_type {error_type!r}; expected one of {ERROR_TYPES}")
    if n <= 0 or not example.reference:
        return []
    b = _Builder(example, rng)
    cands = _BUILDERS[error_type](b)
    budget = max_checks if max_checks is not None else 6 * n + 20
    out: list[Mutation] = []
    seen: set[str] = set()
    for cand in _draw(cands, rng):
        if len(out) >= n or budget <= 0:
            break
        if cand.calls is not None:
            calls = _shuffle_args(cand.calls, rng, ARG_SHUFFLE_P)
            key = json.dumps([c.to_dict() for c in calls], sort_keys=True, default=str)
            if key in seen:
                continue
            texts = [format_calls(calls, None, rng)]
            if not texts[0].lstrip().startswith("["):
                texts.append(format_calls(calls, "json"))  # fallback if a surface did not parse
        else:
            calls, key, texts = None, cand.text or "", [cand.text or ""]
            if key in seen:
                continue
        for text in texts:
            budget -= 1
            v = _verify(text, example)
            if not v.correct and v.error_type == error_type:
                seen.add(key)
                out.append(Mutation(text=text, calls=calls, error_type=error_type, kind=cand.kind))
                break
            if v.error_type != "incorrect_output_format" or calls is None:
                break
    return out


def mutate_all(example: Example, rng: random.Random, per_type: int | Mapping[str, int] = 1) -> list[Mutation]:
    """Mutations of every error type (`per_type` each, or a dict error_type -> count)."""
    out: list[Mutation] = []
    for et in ERROR_TYPES:
        n = per_type.get(et, 0) if isinstance(per_type, Mapping) else per_type
        if n:
            out.extend(mutate(example, et, rng, n))
    return out


def chosen_variants(example: Example, rng: random.Random, n: int) -> list[str]:
    """Up to `n` distinct texts the verifier accepts: other acceptable values, optional
    parameters present or absent, other argument/call order, other output surfaces. Forms with
    new content come before mere re-formattings of a form already taken."""
    if n <= 0 or not example.reference:
        return []
    out: list[str] = []
    seen_text: set[str] = set()
    seen_key: set[str] = set()
    later: list[str] = []
    for _ in range(4 * n + 8):
        if len(out) >= n:
            break
        # same mix of canonical / other acceptable forms as the rejected side's starting point, so
        # e.g. an omitted optional parameter is no cue for either side
        calls = resolve_reference(example.reference, rng if rng.random() < 0.5 else None)
        calls = _shuffle_args(calls, rng, ARG_SHUFFLE_P)
        if len(calls) > 1 and rng.random() < 0.3:
            calls = list(calls)
            rng.shuffle(calls)
        text = format_calls(calls, None, rng)
        if text in seen_text:
            continue
        seen_text.add(text)
        if not _verify(text, example).correct:
            continue
        key = json.dumps(sorted(json.dumps(c.to_dict(), sort_keys=True, default=str) for c in calls))
        if key in seen_key:
            later.append(text)
            continue
        seen_key.add(key)
        out.append(text)
    for t in later:
        if len(out) >= n:
            break
        out.append(t)
    return out
