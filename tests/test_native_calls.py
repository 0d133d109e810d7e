"""Model-native tool-call encodings (`fcrm_ray/toolcall/native_calls.py`) through `parse_calls`,
`verify` and `render`: what raw completions of DeepSeek, Kimi, gpt-oss, Qwen3-Coder, GLM,
Functionary, Llama 3.1, Cohere and Anthropic-style clients look like."""

import pytest

from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.render import render
from fcrm_ray.toolcall.schema import ToolCall, normalize_tools
from fcrm_ray.toolcall.verify import verify

W = [ToolCall("get_weather", {"location": "Paris"})]
TWO = [ToolCall("get_weather", {"location": "Paris"}), ToolCall("get_time", {"tz": "CET"})]

NATIVE = {
    "deepseek_v3": ('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n'
                    '{"location": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>', W),
    "deepseek_v31_two": ('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"location": "Paris"}'
                         '<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"tz": "CET"}<｜tool▁call▁end｜>'
                         '<｜tool▁calls▁end｜>', TWO),
    "kimi_k2_two": ('<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>'
                    '{"location": "Paris"}<|tool_call_end|><|tool_call_begin|>functions.get_time:1'
                    '<|tool_call_argument_begin|>{"tz": "CET"}<|tool_call_end|><|tool_calls_section_end|>', TWO),
    "harmony_after_analysis": ('<|channel|>analysis<|message|>The user wants the weather.<|end|><|start|>assistant'
                               '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
                               '{"location":"Paris"}<|call|>', W),
    "harmony_two_recipient_in_header": ('<|start|>assistant to=functions.get_weather<|channel|>commentary json'
                                        '<|message|>{"location": "Paris"}<|call|><|start|>assistant '
                                        'to=functions.get_time<|channel|>commentary json<|message|>{"tz": "CET"}<|call|>',
                                        TWO),
    "llama31_function_tag": ('<function=get_weather>{"location": "Paris"}</function><|eom_id|>', W),
    "qwen3_coder_xml_two": ('I will check.\n<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n'
                            '</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n'
                            '<parameter=tz>\nCET\n</parameter>\n</function>\n</tool_call><|im_end|>', TWO),
    "seed_oss_xml": ('<seed:tool_call><function=get_weather><parameter=location>Paris</parameter></function>'
                     '</seed:tool_call>', W),
    "glm45_two": ('<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>'
                  '<tool_call>get_time\n<arg_key>tz</arg_key>\n<arg_value>CET</arg_value>\n</tool_call>', TWO),
    "functionary_v32_two": ('>>>all\nLet me look that up.\n>>>get_weather\n{"location": "Paris"}\n'
                            '>>>get_time\n{"tz": "CET"}', TWO),
    "cohere_tool_name": ('Action: ```json\n[{"tool_name": "get_weather", "parameters": {"location": "Paris"}}]\n```', W),
    "anthropic_tool_use": ('{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}',
                           W),
    "anthropic_content_with_text": ('[{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", '
                                    '"name": "get_weather", "input": {"location": "Paris"}}]', W),
    "openai_responses_output": ('[{"type": "reasoning", "id": "rs_1", "summary": []}, {"type": "message", "role": '
                                '"assistant", "content": [{"type": "output_text", "text": "Checking."}]}, {"type": '
                                '"function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": '
                                '"{\\"location\\": \\"Paris\\"}", "status": "completed"}]', W),
    "openai_legacy_function_call": ('{"role": "assistant", "content": null, "function_call": {"name": "get_weather", '
                                    '"arguments": "{\\"location\\": \\"Paris\\"}"}}', W),
    "pythonic_with_eot": ('[get_weather(location="Paris")]<|eot_id|>', W),
    "chatml_end": ('{"name": "get_weather", "arguments": {"location": "Paris"}}<|im_end|>', W),
}


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_encodings_parse_to_the_same_calls(name):
    text, want = NATIVE[name]
    res = parse_calls(text)
    assert res.calls == want, (res.format, res.error)


def test_legacy_function_call_is_not_read_as_a_tool_named_function_call():
    res = parse_calls('{"function_call": {"name": "get_weather", "arguments": "{\\"location\\": \\"Paris\\"}"}}')
    assert res.calls == W


def test_xml_values_are_typed_by_the_schema():
    tools = normalize_tools([{"name": "f", "description": "", "parameters": {"type": "object", "properties": {
        "zip": {"type": "string"}, "n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
        "flag": {"type": "boolean"}}}}])
    text = ('<tool_call>\n<function=f>\n<parameter=zip>\n10001\n</parameter>\n<parameter=n>\n5\n</parameter>\n'
            '<parameter=tags>\n["a", "b"]\n</parameter>\n<parameter=flag>\ntrue\n</parameter>\n</function>\n</tool_call>')
    assert parse_calls(text, tools).calls == [ToolCall("f", {"zip": "10001", "n": 5, "tags": ["a", "b"], "flag": True})]
    # without a catalog every value gets its JSON reading; text that is not JSON stays text
    assert parse_calls(text).calls == [ToolCall("f", {"zip": 10001, "n": 5, "tags": ["a", "b"], "flag": True})]
    glm = '<tool_call>f<arg_key>zip</arg_key><arg_value>NaN</arg_value><arg_key>n</arg_key><arg_value>x1</arg_value></tool_call>'
    assert parse_calls(glm).calls == [ToolCall("f", {"zip": "NaN", "n": "x1"})]


def test_side_items_alone_are_not_calls():
    assert parse_calls('[{"type": "text", "text": "No tool fits."}]').calls is None
    assert parse_calls('[{"type": "reasoning", "id": "rs_1", "summary": []}]').calls is None


def test_glm_call_without_arguments_and_functionary_text_only():
    assert parse_calls("<tool_call>get_time</tool_call>").calls == [ToolCall("get_time", {})]
    res = parse_calls(">>>all\nI cannot help with that.")
    assert res.calls is None and res.format == "text"


def test_generic_surfaces_win_over_native_markers_inside_arguments():
    # a JSON call whose argument text happens to contain native markers stays that JSON call
    res = parse_calls('<tool_call>\n{"name": "f", "arguments": {"html": "<function=x>{}</function>"}}\n</tool_call>')
    assert res.calls == [ToolCall("f", {"html": "<function=x>{}</function>"})]
    res = parse_calls('[f(note=">>>all is a marker")]')
    assert res.calls == [ToolCall("f", {"note": ">>>all is a marker"})]


@pytest.mark.parametrize("text", [
    '<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{"n": 1<|tool_call_end|>',
    '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f {"n": 1}<｜tool▁call▁end｜>',
    '<function=f>{"n": [1, 2}</function>',
    '<|channel|>commentary to=functions.f <|constrain|>json<|message|>[1, 2]<|call|>',
])
def test_malformed_native_calls_are_format_errors_with_a_reason(text):
    res = parse_calls(text)
    assert res.calls is None and res.error
    tools = [{"name": "f", "description": "", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}]
    v = verify(text, [{"f": {"n": [1]}}], tools)
    assert not v.correct and v.error_type == "incorrect_output_format"


def test_verify_and_render_treat_a_native_call_like_its_json_twin():
    tools = [{"name": "find_store", "description": "Find a store.", "parameters": {"type": "object", "properties": {
        "zip_code": {"type": "string", "description": "ZIP code"}, "radius": {"type": "integer"}},
        "required": ["zip_code"]}}]
    reference = [{"find_store": {"zip_code": ["02139"], "radius": [5, ""]}}]
    xml = ('<tool_call>\n<function=find_store>\n<parameter=zip_code>\n02139\n</parameter>\n<parameter=radius>\n5\n'
           '</parameter>\n</function>\n</tool_call>')
    twin = '[{"name": "find_store", "arguments": {"zip_code": "02139", "radius": 5}}]'
    assert verify(xml, reference, tools).correct
    assert verify(twin, reference, tools).correct
    conv = [{"role": "user", "content": "Stores near 02139 within 5 miles?"}]
    assert render(object(), tools, conv, xml) == render(object(), tools, conv, twin)
