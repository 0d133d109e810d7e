"""Composite parallel examples (pure): two single-call tasks in one user turn, verifier-consistent."""

import random

from fcrm_ray.data.compose import CATEGORY, compose_pair, compose_parallel
from fcrm_ray.toolcall.mutate import mutate
from fcrm_ray.toolcall.schema import Example
from fcrm_ray.toolcall.verify import verify


def _ex(i, fn, q, tools=None, system=None):
    tools = tools or [{"name": fn, "description": f"{fn} tool", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}]
    conv = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}]
    return Example.from_dict({"id": f"e{i}", "tools": tools, "conversation": conv,
                              "reference": [{fn: {"x": [i]}}], "category": "live_simple"})


def test_compose_pair_joins_tools_turns_and_references():
    a, b = _ex(1, "f", "Run f with 1.", system="Be brief."), _ex(2, "g", "Run g with 2.")
    c = compose_pair(a, b, random.Random(0))
    assert c.category == CATEGORY and c.id == "compose:e1+e2"
    assert [t.name for t in c.tools] == ["f", "g"]
    assert c.conversation[0] == {"role": "system", "content": "Be brief."}
    user = c.conversation[-1]["content"]
    assert user.startswith("Run f with 1.") and ("run g with 2." in user or "Run g with 2." in user)
    # both calls, in either order, are correct; one of them alone is a wrong call count
    assert verify('[{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {"x": 2}}]', c.reference, c.tools).correct
    assert verify('[{"name": "g", "arguments": {"x": 2}}, {"name": "f", "arguments": {"x": 1}}]', c.reference, c.tools).correct
    v = verify('[{"name": "f", "arguments": {"x": 1}}]', c.reference, c.tools)
    assert not v.correct and v.error_type == "incorrect_number_of_functions"


def test_mutations_of_a_composite_include_a_dropped_call():
    c = compose_pair(_ex(1, "f", "Run f with 1."), _ex(2, "g", "Run g with 2."), random.Random(0))
    muts = mutate(c, "incorrect_number_of_functions", random.Random(0), 6)
    assert muts and all(not verify(m.text, c.reference, c.tools).correct for m in muts)
    assert any(m.kind == "dropped_call" for m in muts)


def test_pairs_that_do_not_combine():
    same = compose_pair(_ex(1, "f", "a"), _ex(2, "f", "b"), random.Random(0))
    assert same is None  # the same function twice
    clash = _ex(3, "g", "c", tools=[{"name": "f", "description": "another f", "parameters": {"type": "object", "properties": {}}},
                                    {"name": "g", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}])
    assert compose_pair(_ex(1, "f", "a"), clash, random.Random(0)) is None  # `f` means two things
    two_calls = Example.from_dict({"id": "t", "tools": [], "conversation": [{"role": "user", "content": "x"}],
                                   "reference": [{"f": {}}, {"g": {}}]})
    assert compose_pair(two_calls, _ex(2, "g", "b"), random.Random(0)) is None


def test_compose_parallel_is_deterministic_disjoint_and_capped():
    exs = [_ex(i, f"f{i}", f"Request {i}.") for i in range(20)]
    a = compose_parallel(exs, 6, seed=0)
    assert [c.id for c in a] == [c.id for c in compose_parallel(exs, 6, seed=0)]
    assert len(a) == 6 and [c.id for c in a] != [c.id for c in compose_parallel(exs, 6, seed=1)]
    used = [part for c in a for part in c.id.removeprefix("compose:").split("+")]
    assert len(used) == len(set(used)) == 12
    assert len(compose_parallel(exs, 100, seed=0)) == 10 and compose_parallel(exs, 0, seed=0) == []
