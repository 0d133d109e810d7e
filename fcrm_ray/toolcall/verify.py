"""The outcome verifier: is a candidate tool call correct for a reference answer, and if not,
which FC-RewardBench error is it?

`verify(candidate, reference, tools) -> Verdict(correct, error_type, detail)`. The candidate is raw
model text (parsed with `parse.parse_calls`), decoded JSON, or a list of `ToolCall`s. The
reference is BFCL's possible-answer form: each parameter maps to a list of acceptable values, and
`""` in that list means the parameter may be left out. The tools give parameter types and which
parameters are required; they only *classify* errors — what is acceptable is the reference's call.

The rules mirror BFCL's AST checker (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`):

1. Output format. Unparseable output -> `incorrect_output_format`. Exception: when the reference
   has no call (BFCL's irrelevance rows), plain prose or an empty output is the correct answer.
2. Number of calls. `len(candidate) != len(reference)` -> `incorrect_number_of_functions`.
3. Calls are matched to reference calls in any order (parallel calls are a set). We look for a
   perfect matching in the bipartite graph "call i satisfies reference j" (augmenting paths; BFCL
   matches greedily, which can miss a matching when one call fits two references). If none
   exists, the verdict reports the error of the cheapest full pairing (fewest problems; a wrong
   function name costs most), so a swapped value is reported as a value error, not a name error.
4. Within one call versus one reference call, every problem is collected; the reported one is the
   first in this precedence (BFCL's order of checks):
     incorrect_function_name     the name differs from the reference's (names compare exactly)
     missing_required_parameter  a parameter the reference needs (no "" in its list) is absent
                                 and the tool schema marks it required
     unexpected_parameter        the call passes a parameter the reference does not list
     incorrect_parameter_type    the value has the wrong JSON type for the schema (see below)
     incorrect_parameter_value   well typed, but matches none of the acceptable values
     missing_optional_parameter  a parameter the reference needs is absent and the schema
                                 marks it optional
   Several failing calls: the failure with the highest precedence, then the lowest reference index.
5. Types (`_type_problem`): JSON Schema types after `schema.normalize_tool` (BFCL's float -> number,
   tuple -> array, dict -> object, any -> untyped). An int is a number (BFCL converts int to
   float); a bool is never an integer/number; a float is not an integer. As in BFCL, a value is
   also well typed if it has the JSON type of one of the reference's acceptable values (BFCL's
   "variable" rule: the answer is authoritative when it disagrees with the schema). Array
   elements are checked against `items` the same way.
6. Values (`values_match`): strings compare after BFCL's `standardize_string` (lowercase; spaces and
   `,./-_*^` removed; `'` read as `"`), numbers by numeric value (5 == 5.0), booleans exactly,
   lists element-wise in order with the same rules, dicts recursively. A dict in the reference is
   usually BFCL's nested possible-answer form `{key: [acceptable values]}` ("" = key may be
   absent); it is also compared as a literal dict, because references built from concrete calls
   (`schema.reference_from_calls`) hold literal dicts whose values may happen to be lists.
   An empty acceptable list (BFCL has two) means "absent or empty list".

Deliberate differences from BFCL (measured in benchmarks/RESULTS_verify.md): the reference wins
where BFCL's own data disagrees with the schema (a parameter the reference allows to omit is not
"missing" even if the schema requires it; a parameter the reference lists is not "unexpected" even
if the schema lacks it), untyped (`any`) parameters accept any JSON type, int elements are accepted
in float arrays, nested lists/dicts are normalised recursively, and parallel calls use an exact
matching instead of BFCL's greedy one.

`canonical_key(calls)` is the order-insensitive, value-normalised identity of a set of calls (for
majority votes and dedup); `first_acceptable_calls(reference)` the calls a reference accepts first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import (
    ReferenceCall,
    ToolCall,
    ToolSpec,
    normalize_tools,
    reference_from_bfcl,
)

# Reported-error precedence, most severe first (see the module docstring, rule 4).
PRECEDENCE: tuple[str, ...] = (
    "incorrect_output_format",
    "incorrect_number_of_functions",
    "incorrect_function_name",
    "missing_required_parameter",
    "unexpected_parameter",
    "incorrect_parameter_type",
    "incorrect_parameter_value",
    "missing_optional_parameter",
)
_RANK = {e: i for i, e in enumerate(PRECEDENCE)}

# Pairing costs used to pick the most informative pairing when no pairing is fully correct.
_NAME_MISMATCH_COST = 1000  # a different function explains less than any parameter problem


@dataclass(frozen=True)
class Verdict:
    """`correct` with `error_type=None`, or not correct with one of `schema.ERROR_TYPES`."""

    correct: bool
    error_type: str | None
    detail: str


@dataclass(frozen=True)
class Issue:
    """One problem of one call against one reference call."""

    error_type: str
    detail: str


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------


def verify(candidate: Any, reference: Any, tools: Any) -> Verdict:
    """Verdict for a candidate (raw text, decoded JSON, or `ToolCall`s) against a reference
    (`list[ReferenceCall]` or BFCL ground truth) and a catalog (`ToolSpec`s or raw tool dicts).

    Never raises on the candidate. A malformed reference or catalog is the caller's bug and raises
    `schema.SchemaError` (`fcrm verify` quarantines such rows before calling this)."""
    reference = _as_reference(reference)
    tools = _as_tools(tools)
    parsed = parse_calls(candidate, tools)
    if parsed.calls is None:
        if not reference and parsed.format in ("text", "empty"):
            # No call expected (BFCL irrelevance) and the output is prose, not a broken call.
            return Verdict(True, None, "no call expected and the output makes none")
        return Verdict(False, "incorrect_output_format", f"cannot parse the output: {parsed.error}")
    return verify_calls(parsed.calls, reference, tools)


def verify_calls(calls: Sequence[ToolCall], reference: Any, tools: Any) -> Verdict:
    """Verdict for already-parsed calls (the mutator and evaluators call this directly)."""
    reference = _as_reference(reference)
    tools = _as_tools(tools)
    calls = list(calls)
    for i, c in enumerate(calls):
        if not isinstance(c, ToolCall) or not isinstance(c.name, str) or not isinstance(c.arguments, Mapping):
            return Verdict(False, "incorrect_output_format", f"call {i} is not a ToolCall with a name and a dict of arguments")

    if len(calls) != len(reference):
        return Verdict(
            False,
            "incorrect_number_of_functions",
            f"expected {len(reference)} call(s) ({_names(r.name for r in reference)}), "
            f"got {len(calls)} ({_names(c.name for c in calls)})",
        )

    catalog: dict[str, ToolSpec] = {}
    for t in tools:
        catalog.setdefault(t.name, t)  # the first tool of a name wins, as in BFCL's lookup
    # issues[i][j]: every problem of call i checked against reference call j ([] = it fits).
    issues = [[check_call(c, r, catalog.get(r.name)) for r in reference] for c in calls]

    if _has_perfect_matching(issues):
        n = len(calls)
        return Verdict(True, None, f"all {n} call(s) match the reference" if n else "no call expected and none made")

    pairing = _cheapest_pairing(issues)
    failures = [(i, j, issues[i][j][0]) for i, j in enumerate(pairing) if issues[i][j]]
    i, j, issue = min(failures, key=lambda f: (_RANK[f[2].error_type], f[1]))
    where = f"call {i} `{calls[i].name}`" if len(calls) == 1 else f"call {i} `{calls[i].name}` (paired with reference call {j})"
    detail = f"{where}: {issue.detail}"
    others = sum(len(issues[a][b]) for a, b, _ in failures) - 1
    if others:
        detail += f" (+{others} other problem(s))"
    return Verdict(False, issue.error_type, detail)


# ----------------------------------------------------------------------------------------------
# One call against one reference call
# ----------------------------------------------------------------------------------------------


def check_call(call: ToolCall, ref: ReferenceCall, tool: ToolSpec | None) -> list[Issue]:
    """All problems of `call` against `ref`, most severe first ([] = the call is acceptable).
    `tool` is the catalog entry of the reference's function (None: no schema, no types)."""
    if call.name != ref.name:
        return [Issue("incorrect_function_name", f"function {call.name!r}, expected {ref.name!r}")]
    props = tool.properties if tool is not None else {}
    required = set(tool.required) if tool is not None else set()
    args = call.arguments
    found: list[Issue] = []
    # An empty acceptable list (two BFCL rows) reads as "absent or empty": BFCL can pass nothing there.
    expected = {p: (alts if alts else ["", []]) for p, alts in ref.params.items()}

    for p, acceptable in expected.items():
        if p in args or "" in acceptable:
            continue
        kind = "missing_required_parameter" if p in required else "missing_optional_parameter"
        found.append(Issue(kind, f"parameter {p!r} is missing ({'required' if p in required else 'optional'} "
                                 f"in the schema; the reference expects {_short(acceptable)})"))

    for p, value in args.items():
        if p not in expected:
            known = "a schema parameter the reference leaves out" if p in props else "not in the tool's schema"
            found.append(Issue("unexpected_parameter", f"unexpected parameter {p!r}={_short(value)} ({known})"))
            continue
        acceptable = expected[p]
        problem = _type_problem(value, props.get(p), acceptable)
        if problem:
            found.append(Issue("incorrect_parameter_type", f"parameter {p!r}: {problem}"))
        elif not any(values_match(value, want) for want in acceptable):
            found.append(Issue("incorrect_parameter_value",
                               f"parameter {p!r}: got {_short(value)}, expected one of {_short(acceptable)}"))

    found.sort(key=lambda x: _RANK[x.error_type])  # stable: ties keep parameter order
    return found


# ----------------------------------------------------------------------------------------------
# Types
# ----------------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded value (bool before int: True is not a number)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


def _is_type(value: Any, expected: str) -> bool:
    got = json_type(value)
    return got == expected or (expected == "number" and got == "integer")


def _type_problem(value: Any, schema: Mapping | None, acceptable: Sequence[Any]) -> str | None:
    """Why `value` has the wrong type for `schema` (None = well typed)."""
    if not isinstance(schema, Mapping):
        return None
    expected = schema.get("type")
    if expected is None:
        return None
    expected_types = expected if isinstance(expected, list) else [expected]
    if not any(_is_type(value, t) for t in expected_types):
        # BFCL's "variable" rule: a type the reference itself uses is acceptable.
        if any(json_type(value) == json_type(a) for a in acceptable if not _is_omit(a)):
            return None
        return f"expected type {'|'.join(map(str, expected_types))}, got {json_type(value)} {_short(value)}"
    items = schema.get("items")
    if "array" in expected_types and isinstance(value, list) and isinstance(items, Mapping):
        item_acceptable = [x for a in acceptable if isinstance(a, list) for x in a]
        for k, item in enumerate(value):
            problem = _type_problem(item, items, item_acceptable)
            if problem:
                return f"element {k}: {problem}"
    return None


def _is_omit(v: Any) -> bool:
    return isinstance(v, str) and v == ""


# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------

_STRIP_RE = re.compile(r"[ \,\.\/\-\_\*\^]")


def standardize_string(s: str) -> str:
    """BFCL's string normalisation: drop spaces and `,./-_*^`, lowercase, `'` -> `"`.
    ("April 1, 2024" == "april 1 2024"; "New York, NY" == "new york ny")."""
    return _STRIP_RE.sub("", s).lower().replace("'", '"')


def values_match(got: Any, want: Any) -> bool:
    """Whether a (well-typed) value equals one acceptable value, with BFCL's normalisations."""
    if isinstance(want, str):
        return isinstance(got, str) and standardize_string(got) == standardize_string(want)
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and got == want
    if isinstance(want, (list, tuple)):
        return (isinstance(got, (list, tuple)) and len(got) == len(want)
                and all(values_match(g, w) for g, w in zip(got, want)))
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and (_dict_matches_alternatives(got, want) or _dict_matches_literal(got, want))
    return got is None and want is None


def _dict_matches_alternatives(got: Mapping, want: Mapping) -> bool:
    """BFCL's nested form: `want` maps each key to a list of acceptable values ("" = may be absent)."""
    if not all(isinstance(v, list) for v in want.values()):
        return False
    for k, v in got.items():
        if k not in want or not any(values_match(v, w) for w in want[k]):
            return False
    return all(k in got or "" in alts for k, alts in want.items())


def _dict_matches_literal(got: Mapping, want: Mapping) -> bool:
    return set(got) == set(want) and all(values_match(got[k], want[k]) for k in want)


# ----------------------------------------------------------------------------------------------
# Pairing calls with reference calls
# ----------------------------------------------------------------------------------------------


def _has_perfect_matching(issues: list[list[list[Issue]]]) -> bool:
    """Kuhn's augmenting paths on the "fits" graph: every call gets its own reference call."""
    n = len(issues)
    owner: list[int | None] = [None] * n  # reference j -> call index

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(n):
            if not issues[i][j] and j not in seen:
                seen.add(j)
                if owner[j] is None or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(augment(i, set()) for i in range(n))


def _pair_cost(problems: list[Issue]) -> int:
    if not problems:
        return 0
    if problems[0].error_type == "incorrect_function_name":
        return _NAME_MISMATCH_COST
    return len(problems)


def _cheapest_pairing(issues: list[list[list[Issue]]]) -> list[int]:
    """pairing[i] = reference index of call i, minimising the total cost. Exact (DP over subsets
    of reference calls) up to 12 calls, greedy beyond; ties go to the lowest indices."""
    n = len(issues)
    cost = [[_pair_cost(issues[i][j]) for j in range(n)] for i in range(n)]
    if n > 12:
        free, pairing = set(range(n)), []
        for i in range(n):
            j = min(free, key=lambda j: (cost[i][j], j))
            free.remove(j)
            pairing.append(j)
        return pairing
    best: dict[int, tuple[int, list[int]]] = {0: (0, [])}  # used-reference mask -> (cost, pairing)
    for i in range(n):
        nxt: dict[int, tuple[int, list[int]]] = {}
        for mask, (c, pairing) in best.items():
            for j in range(n):
                if mask & (1 << j):
                    continue
                cand = (c + cost[i][j], pairing + [j])
                m = mask | (1 << j)
                if m not in nxt or cand < nxt[m]:
                    nxt[m] = cand
        best = nxt
    return best[(1 << n) - 1][1]


# ----------------------------------------------------------------------------------------------
# Keys, reference resolution, input coercion
# ----------------------------------------------------------------------------------------------


def _normalize_value(v: Any) -> Any:
    if isinstance(v, str):
        return standardize_string(v)
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, (list, tuple)):
        return [_normalize_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _normalize_value(x) for k, x in v.items()}
    return v


def canonical_key(calls: Any) -> str:
    """Order-insensitive, value-normalised identity of a set of calls: two outputs the verifier
    cannot tell apart (call order, argument order, 5 vs 5.0, "New York" vs "new york") share a key.
    Accepts `ToolCall`s or anything `parse_calls` reads; unparseable text keys as
    `"unparseable:" + text.strip()`."""
    if not (isinstance(calls, (list, tuple)) and all(isinstance(c, ToolCall) for c in calls)):
        parsed = parse_calls(calls)
        if parsed.calls is None:
            return "unparseable:" + (calls.strip() if isinstance(calls, str) else repr(calls))
        calls = parsed.calls
    keys = sorted(
        json.dumps([c.name, _normalize_value(dict(c.arguments))], sort_keys=True, ensure_ascii=False, default=str)
        for c in calls
    )
    return "[" + ",".join(keys) + "]"


def first_acceptable_calls(reference: Any) -> list[ToolCall]:
    """The calls a reference accepts first (`ReferenceCall.canonical_call`); always verifies as
    correct (tested on all BFCL single-turn rows)."""
    return [ref.canonical_call() for ref in _as_reference(reference)]


def _as_reference(reference: Any) -> list[ReferenceCall]:
    if isinstance(reference, list) and all(isinstance(r, ReferenceCall) for r in reference):
        return reference
    return reference_from_bfcl(reference)


def _as_tools(tools: Any) -> list[ToolSpec]:
    if isinstance(tools, list) and all(isinstance(t, ToolSpec) for t in tools):
        return tools
    return normalize_tools(tools if tools is not None else [])


def _names(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def _short(v: Any, limit: int = 120) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."
