"""Mutator and chosen-side variants, checked against the real verifier on real BFCL rows."""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

import pytest

from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.mutate import (
    Mutation,
    chosen_variants,
    mutate,
    mutate_all,
    resolve_reference,
)
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import ERROR_TYPES, Example, ToolCall, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.surface import STYLES, detect_style, format_calls
from fcrm_ray.toolcall.verify import verify


def load_bfcl(data_dir: Path, category: str, limit: int | None = None) -> list[Example]:
    """A tiny local BFCL reader (question + possible answer), so this test does not depend on sources.py."""
    answers = {}
    with open(data_dir / "possible_answer" / f"BFCL_v4_{category}.json") as f:
        for line in f:
            row = json.loads(line)
            answers[row["id"]] = row["ground_truth"]
    out = []
    with open(data_dir / f"BFCL_v4_{category}.json") as f:
        for line in f:
            q = json.loads(line)
            out.append(Example(q["id"], normalize_tools(q["function"]), q["question"][0],
                               reference_from_bfcl(answers[q["id"]]), "bfcl", category))
            if limit and len(out) >= limit:
                break
    return out


@pytest.fixture(scope="module")
def sample(bfcl_dir) -> list[Example]:
    """A few rows of every single-turn category (parallel, multiple-tool and live rows included)."""
    rows = []
    for cat in BFCL_SINGLE_TURN:
        rows += load_bfcl(bfcl_dir, cat, limit=6)
    return rows


def by_id(rows, ex_id):
    return next(r for r in rows if r.id == ex_id)


def test_format_calls_every_style_parses_back():
    calls = [ToolCall("math.hypot", {"x": 4, "y": 5.5, "flag": True, "tags": ["a", "b"], "opt": None}),
             ToolCall("get_weather", {"city": "Boston, MA", "extra": {"k": "v's"}})]
    for style in STYLES:
        use = calls[:1] if style == "json_object" else calls
        text = format_calls(use, style)
        parsed = parse_calls(text)
        assert parsed.calls is not None, (style, text, parsed.error)
        assert [c.to_dict() for c in parsed.calls] == [c.to_dict() for c in use], style
        assert detect_style(text) == style
    # a name Python syntax cannot express falls back to JSON instead of producing garbage
    odd = [ToolCall("my-tool", {"a": 1})]
    assert json.loads(format_calls(odd, "python")) == [{"name": "my-tool", "arguments": {"a": 1}}]
    with pytest.raises(ValueError):
        format_calls(calls, "yaml")


def test_resolve_reference_handles_nested_answers(sample):
    ex = by_id(sample, "live_multiple_0-0-0")  # new_preferences is a nested {key: [alternatives]} dict
    canon = resolve_reference(ex.reference)
    prefs = canon[0].arguments["new_preferences"]
    assert prefs["size"] == "large" and not any(isinstance(v, list) for v in prefs.values())
    assert verify(canon, ex.reference, ex.tools).correct


@pytest.mark.parametrize("error_type", ERROR_TYPES)
def test_each_error_type_yields_verified_mutations(sample, error_type):
    got = 0
    for i, ex in enumerate(sample):
        muts = mutate(ex, error_type, random.Random(i), n=2)
        assert len(muts) <= 2
        for m in muts:
            assert isinstance(m, Mutation) and m.error_type == error_type and m.kind
            v = verify(m.text, ex.reference, ex.tools)  # independent re-check of the guarantee
            assert not v.correct and v.error_type == error_type, (ex.id, m.kind, m.text, v)
            parsed = parse_calls(m.text).calls
            if error_type == "incorrect_output_format":
                assert m.calls is None
            else:  # the structured calls are exactly what the text says
                assert parsed is not None and [c.to_dict() for c in parsed] == [c.to_dict() for c in m.calls]
        assert len({m.text for m in muts}) == len(muts)
        got += bool(muts)
    # every type but missing_optional is admitted by nearly every row; missing_optional needs an
    # optional parameter the reference requires, which a good share of rows have
    floor = 0.15 if error_type == "missing_optional_parameter" else 0.9
    assert got >= floor * len(sample), f"{error_type}: only {got}/{len(sample)} rows"


def test_mutations_are_deterministic_given_the_seed(sample):
    rows = sample[::4]
    a = [[(m.text, m.kind) for m in mutate_all(ex, random.Random(7), per_type=2)] for ex in rows]
    b = [[(m.text, m.kind) for m in mutate_all(ex, random.Random(7), per_type=2)] for ex in rows]
    c = [[(m.text, m.kind) for m in mutate_all(ex, random.Random(8), per_type=2)] for ex in rows]
    assert a == b
    assert a != c
    first = [chosen_variants(ex, random.Random(3), 3) for ex in rows]
    assert first == [chosen_variants(ex, random.Random(3), 3) for ex in rows]


def test_mutate_all_per_type_dict_and_inadmissible_types(sample):
    ex = by_id(sample, "simple_python_1")  # math.factorial(number=5): no optional parameter at all
    assert mutate(ex, "missing_optional_parameter", random.Random(0), n=3) == []
    muts = mutate_all(ex, random.Random(0), per_type={"incorrect_parameter_value": 3, "incorrect_function_name": 1})
    counts = collections.Counter(m.error_type for m in muts)
    assert counts["incorrect_parameter_value"] == 3 and counts["incorrect_function_name"] == 1
    assert set(counts) == {"incorrect_parameter_value", "incorrect_function_name"}
    with pytest.raises(ValueError):
        mutate(ex, "made_up_error", random.Random(0))


def test_value_errors_come_from_the_conversation(sample):
    """The dominant flavour is a plausible wrong value from the user's own words or a sibling
    call, not noise: over seeds, parallel_0 must produce the other call's artist/duration."""
    ex = by_id(sample, "parallel_0")  # Taylor Swift 20 min, Maroon 5 15 min
    kinds = collections.Counter()
    for seed in range(30):
        for m in mutate(ex, "incorrect_parameter_value", random.Random(seed), n=1):
            kinds[m.kind] += 1
    assert kinds["wrong_span"] + kinds["swapped_across_calls"] >= 8, kinds
    # some mutations only recombine values the user gave (the other call's artist or duration)
    ref_pairs = {("Taylor Swift", 20), ("Maroon 5", 15)}
    recombined = 0
    for seed in range(30):
        for m in mutate(ex, "incorrect_parameter_value", random.Random(seed), n=1):
            pairs = {(c.arguments.get("artist"), c.arguments.get("duration")) for c in m.calls}
            if pairs != ref_pairs and all(a in ("Taylor Swift", "Maroon 5") and d in (20, 15) for a, d in pairs):
                recombined += 1
    assert recombined >= 5


def test_function_name_errors_prefer_siblings(sample):
    ex = by_id(sample, "multiple_0")  # a catalog with sibling tools
    kinds = collections.Counter()
    for seed in range(40):
        for m in mutate(ex, "incorrect_function_name", random.Random(seed)):
            kinds["sibling" if m.kind == "sibling_tool" else "hallucinated"] += 1
            names = {t.name for t in ex.tools}
            if m.kind == "sibling_tool":
                assert all(c.name in names for c in m.calls)
    assert kinds["sibling"] > kinds["hallucinated"] > 0, kinds
    solo = by_id(sample, "simple_python_1")  # one tool: only hallucinated names are possible
    muts = [m for s in range(10) for m in mutate(solo, "incorrect_function_name", random.Random(s))]
    assert muts and all(m.kind.startswith("hallucinated_") for m in muts)


def test_number_of_functions_on_parallel_reference(sample):
    ex = by_id(sample, "parallel_0")
    lens = collections.Counter()
    for seed in range(20):
        for m in mutate(ex, "incorrect_number_of_functions", random.Random(seed)):
            lens[len(m.calls)] += 1
    assert lens[1] > 0 and sum(v for k, v in lens.items() if k > 2) > 0, lens  # dropped and extra calls


def test_output_surfaces_vary_on_both_sides(sample):
    rej, cho = collections.Counter(), collections.Counter()
    for i, ex in enumerate(sample):
        for m in mutate_all(ex, random.Random(i)):
            if m.calls is not None:
                rej[detect_style(m.text)] += 1
        for t in chosen_variants(ex, random.Random(i), 3):
            cho[detect_style(t)] += 1
    for side in (rej, cho):
        assert len(side) >= 4, side
        assert max(side.values()) < 0.5 * sum(side.values()), side


def test_chosen_variants_verify_and_differ(sample):
    for i, ex in enumerate(sample):
        vs = chosen_variants(ex, random.Random(i), 4)
        assert vs, ex.id
        assert len(set(vs)) == len(vs)
        for t in vs:
            v = verify(t, ex.reference, ex.tools)
            assert v.correct, (ex.id, t, v)
        assert len(vs) > 1, ex.id  # at least the surface can always vary
    # simple_python_0 allows unit="units" or no unit: both contents show up
    ex = by_id(sample, "simple_python_0")
    contents = {json.dumps(sorted(c.arguments), sort_keys=True)
                for t in chosen_variants(ex, random.Random(0), 8) for c in parse_calls(t).calls}
    assert len(contents) >= 2, contents


@pytest.mark.slow
def test_coverage_over_all_bfcl_single_turn(bfcl_dir, capsys):
    """What fraction of BFCL single-turn rows admit each error type (printed for the report)."""
    rows = [ex for cat in BFCL_SINGLE_TURN for ex in load_bfcl(bfcl_dir, cat)]
    hits = collections.Counter()
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for ex in rows:
        rng = random.Random(ex.id)
        for et in ERROR_TYPES:
            muts = mutate(ex, et, rng, n=1)
            if muts:
                hits[et] += 1
                kinds[et][muts[0].kind] += 1
    with capsys.disabled():
        print(f"\nmutation coverage over {len(rows)} BFCL single-turn rows")
        for et in ERROR_TYPES:
            top = ", ".join(f"{k} {v}" for k, v in kinds[et].most_common(6))
            print(f"  {et:30s} {hits[et] / len(rows):6.1%}   {top}")
    # ~10% of rows call a tool without required parameters; ~45% have an optional one the
    # reference insists on; every other type must be producible for nearly every row
    floors = {"missing_required_parameter": 0.85, "missing_optional_parameter": 0.3}
    for et in ERROR_TYPES:
        assert hits[et] >= floors.get(et, 0.95) * len(rows), (et, hits[et], len(rows))


def test_odd_inputs_do_not_break_the_mutator():
    """A reference tool missing from the catalog, non-identifier names, an empty reference."""
    tools = normalize_tools([{"name": "book-room", "description": "Book a room.", "parameters": {
        "type": "object", "properties": {"guest-name": {"type": "string"}, "nights": {"type": "integer"},
                                         "class": {"type": "string", "enum": ["basic", "suite"]}},
        "required": ["guest-name", "nights"]}}])
    conv = [{"role": "user", "content": "Book a suite for Ada Lovelace, 3 nights, or maybe 4."}]
    ex = Example("odd", tools, conv, reference_from_bfcl([{"book-room": {"guest-name": ["Ada Lovelace"], "nights": [3],
                                                                         "class": ["suite"]}}]))
    muts = mutate_all(ex, random.Random(0), per_type=2)
    assert {m.error_type for m in muts} >= {"incorrect_parameter_value", "incorrect_function_name",
                                             "missing_required_parameter", "incorrect_output_format"}
    for m in muts:
        v = verify(m.text, ex.reference, ex.tools)
        assert not v.correct and v.error_type == m.error_type
        if m.calls is not None:  # Python syntax cannot write `book-room(...)`: JSON surfaces only
            assert detect_style(m.text) != "python"
    assert any(c.arguments.get("nights") == 4 for m in muts if m.calls for c in m.calls)  # the other number
    orphan = Example("orphan", [], conv, reference_from_bfcl([{"ghost_tool": {"x": [1]}}]))
    assert all(m.error_type in ERROR_TYPES for m in mutate_all(orphan, random.Random(0)))
    empty = Example("none", tools, conv, [])
    assert mutate_all(empty, random.Random(0)) == [] and chosen_variants(empty, random.Random(0), 3) == []
