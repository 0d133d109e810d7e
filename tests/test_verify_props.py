"""Properties: parse_calls/verify never raise on arbitrary text or JSON; every real BFCL
single-turn reference (its first acceptable calls, in every output surface) verifies as correct."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import ERROR_TYPES, ToolCall, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.verify import canonical_key, first_acceptable_calls, verify, verify_calls

TOOLS = normalize_tools([{"name": "f", "parameters": {"type": "dict", "properties": {
    "a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "array", "items": {"type": "float"}}},
    "required": ["a"]}}])
REF = reference_from_bfcl([{"f": {"a": [1], "b": ["x", ""], "c": [[1.0, 2.0], ""]}}])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
# Call-shaped JSON: names and argument dicts drawn from a small vocabulary so matches happen.
call_objs = st.fixed_dictionaries({
    "name": st.sampled_from(["f", "g", "", 3]),
    "arguments": st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4) | json_values,
})
fragments = st.sampled_from(["[", "]", "{", "}", "(", ")", "f(", "a=", "1", "'x'", '"x"', ",", "<tool_call>",
                             "</tool_call>", "```", "json", "\n", "[TOOL_CALLS]", "<|python_tag|>", ":", "name",
                             "arguments", "__import__('os')", "lambda: 0", "**", "<think>", "</think>"])


def _assert_verdict(v):
    assert isinstance(v.correct, bool)
    assert (v.error_type is None) == v.correct
    assert v.correct or v.error_type in ERROR_TYPES
    assert isinstance(v.detail, str) and v.detail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    r = parse_calls(text)
    assert r.calls is None or all(isinstance(c, ToolCall) for c in r.calls)
    assert (r.calls is None) == (r.error is not None)
    _assert_verdict(verify(text, REF, TOOLS))


@settings(max_examples=300, deadline=None)
@given(st.lists(fragments, max_size=30))
def test_call_like_fragments_never_raise(parts):
    text = "".join(parts)
    parse_calls(text)
    _assert_verdict(verify(text, REF, TOOLS))


@settings(max_examples=300, deadline=None)
@given(json_values | st.lists(call_objs, max_size=3) | call_objs)
def test_arbitrary_json_never_raises(value):
    for candidate in (value, json.dumps(value, allow_nan=True)):
        r = parse_calls(candidate)
        assert (r.calls is None) == (r.error is not None)
        _assert_verdict(verify(candidate, REF, TOOLS))
        canonical_key(candidate)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4))
def test_verify_calls_structured_never_raises(args):
    _assert_verdict(verify_calls([ToolCall("f", args)], REF, TOOLS))


# --- real BFCL rows ------------------------------------------------------------------------------


def _load_bfcl(bfcl_dir):
    rows = []
    for cat in BFCL_SINGLE_TURN:
        questions = {}
        with open(bfcl_dir / f"BFCL_v4_{cat}.json", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    q = json.loads(line)
                    questions[q["id"]] = q
        with open(bfcl_dir / "possible_answer" / f"BFCL_v4_{cat}.json", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    a = json.loads(line)
                    rows.append((cat, a["id"], questions[a["id"]]["function"], a["ground_truth"]))
    return rows


@pytest.fixture(scope="module")
def bfcl_rows(bfcl_dir):
    return _load_bfcl(bfcl_dir)


def _as_python(calls):
    def lit(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {lit(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(lit(x) for x in v) + "]"
        return repr(v)

    return "[" + ", ".join(f"{c.name}(" + ", ".join(f"{k}={lit(v)}" for k, v in c.arguments.items()) + ")"
                           for c in calls) + "]"


def test_every_bfcl_reference_verifies_correct(bfcl_rows):
    cats = {c for c, *_ in bfcl_rows}
    assert cats == set(BFCL_SINGLE_TURN)
    assert len(bfcl_rows) > 2000
    rng = random.Random(0)
    failures = []
    for cat, rid, functions, truth in bfcl_rows:
        tools, ref = normalize_tools(functions), reference_from_bfcl(truth)
        calls = first_acceptable_calls(ref)
        shuffled = list(reversed(calls))
        surfaces = [
            json.dumps([c.to_dict() for c in calls]),
            json.dumps([{c.name: c.arguments} for c in shuffled]),  # BFCL style, other order
            "\n".join(f"<tool_call>\n{json.dumps(c.to_dict())}\n</tool_call>" for c in calls),
        ]
        if all(c.name.replace(".", "_").isidentifier() and all(k.isidentifier() for k in c.arguments) for c in calls):
            surfaces.append(_as_python(calls))
        for text in surfaces:
            v = verify(text, ref, tools)
            if not v.correct:
                failures.append((rid, text[:200], v))
        # a random other acceptable value per parameter is correct too
        alt = []
        for r in ref:
            args = {}
            for p, vals in r.params.items():
                choice = rng.choice(vals) if vals else ""
                if choice != "":
                    args[p] = first_acceptable_calls([{r.name: {p: [choice]}}])[0].arguments[p]
            alt.append(ToolCall(r.name, args))
        v = verify_calls(alt, ref, tools)
        if not v.correct:
            failures.append((rid, "alt", v))
    assert not failures, failures[:5]


def test_bfcl_perturbations_are_wrong(bfcl_rows):
    """Dropping a call or renaming a function is never accepted on real rows."""
    for cat, rid, functions, truth in bfcl_rows[::7]:
        tools, ref = normalize_tools(functions), reference_from_bfcl(truth)
        calls = first_acceptable_calls(ref)
        v = verify_calls(calls[:-1], ref, tools)
        assert v.error_type == "incorrect_number_of_functions", (rid, v)
        renamed = [ToolCall(calls[0].name + "_v2", calls[0].arguments)] + calls[1:]
        v = verify_calls(renamed, ref, tools)
        assert v.error_type == "incorrect_function_name", (rid, v)

