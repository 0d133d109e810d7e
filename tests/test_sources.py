import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fcrm_ray.data.pairs import read_pairs
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.data.sources import (
    ReadStats,
    read_bfcl,
    read_examples,
    sniff_format,
    tools_from_system_prompt,
    write_examples,
    xlam_tool,
)
from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.schema import SchemaError
from fcrm_ray.toolcall.verify import verify


def _lines(path: Path, rows) -> Path:
    with open(path, "w") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def _raw_lines(path: Path) -> int:
    return sum(1 for line in open(path) if line.strip())


# ------------------------------------------------------------------------------------- BFCL


def test_read_bfcl_real_counts_match_files(bfcl_dir):
    q, st = Quarantine(), ReadStats()
    exs = list(read_bfcl(quarantine=q, stats=st))
    st.check()
    for cat in BFCL_SINGLE_TURN:  # the shipped data is clean: every question row is kept
        assert st.by_category[cat] == _raw_lines(bfcl_dir / f"BFCL_v4_{cat}.json") > 0
    assert st.rows == sum(_raw_lines(bfcl_dir / f"BFCL_v4_{c}.json") for c in BFCL_SINGLE_TURN)
    assert st.kept == len(exs) and st.kept + st.quarantined == st.rows
    assert len({e.id for e in exs}) == len(exs)
    for e in exs:
        assert e.source == "bfcl" and e.category in BFCL_SINGLE_TURN
        assert e.conversation[-1]["role"] == "user"
        names = {t.name for t in e.tools}
        assert e.reference and all(r.name in names for r in e.reference)
        assert all(t.parameters["type"] == "object" for t in e.tools)  # BFCL's "dict" translated
    # live categories carry system prompts in some rows; they are kept in the conversation
    assert any(m["role"] == "system" for e in exs if e.category.startswith("live_") for m in e.conversation)


def _bfcl_fixture(tmp_path: Path) -> Path:
    d = tmp_path / "bfcl"
    (d / "possible_answer").mkdir(parents=True)
    tool = {"name": "get_weather", "description": "w", "parameters": {"type": "dict", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}
    good = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Weather in Paris?"}]], "function": [tool]}
    no_answer = {"id": "simple_python_1", "question": [[{"role": "user", "content": "Rome?"}]], "function": [tool]}
    tools_not_list = {"id": "simple_python_2", "question": [[{"role": "user", "content": "x"}]], "function": {"name": "x"}}
    missing_question = {"id": "simple_python_3", "function": [tool]}
    bad_answer_name = {"id": "simple_python_4", "question": [[{"role": "user", "content": "y"}]], "function": [tool]}
    _lines(d / "BFCL_v4_simple_python.json", [good, no_answer, tools_not_list, missing_question, bad_answer_name,
                                              '{"id": "simple_python_5", "question": [[{"ro'])
    _lines(d / "possible_answer" / "BFCL_v4_simple_python.json", [
        {"id": "simple_python_0", "ground_truth": [{"get_weather": {"city": ["Paris"], "unit": ["", "celsius"]}}]},
        {"id": "simple_python_2", "ground_truth": [{"get_weather": {"city": ["x"]}}]},
        {"id": "simple_python_3", "ground_truth": [{"get_weather": {"city": ["x"]}}]},
        {"id": "simple_python_4", "ground_truth": [{"no_such_tool": {"a": [1]}}]},
        "{truncated",
    ])
    return d


def test_read_bfcl_quarantines_corrupted_rows(tmp_path):
    d = _bfcl_fixture(tmp_path)
    st = ReadStats()
    with Quarantine(tmp_path / "q.jsonl") as q:
        exs = list(read_bfcl(["simple_python"], data_dir=d, quarantine=q, stats=st))
    st.check()
    assert [e.id for e in exs] == ["simple_python_0"]
    assert exs[0].reference[0].may_omit("unit")
    assert st.rows == 6 and st.kept == 1 and st.quarantined == 5 and st.aux_quarantined == 1
    assert q.total == st.quarantined + st.aux_quarantined
    assert st.reasons["missing answer"] == 1  # simple_python_1 (and the truncated line, see below)
    assert st.reasons["bad field"] == 1  # function is not a list
    assert st.reasons["missing field"] == 1  # no question
    assert st.reasons["unknown function"] == 1
    assert st.reasons["malformed row"] == 1  # truncated JSON line
    recs = [json.loads(line) for line in open(tmp_path / "q.jsonl")]
    assert len(recs) == 6 and all(r["reason"] for r in recs)
    assert any("`function` must be a list" in r["reason"] for r in recs)


def test_read_bfcl_without_quarantine_raises_naming_the_problem(tmp_path):
    d = _bfcl_fixture(tmp_path)
    with pytest.raises(SchemaError, match="malformed answer row"):
        list(read_bfcl(["simple_python"], data_dir=d))
    with pytest.raises(FileNotFoundError, match="nope"):
        list(read_bfcl(["nope"], data_dir=d, quarantine=Quarantine()))


# ------------------------------------------------------------------------------------- xLAM


XLAM_TOOLS = [
    {"name": "search_products", "description": "Search a catalog.", "parameters": {
        "query": {"description": "Search text.", "type": "str", "default": ""},
        "limit": {"description": "Max results.", "type": "int, optional", "default": 10},
        "tags": {"description": "Tags.", "type": "List[str], optional"},
        "filters": {"description": "Filters.", "type": "Dict[str, Any]"},
        "sort": {"description": "Sort key.", "type": "str, default='price'"},
    }},
    {"name": "get_price", "description": "Price.", "parameters": {"sku": {"description": "SKU", "type": "str"}}},
]


def test_xlam_tool_conversion():
    t = xlam_tool(XLAM_TOOLS[0])
    assert t.parameters["type"] == "object"
    assert t.required == ["query", "filters", "sort"]
    p = t.properties
    assert p["query"]["type"] == "string" and p["limit"]["type"] == "integer" and p["limit"]["default"] == 10
    assert p["tags"] == {"type": "array", "items": {"type": "string"}, "description": "Tags."}
    assert p["filters"]["type"] == "object"
    assert p["sort"]["type"] == "string"  # "default=..." is a flag, not part of the type


def test_read_xlam_and_quarantine(tmp_path):
    good = {"id": 7, "query": "Find 3 red shoes", "tools": json.dumps(XLAM_TOOLS),
            "answers": json.dumps([{"name": "search_products", "arguments": {"query": "red shoes", "limit": 3, "filters": {}, "sort": "price"}}])}
    bad_answers = dict(good, id=8, answers="[{bad json")
    no_query = {"tools": json.dumps(XLAM_TOOLS), "answers": "[]"}
    tools_not_list = dict(good, id=9, tools=json.dumps({"not": "a list"}))
    f = _lines(tmp_path / "xlam.jsonl", [good, bad_answers, no_query, tools_not_list, '{"query": "trunc'])
    st, q = ReadStats(), Quarantine()
    exs = list(read_examples(f, "xlam", q, stats=st))
    st.check()
    assert st.items == 5 and st.kept == 1 and st.quarantined == 4 and q.total == 4
    e = exs[0]
    assert e.id == "xlam-7" and e.source == "xlam" and e.conversation == [{"role": "user", "content": "Find 3 red shoes"}]
    (r,) = e.reference
    assert r.params["limit"] == [3] and r.params["query"] == ["red shoes"]
    assert "tags" not in r.params  # optional without a default: absent in the reference
    # same rows as Parquet (JSON strings in columns) read the same, sniffed as xlam
    pq.write_table(pa.Table.from_pylist([good]), tmp_path / "x.parquet")
    assert sniff_format(good) == "xlam"
    again = list(read_examples(tmp_path / "x.parquet"))
    assert again[0].to_dict() == e.to_dict()


# ------------------------------------------------------------------------------------- OpenAI


OAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_read_openai_messages_one_example_per_call_turn(tmp_path):
    row = {"id": "c1", "tools": OAI_TOOLS, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and then Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "assistant", "content": "Done."},
    ]}
    no_calls = {"tools": OAI_TOOLS, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad_call = {"id": "c3", "tools": OAI_TOOLS, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]}]}
    tools_not_list = {"tools": "nope", "messages": []}
    missing_messages = {"tools": OAI_TOOLS}
    f = _lines(tmp_path / "chat.jsonl", [row, no_calls, bad_call, tools_not_list, missing_messages])
    st, q = ReadStats(), Quarantine()
    exs = list(read_examples(f, "openai", q, stats=st))
    st.check()
    assert [e.id for e in exs] == ["c1-2", "c1-4"]
    assert len(exs[0].conversation) == 2 and len(exs[1].conversation) == 4
    assert exs[0].reference[0].params == {"city": ["Paris"]} and exs[1].reference[0].params == {"city": ["Rome"]}
    assert st.rows == 5 and st.items == 6 and st.quarantined == 4
    assert q.counts["no call turn"] == 1 and q.counts["bad call"] == 1


# ------------------------------------------------------------------------------------- ShareGPT


def test_read_sharegpt_hermes_and_glaive(tmp_path):
    tool = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    hermes = {"conversations": [
        {"from": "system", "value": f"You are a function calling AI. <tools> {json.dumps([tool])} </tools>"},
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "gpt", "value": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'},
        {"from": "tool", "value": "rain"},
        {"from": "gpt", "value": "It rains."},
    ]}
    glaive = {"id": "g", "conversations": [
        {"from": "system", "value": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n" + json.dumps(tool, indent=2)},
        {"from": "human", "value": "Oslo weather"},
        {"from": "gpt", "value": "<functioncall> {\"name\": \"get_weather\", \"arguments\": '{\"city\": \"Oslo\"}'}"},
    ]}
    field_tools = {"tools": json.dumps([tool]), "conversations": [
        {"from": "human", "value": "Bergen?"}, {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Bergen"}}'}]}
    no_tools = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "<tool_call>{\"name\": \"x\"}</tool_call>"}]}
    broken = {"tools": [tool], "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "<tool_call>{\"name\": \"get_weather\", \"argu"}]}
    f = _lines(tmp_path / "sg.jsonl", [hermes, glaive, field_tools, no_tools, broken])
    st, q = ReadStats(), Quarantine()
    exs = list(read_examples(f, "sharegpt", q, stats=st))
    st.check()
    assert len(exs) == 3 and st.quarantined == 2
    assert all(e.reference[0].name == "get_weather" for e in exs)
    assert [e.reference[0].params["city"] for e in exs] == [["Oslo"], ["Oslo"], ["Bergen"]]
    assert exs[0].conversation == [{"role": "user", "content": "Weather in Oslo?"}]  # tool-only system prompt dropped
    assert q.counts["no tools"] == 1 and q.counts["unparseable call turn"] == 1
    assert tools_from_system_prompt("no tools here") == []


# ------------------------------------------------------------------------------------- dispatch


def test_read_examples_canonical_roundtrip_json_array_and_uri(tmp_path):
    exs = list(read_bfcl(["live_parallel"]))
    arr = tmp_path / "ex.json"
    arr.write_text(json.dumps([e.to_dict() for e in exs]))
    back = list(read_examples(arr))
    assert [b.to_dict() for b in back] == [e.to_dict() for e in exs]
    # a filesystem URI: file:// through pyarrow, memory:// through fsspec
    assert len(list(read_examples(arr.absolute().as_uri()))) == len(exs)
    import fsspec

    mem = fsspec.filesystem("memory")
    with mem.open("/fcrm_test/ex.jsonl", "w") as fh:
        for e in exs:
            fh.write(json.dumps(e.to_dict()) + "\n")
    assert [b.id for b in read_examples("memory://fcrm_test/ex.jsonl")] == [e.id for e in exs]
    # a directory of files
    d = tmp_path / "dir"
    d.mkdir()
    _lines(d / "a.jsonl", [e.to_dict() for e in exs[:3]])
    _lines(d / "b.jsonl", [e.to_dict() for e in exs[3:]])
    assert len(list(read_examples(d, fmt="canonical"))) == len(exs)


def test_read_examples_errors(tmp_path):
    pair_like = _lines(tmp_path / "p.jsonl", [{"chosen_output": "a", "rejected_output": "b", "tools": [], "conversation": []}])
    with pytest.raises(SchemaError, match="read_pairs"):
        list(read_examples(pair_like))
    with pytest.raises(SchemaError, match="unknown format"):
        list(read_examples(pair_like, fmt="csv"))
    with pytest.raises(FileNotFoundError):
        list(read_examples(tmp_path / "missing.jsonl"))
    odd = _lines(tmp_path / "o.jsonl", [{"a": 1}])
    with pytest.raises(SchemaError, match="cannot detect format"):
        list(read_examples(odd))


def test_fc_rewardbench_shaped_row_loads_with_read_pairs(tmp_path):
    row = {
        "tools": [{"name": "get_weather", "description": "w", "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "conversation": [{"role": "user", "content": "Weather in Paris?"}],
        "chosen_output": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        "rejected_output": '[get_weather(city="London")]',
        "error_type": "incorrect_parameter_value",
        "model_name": "some/model-7b",
    }
    pq.write_table(pa.Table.from_pylist([row, row | {"rejected_output": "[get_weather()]", "error_type": "missing_required_parameter"}]),
                   tmp_path / "fcrb.parquet")
    _lines(tmp_path / "fcrb_bad.jsonl", [row, {"tools": [], "conversation": []}])  # second row lacks outputs
    rows = read_pairs(tmp_path / "fcrb.parquet")
    assert len(rows) == 2
    r = rows[0]
    assert r["generator"] == "some/model-7b" and r["error_type"] == "incorrect_parameter_value"
    assert json.loads(r["chosen_output"]) == row["chosen_output"] and json.loads(r["tools"])[0]["name"] == "get_weather"
    assert r["source"] == "fc_rewardbench" and r["split"] == "test" and r["id"] != rows[1]["id"]
    q = Quarantine()
    ok = read_pairs(tmp_path / "fcrb_bad.jsonl", quarantine=q)
    assert len(ok) == 1 and q.total == 1


def test_write_examples_parquet_and_jsonl_roundtrip(tmp_path):
    exs = list(read_bfcl(["live_parallel_multiple", "multiple"]))[:40]
    for name in ("ex.parquet", "ex.jsonl"):
        p = write_examples(exs, tmp_path / name)
        st = ReadStats()
        back = list(read_examples(p, stats=st))
        assert st.kept == len(exs) and [b.to_dict() for b in back] == [e.to_dict() for e in exs]
    with pytest.raises(ValueError, match="parquet or .jsonl"):
        write_examples(exs, tmp_path / "ex.csv")


def test_convert_row_public_per_row_api():
    from fcrm_ray.data.sources import convert_row

    row = {"query": "q", "tools": json.dumps(XLAM_TOOLS[1:]), "answers": json.dumps([{"name": "get_price", "arguments": {"sku": "A1"}}])}
    good, bad = convert_row(row)
    assert [e.reference[0].params for e in good] == [{"sku": ["A1"]}] and bad == []
    good, bad = convert_row({"messages": [{"role": "user", "content": "x"}], "tools": OAI_TOOLS})
    assert good == [] and bad[0][1].startswith("no call turn")
    good, bad = convert_row("not a row")
    assert good == [] and bad[0][1].startswith("cannot detect format")
    with pytest.raises(SchemaError, match="unknown format"):
        convert_row(row, fmt="csv")


def test_read_bfcl_executable_categories_from_unused_datasets(bfcl_dir):
    """BFCL's retired executable categories (Python; real 2024 outputs exist for them) are read
    from the wheel's unused_datasets/ with their call-string ground truth decoded by our parser:
    a ground truth that is not one keyword call (`p=1/6`, positional arguments) is quarantined."""
    from fcrm_ray.paths import BFCL_EXEC

    q, st = Quarantine(), ReadStats()
    exs = {e.id: e for e in read_bfcl(BFCL_EXEC, quarantine=q, stats=st)}
    st.check()
    base = bfcl_dir / "unused_datasets" / "question"
    assert st.rows == sum(_raw_lines(base / f"BFCL_v4_{c}.json") for c in BFCL_EXEC)
    assert st.quarantined == q.total > 0 and all("is not one Python call" in k for k in q.counts)
    assert st.kept == len(exs) >= 230
    par = exs["exec_parallel_0"]
    assert [(r.name, r.params) for r in par.reference] == [
        ("calc_binomial_probability", {"n": [10], "k": [3], "p": [0.3]}),
        ("calc_binomial_probability", {"n": [15], "k": [5], "p": [0.3]}),
        ("calc_binomial_probability", {"n": [20], "k": [7], "p": [0.3]})]
    # an optional parameter the ground truth leaves out may be absent or its default
    sort = exs["exec_parallel_39"].reference
    assert sort[0].params["reverse"] == ["", False] and sort[1].params["reverse"] == [True]
    ok = verify("sort_array(array=[5, 2, 9, 1, 7], reverse=False); sort_array(array=[3, 8, 6, 4], reverse=True); "
                "sort_array(array=[10, 20, 30, 40, 50]); sort_array(array=[100, 200, 300, 400, 500], reverse=True)",
                sort, exs["exec_parallel_39"].tools)
    assert ok.correct, ok
    dropped = verify("sort_array(array=[5, 2, 9, 1, 7])", sort, exs["exec_parallel_39"].tools)
    assert dropped.error_type == "incorrect_number_of_functions"


def test_reference_from_exec_rejects_what_is_not_one_call():
    from fcrm_ray.data.sources import reference_from_exec
    from fcrm_ray.toolcall.schema import normalize_tools

    tools = normalize_tools([{"name": "f", "parameters": {"type": "dict", "properties": {
        "a": {"type": "integer"}, "b": {"type": "integer", "default": 2}}, "required": ["a"]}}])
    assert reference_from_exec(["f(a=1)"], tools)[0].params == {"a": [1], "b": ["", 2]}
    assert reference_from_exec(["f(a=1, b=2)"], tools)[0].params == {"a": [1], "b": [2, ""]}
    for bad in (["f(a=1/6)"], ["f(1)"], ["f(a=1); f(a=2)"], ["not a call"]):
        with pytest.raises(SchemaError, match="is not one Python call"):
            reference_from_exec(bad, tools)
