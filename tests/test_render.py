"""The reward-model input renderer: both templates, canonical calls, EOS, the prompt/call split."""

import json
import statistics
import subprocess
import sys

import pytest

from fcrm_ray.toolcall.render import Rendered, has_tool_template, render, tool_line
from fcrm_ray.toolcall.schema import normalize_tool

TOOLS = [
    {"name": "get_weather", "description": "Current weather for a city.",
     "parameters": {"type": "object", "required": ["city"], "properties": {
         "city": {"type": "string", "description": "City name, e.g. Paris"},
         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}}}},
    {"name": "get_time", "description": "Local time.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
]
CONV = [{"role": "user", "content": "What's the weather in Paris in celsius?"}]
CALL_JSON = '[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]'


@pytest.fixture(scope="module")
def qwen_tok(tmp_path_factory):
    from transformers import AutoTokenizer

    from fcrm_ray.models import build_tiny_qwen3_rm

    return AutoTokenizer.from_pretrained(build_tiny_qwen3_rm(tmp_path_factory.mktemp("q") / "rm"))


@pytest.fixture(scope="module")
def bert_tok(tmp_path_factory):
    from transformers import AutoTokenizer

    from fcrm_ray.models import build_tiny_bert_rm

    return AutoTokenizer.from_pretrained(build_tiny_bert_rm(tmp_path_factory.mktemp("b") / "rm"))


# --- plain-text template (encoders) --------------------------------------------------------------

def test_plain_template_layout(bert_tok):
    r = render(bert_tok, TOOLS, CONV, CALL_JSON)
    assert isinstance(r, Rendered) and not has_tool_template(bert_tok)
    assert r.prompt.startswith("[TOOLS] get_weather(city: string; unit?: string {celsius|fahrenheit} = \"celsius\")")
    assert "City name" not in r.prompt  # parameter descriptions are in the call's form, not the catalog
    assert "[USER] What's the weather in Paris in celsius?" in r.prompt
    assert r.prompt.endswith("[CALL]")
    # the call as a filled-in form of its schema; no eos_token on BERT tokenizers
    assert r.completion == (' get_weather\n  city: string = "Paris" - City name, e.g. Paris\n'
                            '  unit?: string {celsius|fahrenheit} = "celsius"')


def test_plain_form_shows_absent_unknown_and_several_calls(bert_tok):
    out = '[{"name": "get_weather", "arguments": {}}, {"name": "get_time", "arguments": {"city": "Oslo"}}, {"name": "nope", "arguments": {"x": 1}}]'
    assert render(bert_tok, TOOLS, CONV, out).completion == (
        ' get_weather\n  city: string = (not given) - City name, e.g. Paris\n'
        '  unit?: string {celsius|fahrenheit} = (not given; default "celsius")\n'
        '[CALL] get_time\n  city: string = "Oslo"\n'
        '[CALL] nope (not in [TOOLS])\n  x = 1')
    assert render(bert_tok, TOOLS, CONV, "[]").completion == " (no call)"


def test_plain_form_drops_descriptions_past_the_length_cap(bert_tok):
    from fcrm_ray.toolcall.render import FORM_MAX_CHARS

    wide = [{"name": "f", "description": "Wide.", "parameters": {"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": f"parameter number {i} " * 10,
                  "enum": [f"v{j}" for j in range(20)]} for i in range(6)}}}]
    one = render(bert_tok, wide, CONV, '[{"name": "f", "arguments": {"p0": "v1"}}]').completion
    many = render(bert_tok, wide, CONV, '[{"name": "f", "arguments": {%s}}]' % ", ".join(f'"p{i}": "v1"' for i in range(6)))
    assert "parameter number 0" in one and "v7|..." in one  # enums listed up to 8 values in the form
    assert "parameter number" not in many.completion and len(many.completion) < FORM_MAX_CHARS
    assert many.completion.count('= "v1"') == 6
    # a second call of the same function carries no descriptions, and adding a call never
    # changes how the calls before it are written
    two = render(bert_tok, TOOLS, CONV, '[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                                       '{"name": "get_weather", "arguments": {"city": "Oslo"}}]').completion
    one = render(bert_tok, TOOLS, CONV, '[{"name": "get_weather", "arguments": {"city": "Paris"}}]').completion
    assert two.startswith(one + "\n[CALL] get_weather\n") and two.count("City name") == 1


@pytest.mark.parametrize("surface", [
    CALL_JSON,
    '{"name": "get_weather", "arguments": {"unit": "celsius", "city": "Paris"}}',
    'get_weather(city="Paris", unit="celsius")',
    '[get_weather(unit="celsius", city="Paris")]',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
    [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}],
])
@pytest.mark.parametrize("which", ["plain", "chat"])
def test_surface_forms_and_argument_order_render_identically(surface, which, bert_tok, qwen_tok):
    tok = bert_tok if which == "plain" else qwen_tok
    assert render(tok, TOOLS, CONV, surface) == render(tok, TOOLS, CONV, CALL_JSON)


def test_arguments_follow_schema_order_then_name(bert_tok):
    out = '[{"name": "get_weather", "arguments": {"zeta": 1, "unit": "celsius", "alpha": 2, "city": "Paris"}}]'
    assert render(bert_tok, TOOLS, CONV, out).completion.endswith(
        '"Paris" - City name, e.g. Paris\n  unit?: string {celsius|fahrenheit} = "celsius"\n'
        '  alpha (not a parameter) = 2\n  zeta (not a parameter) = 1')


def test_unparseable_output_is_rendered_raw(bert_tok, qwen_tok):
    raw = "Sorry, I cannot   help with that."
    assert render(bert_tok, TOOLS, CONV, raw).completion == " (not a parsable call) Sorry, I cannot help with that."
    assert raw in render(qwen_tok, TOOLS, CONV, raw).completion


def test_long_unparseable_output_is_cut_in_the_plain_form(bert_tok):
    from fcrm_ray.toolcall.render import UNPARSED_CHARS

    raw = "I would call the tool like this, " + "and then explain why " * 200
    completion = render(bert_tok, TOOLS, CONV, raw).completion
    assert completion.startswith(" (not a parsable call) I would call the tool")
    assert completion.endswith(" ...") and len(completion) < UNPARSED_CHARS + 40


def test_prompt_does_not_depend_on_the_candidate(bert_tok, qwen_tok):
    for tok in (bert_tok, qwen_tok):
        a = render(tok, TOOLS, CONV, CALL_JSON)
        b = render(tok, TOOLS, CONV, '[{"name": "get_time", "arguments": {"city": "Paris"}}]')
        assert a.prompt == b.prompt and a.completion != b.completion


def test_json_string_inputs_equal_objects(bert_tok):
    assert render(bert_tok, json.dumps(TOOLS), json.dumps(CONV), CALL_JSON) == render(bert_tok, TOOLS, CONV, CALL_JSON)
    spec = [normalize_tool(t) for t in TOOLS]
    assert render(bert_tok, spec, CONV, CALL_JSON) == render(bert_tok, TOOLS, CONV, CALL_JSON)


def test_tool_line_marks_required_optional_and_types():
    line = tool_line(normalize_tool({"name": "f", "description": "Do it.", "parameters": {"type": "dict", "properties": {
        "xs": {"type": "array", "items": {"type": "integer"}}, "flag": {"type": "boolean", "default": False}},
        "required": ["xs"]}}))
    assert line == "f(xs: array[integer]; flag?: boolean = false) - Do it."


# --- tool-aware chat template (causal LMs) -------------------------------------------------------

def test_chat_template_split_and_eos(qwen_tok):
    r = render(qwen_tok, TOOLS, CONV, CALL_JSON)
    assert has_tool_template(qwen_tok)
    openai_tools = [normalize_tool(t).to_openai() for t in TOOLS]
    assert r.prompt == qwen_tok.apply_chat_template(CONV, tools=openai_tools, add_generation_prompt=True, tokenize=False)
    assert "<tool_call>" in r.completion and '"city": "Paris"' in r.completion
    assert r.completion.endswith(qwen_tok.eos_token) and r.completion.count(qwen_tok.eos_token) == 1
    assert "get_weather" in r.prompt and "<tools>" in r.prompt


class _OddTemplateTokenizer:
    """A template whose generation prompt is not a prefix of the finished turn."""

    chat_template = "{{ tools }}"
    eos_token = "</s>"

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=False, tokenize=False):
        body = "SYS " + " ".join(m["content"] for m in messages if m["role"] == "user")
        if add_generation_prompt:
            return body + " <gen>"
        last = messages[-1]
        if last["role"] == "assistant":
            call = json.dumps([tc["function"] for tc in last.get("tool_calls", [])])
            return body + " <asst>" + call + "</s>\n"
        return body


def test_split_falls_back_to_common_prefix():
    tok = _OddTemplateTokenizer()
    r = render(tok, TOOLS, CONV, CALL_JSON)
    full = tok.apply_chat_template(CONV + [{"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]}])
    assert r.prompt + r.completion == full.rstrip()
    assert r.prompt.startswith("SYS") and r.completion.endswith("</s>") and "get_weather" in r.completion


# --- budget and purity ---------------------------------------------------------------------------

def test_plain_rendering_is_compact_on_bfcl(bfcl_dir):
    """The compact catalog keeps BFCL's non-live prompts well inside MiniLM's 512 tokens."""
    from transformers import AutoTokenizer

    from fcrm_ray.paths import minilm_dir

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    rendered, raw = [], []
    with open(bfcl_dir / "BFCL_v4_multiple.json") as fh:
        for line in list(fh)[:60]:
            ex = json.loads(line)
            r = render(tok, ex["function"], ex["question"][0], '[{"name": "f", "arguments": {"x": 1}}]')
            rendered.append(len(tok(r.text)["input_ids"]))
            raw.append(len(tok(json.dumps(ex["function"]) + json.dumps(ex["question"][0]))["input_ids"]))
    assert statistics.median(rendered) < 0.75 * statistics.median(raw)
    assert statistics.median(rendered) < 384


def test_render_module_imports_no_torch_or_ray():
    code = ("import sys, fcrm_ray.toolcall.render; "
            "bad = [m for m in ('torch', 'ray', 'transformers') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_plain_form_writes_a_value_the_same_whether_or_not_the_request_spells_it(bert_tok):
    # no literal-copy marks: real answers follow conventions the request does not spell
    # ("GB" for "UK"), so a copied string must not look more right than a converted one
    asked = [{"role": "user", "content": "What's the weather in Paris in celsius?"}]
    other = [{"role": "user", "content": "How warm is it in the French capital?"}]
    for out in (CALL_JSON, '[{"name": "get_weather", "arguments": {"city": "Lyon"}}]'):
        assert render(bert_tok, TOOLS, asked, out).completion == render(bert_tok, TOOLS, other, out).completion
    assert "request" not in render(bert_tok, TOOLS, asked, CALL_JSON).completion


def test_plain_form_spells_out_a_value_kind_its_schema_does_not_name(bert_tok):
    from fcrm_ray.toolcall.render import kind_mark

    assert kind_mark(40.0, {"type": "integer"}) == " (float)" and kind_mark(40, {"type": "integer"}) == ""
    assert kind_mark("10", {"type": "integer"}) == " (string)" and kind_mark([1], {"type": "number"}) == " (array)"
    # a number takes integers and floats; no type, a union or an unknown name: no mark
    assert kind_mark(40, {"type": "number"}) == kind_mark(4.5, {"type": "number"}) == ""
    assert kind_mark("x", {}) == kind_mark("x", {"type": ["string", "null"]}) == kind_mark("x", {"type": "any"}) == ""
    assert kind_mark(True, {"type": "integer"}) == " (boolean)" and kind_mark(1, {"type": "boolean"}) == " (integer)"
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]
    conv = [{"role": "user", "content": "use 40"}]
    assert '  n: integer = "40" (string)' in render(bert_tok, tools, conv, '[{"name": "f", "arguments": {"n": "40"}}]').completion
    assert render(bert_tok, tools, conv, '[{"name": "f", "arguments": {"n": 40}}]').completion == " f\n  n: integer = 40"


def test_plain_form_lists_request_numbers_no_argument_carries(bert_tok):
    from fcrm_ray.toolcall.render import Grounding
    from fcrm_ray.toolcall.schema import ToolCall

    g = Grounding([{"role": "system", "content": "Today is 2024-01-01."},
                   {"role": "user", "content": "Roots for a = 3, b = -11, c = -4; then 3-5 tries at 6% on $5,000."}])
    assert g.unused_numbers([ToolCall("f", {"a": 3, "b": -11, "c": -4})]) == ["5", "6%", "5,000"]  # system text is not the request
    assert g.unused_numbers([ToolCall("f", {"a": -11, "b": -11, "c": -4.0, "rate": 0.06, "n": [5000]}),
                             ToolCall("g", {"expr": "x**3 + 5"})]) == []  # in strings, lists, percent as a fraction
    assert g.unused_numbers([ToolCall("f", {})], limit=2) == ["3", "-11"]
    tools = [{"name": "gcd", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}]
    conv = [{"role": "user", "content": "gcd of 12 and 15"}]
    good = render(bert_tok, tools, conv, '[{"name": "gcd", "arguments": {"a": 12, "b": 15}}]').completion
    bad = render(bert_tok, tools, conv, '[{"name": "gcd", "arguments": {"a": 12, "b": 12}}]').completion
    assert "not used" not in good and bad.endswith("\n(numbers in request not used: 15)")


def test_plain_form_names_unset_optionals_on_one_line_for_very_wide_schemas(bert_tok):
    from fcrm_ray.toolcall.render import FORM_MAX_CHARS

    props = {f"option_{i}": {"type": "string", "enum": [f"value{j}" for j in range(8)]} for i in range(14)}
    props["city"] = {"type": "string", "description": "City."}
    wide = [{"name": "find", "parameters": {"type": "object", "properties": props, "required": ["city"]}}]
    out = render(bert_tok, wide, CONV, '[{"name": "find", "arguments": {"city": "Paris", "option_3": "value1"}}]').completion
    assert len(out) < FORM_MAX_CHARS and out.count("(not given)") == 0
    assert '  option_3?: string' in out and '= "value1"' in out and '  city: string = "Paris"' in out
    unset = ", ".join(f"option_{i}" for i in range(14) if i != 3)
    assert f"  (optional, not given: {unset})" in out
    # a narrow schema keeps one line per parameter
    assert "(optional, not given" not in render(bert_tok, TOOLS, CONV, '[{"name": "get_weather", "arguments": {"city": "Paris"}}]').completion


def test_content_parts_render_like_the_plain_string(bert_tok, qwen_tok):
    """OpenAI / Anthropic clients send message content as parts; the RM must read the same input as
    for the plain string (text parts joined by lines, images dropped), and a structured tool result
    stays JSON."""
    parts = [{"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris"},
                                          {"type": "image_url", "image_url": {"url": "data:,"}},
                                          {"type": "input_text", "text": "in celsius?"}]}]
    joined = [{"role": "user", "content": "What's the weather in Paris\nin celsius?"}]
    for tok in (bert_tok, qwen_tok):
        assert render(tok, TOOLS, parts, CALL_JSON) == render(tok, TOOLS, joined, CALL_JSON)
    records = CONV + [{"role": "tool", "content": [{"temp": 21, "unit": "celsius"}]}]
    assert '[{"temp": 21, "unit": "celsius"}]' in render(bert_tok, TOOLS, records, CALL_JSON).prompt


def test_role_aliases_render_as_the_roles_training_saw(bert_tok, qwen_tok):
    said = [{"role": "developer", "content": "Be brief."}] + CONV + [{"role": "function", "content": "21C"}]
    canonical = [{"role": "system", "content": "Be brief."}] + CONV + [{"role": "tool", "content": "21C"}]
    for tok in (bert_tok, qwen_tok):
        assert render(tok, TOOLS, said, CALL_JSON) == render(tok, TOOLS, canonical, CALL_JSON)
    assert "[SYSTEM] Be brief." in render(bert_tok, TOOLS, said, CALL_JSON).prompt
