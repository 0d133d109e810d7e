"""The pair-synthesis stages, each alone: obfuscate, render, judge (parse + verify + emit), dedup."""

from __future__ import annotations

import json

import pytest

from fcrm_ray.data.pairs import PAIR_COLUMNS, normalize_pair_row
from fcrm_ray.generate import stages as S
from fcrm_ray.toolcall.schema import Example, ToolCall, calls_to_text, normalize_tools, reference_from_bfcl

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "dict", "required": ["city"],
                         "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}}}},
         {"name": "get_time", "description": "Local time",
          "parameters": {"type": "dict", "required": ["tz"], "properties": {"tz": {"type": "string"}}}}]


def make_example(i: int = 0) -> Example:
    return Example(id=f"ex-{i}", tools=normalize_tools(TOOLS),
                   conversation=[{"role": "user", "content": f"Weather in Paris {i}?"}],
                   reference=reference_from_bfcl([{"get_weather": {"city": ["Paris"], "unit": ["C", ""]}}]),
                   source="bfcl", category="simple_python")


def gen_row(ex: Example, texts: list[str], generator="g", unit=0, split="train", obf=False, tag=None):
    row = S.work_row(ex, shard=3, split=split, obfuscated=obf)
    row.update(generator=generator, unit=unit, gen_error="",
               candidates=json.dumps([{"text": t, "tag": tag or generator} for t in texts]))
    return row


CORRECT = calls_to_text([ToolCall("get_weather", {"city": "Paris", "unit": "C"})])
WRONG_NAME = calls_to_text([ToolCall("get_time", {"tz": "Paris"})])
WRONG_VALUE = calls_to_text([ToolCall("get_weather", {"city": "London"})])
WRONG_VALUE_REORDERED = json.dumps([{"arguments": {"city": "London"}, "name": "get_weather"}])


# --- obfuscate -------------------------------------------------------------------------------

def test_obfuscation_fraction_is_deterministic_per_example():
    ids = [f"ex-{i}" for i in range(2000)]
    picked = [S.should_obfuscate(i, 0.3, seed=1) for i in ids]
    assert picked == [S.should_obfuscate(i, 0.3, seed=1) for i in ids]
    assert 0.25 < sum(picked) / len(ids) < 0.35
    assert not any(S.should_obfuscate(i, 0.0, 1) for i in ids) and all(S.should_obfuscate(i, 1.0, 1) for i in ids)


def test_obfuscate_stage_renames_tools_and_reference_together():
    ex = make_example()
    obf, flag = S.obfuscate_stage(ex, fraction=1.0, seed=0)
    assert flag and obf.id == ex.id
    names = {t.name for t in obf.tools}
    assert "get_weather" not in names and obf.reference[0].name in names
    again, _ = S.obfuscate_stage(ex, fraction=1.0, seed=0)
    assert again.to_dict() == obf.to_dict()
    same, flag0 = S.obfuscate_stage(ex, fraction=0.0, seed=0)
    assert not flag0 and same is ex
    # the obfuscated reference is correct against the obfuscated catalog: judging works in that space
    from fcrm_ray.toolcall.verify import verify

    canonical = calls_to_text(r.canonical_call() for r in obf.reference)
    assert verify(canonical, obf.reference, obf.tools).correct


def test_work_row_round_trips_example():
    ex = make_example(5)
    row = S.work_row(ex, shard=2, split="test", obfuscated=True)
    assert set(row) == set(S.WORK_COLUMNS)
    assert S.row_example(row).to_dict() == ex.to_dict() and row["shard"] == 2 and row["obfuscated"] is True


# --- render ----------------------------------------------------------------------------------

class FakeTemplateTokenizer:
    chat_template = "x"

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=False, tokenize=True, **kw):
        self.calls.append(dict(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                               tokenize=tokenize, **kw))
        return "PROMPT:" + ",".join(t["function"]["name"] for t in tools)


def test_render_uses_chat_template_with_row_tools_and_generation_prompt():
    tok = FakeTemplateTokenizer()
    rows = S.render_stage([gen_row(make_example(0), []), gen_row(make_example(1), [])], tok, {"enable_thinking": False})
    assert rows[0]["prompt"] == "PROMPT:get_weather,get_time"
    call = tok.calls[0]
    assert call["add_generation_prompt"] is True and call["tokenize"] is False and call["enable_thinking"] is False
    assert call["tools"][0]["type"] == "function"


def test_render_plain_fallback_without_chat_template():
    class Plain:
        chat_template = None

    p = S.render_generation_prompt(Plain(), make_example().tools, make_example().conversation)
    assert "get_weather" in p and "Weather in Paris" in p and p.endswith("assistant: ")


# --- judge + emit ----------------------------------------------------------------------------

def test_judge_keeps_only_wrong_candidates_with_error_types():
    ex = make_example()
    pairs, tallies = S.judge_stage([gen_row(ex, [CORRECT, WRONG_NAME, WRONG_VALUE, "I cannot help"])], gen_index=1)
    assert tallies == [{"shard": 3, "generator": "g", "units": 1, "candidates": 4, "correct": 1, "gen_errors": 0,
                        "error": ""}]
    assert [p["error_type"] for p in pairs] == ["incorrect_function_name", "incorrect_parameter_value",
                                                "incorrect_output_format"]
    for p in pairs:
        assert set(PAIR_COLUMNS) <= set(p) and set(S.RANK_COLUMNS) <= set(p)
        assert normalize_pair_row(p)["id"] == p["id"]  # a valid pair row as written
        assert json.loads(p["chosen_output"]) == [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}]
        assert p["gen_index"] == 1 and p["example_id"] == "ex-0" and p["split"] == "train" and p["shard"] == 3


def test_judge_counts_generator_errors_and_tags_pairs():
    row = gen_row(make_example(), [WRONG_NAME], generator="mutation", tag="mutation:swap_name")
    bad = gen_row(make_example(1), [])
    bad["gen_error"] = "RuntimeError: boom"
    pairs, tallies = S.judge_stage([row, bad], gen_index=0)
    assert pairs[0]["generator"] == "mutation:swap_name"
    assert tallies[1]["gen_errors"] == 1 and tallies[1]["candidates"] == 0 and "boom" in tallies[1]["error"]


def test_pair_ids_are_deterministic():
    rows = [gen_row(make_example(), [WRONG_NAME, WRONG_VALUE])]
    a, _ = S.judge_stage(rows, 0)
    b, _ = S.judge_stage(rows, 0)
    assert [p["id"] for p in a] == [p["id"] for p in b] and len({p["id"] for p in a}) == 2


def test_chosen_variants_are_correct_forms():
    from fcrm_ray.toolcall.verify import verify

    ex = make_example()
    forms = {S.chosen_output(ex, variants=3, pair_seed=s) for s in range(20)}
    assert all(verify(f, ex.reference, ex.tools).correct for f in forms)
    assert S.chosen_output(ex, 0, 1) == S.chosen_output(ex, 0, 2)


# --- dedup -----------------------------------------------------------------------------------

def judged(rows_spec):
    """[(gen_index, generator, texts)] on one example -> judged pairs."""
    ex = make_example()
    out = []
    for gi, gen, texts in rows_spec:
        p, _ = S.judge_stage([gen_row(ex, texts, generator=gen)], gi)
        out += p
    return out


def test_dedup_exact_on_normalised_call_first_generator_wins():
    pairs = judged([(1, "b", [WRONG_VALUE_REORDERED]), (0, "a", [WRONG_VALUE, WRONG_NAME])])
    kept, dropped = S.dedup_stage(list(reversed(pairs)))
    assert dropped == {("duplicate", 1): 1}
    assert sorted(p["generator"] for p in kept) == ["a", "a"]
    kept2, dropped2 = S.dedup_stage(pairs, exact=False)
    assert len(kept2) == 3 and not dropped2


def test_dedup_caps_per_example_and_error_type():
    texts = [calls_to_text([ToolCall("get_weather", {"city": c})]) for c in ("Rome", "Oslo", "Lima")]
    pairs = judged([(0, "a", texts + [WRONG_NAME])])
    kept, dropped = S.dedup_stage(pairs, max_per_error_type=2)
    assert sorted(p["error_type"] for p in kept).count("incorrect_parameter_value") == 2
    assert dropped[("cap_per_error_type", 0)] == 1
    kept, dropped = S.dedup_stage(pairs, max_per_example=1)
    assert len(kept) == 1 and dropped[("cap_per_example", 0)] == 3


def test_dedup_drops_replayed_rows_and_is_order_independent():
    pairs = judged([(0, "a", [WRONG_VALUE, WRONG_NAME])])
    kept, dropped = S.dedup_stage(pairs + [dict(pairs[0])])
    assert len(kept) == 2 and dropped == {("replayed", 0): 1}
    assert [p["id"] for p in S.dedup_stage(pairs[::-1], max_per_example=1)[0]] == \
        [p["id"] for p in S.dedup_stage(pairs, max_per_example=1)[0]]


@pytest.mark.parametrize("text", ["", "   ", "not json at all", "[{]"])
def test_unparseable_candidates_dedup_on_raw_text(text):
    assert S.dedup_key(text).startswith("raw:")
    assert S.dedup_key(WRONG_VALUE) == S.dedup_key(WRONG_VALUE_REORDERED)


def test_caps_take_generators_round_robin():
    texts = [calls_to_text([ToolCall("get_weather", {"city": c})]) for c in ("Rome", "Oslo", "Lima", "Kyiv")]
    pairs = judged([(0, "mut", texts), (1, "model", ["garbage out"])])
    kept, dropped = S.dedup_stage(pairs, max_per_example=2)
    assert sorted(p["generator"] for p in kept) == ["model", "mut"]
    assert dropped == {("cap_per_example", 0): 3}
