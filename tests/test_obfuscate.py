"""Obfuscation: consistent renaming, no leakage, round trips, verdicts unchanged."""

from __future__ import annotations

import json
import random
import re

import pytest

from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.mutate import chosen_variants, mutate_all
from fcrm_ray.toolcall.surface import detect_style, format_calls
from fcrm_ray.toolcall.obfuscate import (
    ObfuscationMap,
    deobfuscate_calls,
    deobfuscate_output,
    deobfuscate_reference,
    deobfuscate_tools,
    obfuscate_example,
    obfuscate_output,
)
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import Example, ToolCall, ToolSpec
from fcrm_ray.toolcall.verify import verify

from fcrm_ray.toolcall.schema import ReferenceCall, normalize_tools, reference_from_bfcl

def load_bfcl(data_dir, category: str, limit: int) -> list[Example]:
    """First rows of one BFCL category with their possible answers (tiny local reader)."""
    with open(data_dir / "possible_answer" / f"BFCL_v4_{category}.json") as f:
        answers = {r["id"]: r["ground_truth"] for r in map(json.loads, f)}
    out = []
    with open(data_dir / f"BFCL_v4_{category}.json") as f:
        for line in f:
            q = json.loads(line)
            out.append(Example(q["id"], normalize_tools(q["function"]), q["question"][0],
                               reference_from_bfcl(answers[q["id"]]), "bfcl", category))
            if len(out) >= limit:
                break
    return out


IDENT = re.compile(r"(fn_[a-z0-9]{5}|p_[a-z0-9]{4})\Z")


@pytest.fixture(scope="module")
def sample(bfcl_dir) -> list[Example]:
    rows = []
    for cat in BFCL_SINGLE_TURN:
        rows += load_bfcl(bfcl_dir, cat, limit=4)
    return rows


def _catalog_key(tools):
    """Catalog as comparable data, ignoring tool/property/required order (which is shuffled)."""
    out = {}
    for t in tools:
        params = dict(t.parameters)
        params["required"] = sorted(params.get("required") or [])
        out[t.name] = (t.description, json.dumps(params, sort_keys=True))
    return out


def test_names_are_random_identifiers_without_leakage(sample):
    for i, ex in enumerate(sample):
        obf, m = obfuscate_example(ex, seed=i)
        assert all(IDENT.match(t.name) for t in obf.tools)
        assert all(IDENT.match(p) for t in obf.tools for p in t.properties)
        assert all(IDENT.match(p) for t in obf.tools for p in t.required)
        assert all(IDENT.match(r.name) and all(IDENT.match(p) for p in r.params) for r in obf.reference)
        assert len(set(m.functions.values())) == len(m.functions) and len(set(m.params.values())) == len(m.params)
        blob = json.dumps([t.to_dict() for t in obf.tools]) + json.dumps(obf.conversation)
        for name in m.functions:  # no original function name survives anywhere, prose included
            if re.search(r"[._\d]|[a-z][A-Z]", name):
                assert not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", blob), (ex.id, name)
        # the reference still points into the catalog
        names = {t.name for t in obf.tools}
        for r in obf.reference:
            assert r.name in names
            tool = obf.tool(r.name)
            assert set(r.params) <= set(tool.properties)


def test_schema_order_is_shuffled_and_seeded(sample):
    ex = next(e for e in sample if len(e.tools) >= 3)
    a, ma = obfuscate_example(ex, seed=1)
    b, mb = obfuscate_example(ex, seed=1)
    assert a.to_dict() == b.to_dict() and ma.to_dict() == mb.to_dict()
    orders = set()
    for seed in range(8):
        obf, m = obfuscate_example(ex, seed=seed)
        inv = m.invert()
        orders.add(tuple(inv.functions[t.name] for t in obf.tools))
    assert len(orders) > 1  # tool order changes with the seed
    c, mc = obfuscate_example(ex, seed=2)
    assert mc.functions != ma.functions


def test_round_trip_catalog_reference_and_calls(sample):
    for i, ex in enumerate(sample):
        obf, m = obfuscate_example(ex, seed=100 + i)
        assert _catalog_key(deobfuscate_tools(obf.tools, m)) == _catalog_key(ex.tools)
        assert deobfuscate_reference(obf.reference, m) == list(ex.reference)
        for text in chosen_variants(ex, random.Random(i), 2):
            calls = parse_calls(text).calls
            otext = obfuscate_output(text, m)
            ocalls = parse_calls(otext).calls
            assert ocalls is not None and detect_style(otext) == detect_style(text)
            assert [c.to_dict() for c in deobfuscate_calls(ocalls, m)] == [c.to_dict() for c in calls]
            back = parse_calls(deobfuscate_output(otext, m)).calls
            assert [c.to_dict() for c in back] == [c.to_dict() for c in calls]


def test_verdicts_are_invariant_under_obfuscation(sample):
    checked = 0
    for i, ex in enumerate(sample):
        obf, m = obfuscate_example(ex, seed=i)
        for text in chosen_variants(ex, random.Random(i), 2):
            otext = obfuscate_output(text, m)
            assert verify(otext, obf.reference, obf.tools).correct, (ex.id, otext)
        for mut in mutate_all(ex, random.Random(i)):
            otext = obfuscate_output(mut.text, m)
            v = verify(otext, obf.reference, obf.tools)
            assert not v.correct and v.error_type == mut.error_type, (ex.id, mut.kind, mut.text, otext, v)
            checked += 1
    assert checked > 5 * len(sample)


def test_hallucinated_names_are_obfuscated_too():
    params = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
              "required": ["city"]}
    ex = Example("x", [ToolSpec("get_weather", "Weather for a city.", params)],
        [{"role": "user", "content": "Weather in Paris? Use get_weather please."}],
        [ReferenceCall("get_weather", {"city": ["Paris"], "unit": [""]})])
    obf, m = obfuscate_example(ex, seed=0)
    content = obf.conversation[0]["content"]
    assert "get_weather" not in content and m.functions["get_weather"] in content
    text = format_calls([ToolCall("fetch_weather", {"city": "Paris", "country": "FR"})], "python")
    out = obfuscate_output(text, m)
    assert "fetch_weather" not in out and "country" not in out and "Paris" in out
    # stable: the same made-up name maps to the same random name, and back
    assert obfuscate_output(text, m) == out
    assert parse_calls(deobfuscate_output(out, m)).calls == parse_calls(text).calls


def test_broken_outputs_stay_broken_and_are_renamed_in_place():
    m = ObfuscationMap(functions={"get_weather": "fn_abcde"}, params={"city": "p_x1y2", "name": "p_nnnn"}, salt="s")
    broken = [
        '[{"name": "get_weather", "arguments": {"city": "Par',
        "[get_weather(city='Paris', name='x'",
        "I will call get_weather with city set to Paris.",
        '```json\n[{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    ]
    for text in broken:
        assert parse_calls(text).calls is None or text.startswith("I will")
        out = obfuscate_output(text, m)
        assert "get_weather" not in out and "fn_abcde" in out
        assert ("p_x1y2" in out) == ("city" in text and not text.startswith("I will"))
        # the JSON wrapper key "name" is never renamed, even though a parameter is called "name"
        assert '"name":' in out or '"name"' not in text
        assert parse_calls(out).calls is None or text.startswith("I will")
    assert obfuscate_output(broken[1], m) == "[fn_abcde(p_x1y2='Paris', p_nnnn='x'"


def test_map_serialises_and_inverts():
    m = ObfuscationMap(functions={"a.b": "fn_00000"}, params={"x": "p_0000"}, salt="q")
    assert ObfuscationMap.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    inv = m.invert()
    assert inv.functions == {"fn_00000": "a.b"} and inv.params == {"p_0000": "x"}
    back = deobfuscate_calls([ToolCall("fn_00000", {"p_0000": 1, "other": 2})], m)
    assert back == [ToolCall("a.b", {"x": 1, "other": 2})]


def test_conversation_tool_calls_are_renamed_consistently():
    params = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    tools = [ToolSpec("lookup_order", "Find an order.", params)]
    conv = [
        {"role": "user", "content": "Where is order A1? Call lookup_order."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "A1"})}}]},
        {"role": "tool", "name": "lookup_order", "content": "{\"status\": \"shipped\"}"},
        {"role": "user", "content": "And order B2?"},
    ]
    ex = Example("t", tools, conv, [ReferenceCall("lookup_order", {"order_id": ["B2"]})])
    obf, m = obfuscate_example(ex, seed=5)
    fn, p = m.functions["lookup_order"], m.params["order_id"]
    call = obf.conversation[1]["tool_calls"][0]["function"]
    assert call["name"] == fn and json.loads(call["arguments"]) == {p: "A1"}
    assert obf.conversation[2]["name"] == fn
    assert obf.conversation[0]["content"] == f"Where is order A1? Call {fn}."
    assert obf.conversation[3] == conv[3]
    assert conv[1]["tool_calls"][0]["function"]["name"] == "lookup_order"  # the input is not mutated
    assert verify(obfuscate_output('[{"name": "lookup_order", "arguments": {"order_id": "B2"}}]', m),
                  obf.reference, obf.tools).correct


def test_other_surfaces_keep_their_text_or_fall_back_to_json():
    m = ObfuscationMap(functions={"get_weather": "fn_abcde"}, params={"city": "p_x1y2"}, salt="s")
    chatter = 'Sure! Here is the call: [{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    out = obfuscate_output(chatter, m)
    assert out.startswith("Sure! Here is the call:") and "get_weather" not in out
    assert parse_calls(out).calls == [ToolCall("fn_abcde", {"p_x1y2": "Paris"})]
    # a hallucinated name in a surface we do not write is still renamed (via the JSON fallback)
    mistral = '[TOOL_CALLS][{"name": "weather_now", "arguments": {"city": "Paris"}}]'
    got = parse_calls(obfuscate_output(mistral, m)).calls
    assert got is not None and len(got) == 1 and got[0].name.startswith("fn_") and got[0].arguments == {"p_x1y2": "Paris"}
