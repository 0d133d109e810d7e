"""parse_calls: every accepted surface, every rejection, and that nothing is ever executed."""

import json

import pytest

from fcrm_ray.toolcall.parse import MAX_CHARS, parse_calls
from fcrm_ray.toolcall.schema import ToolCall

F1 = ToolCall("f", {"a": 1})
FG = [ToolCall("f", {"a": 1, "b": "x"}), ToolCall("g", {})]


@pytest.mark.parametrize(
    "text,expected,fmt",
    [
        ('[{"name": "f", "arguments": {"a": 1}}]', [F1], "json"),
        ('{"name": "f", "arguments": {"a": 1}}', [F1], "json"),
        ('{"name": "f", "parameters": {"a": 1}}', [F1], "json"),
        ('{"name": "f", "arguments": "{\\"a\\": 1}"}', [F1], "json"),  # OpenAI: arguments as a JSON string
        ('{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}', [F1], "json"),
        ('[{"f": {"a": 1}}]', [F1], "json"),  # BFCL single-key dicts
        ('{"f": {"a": 1}}', [F1], "json"),
        ('[{"f": {"a": 1, "b": "x"}}, {"g": {}}]', FG, "json"),
        ('{"name": "g"}', [ToolCall("g", {})], "json"),
        ('[]', [], "json"),
        ('[f(a=1, b="x"), g()]', FG, "python"),
        ("f(a=1)", [F1], "python"),
        ("f(a=1, b='x')\ng()", FG, "python"),
        ("f(a=1, b='x'); g()", FG, "python"),
        ("math.factorial(n=5)", [ToolCall("math.factorial", {"n": 5})], "python"),
        ("f(a=-3, b=+2.5, c=(1, 2), d={'k': [True, None]}, e=false)",
         [ToolCall("f", {"a": -3, "b": 2.5, "c": [1, 2], "d": {"k": [True, None]}, "e": False})], "python"),
        ("{'name': 'f', 'arguments': {'a': 1}}", [F1], "python_literal"),
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1, "b": "x"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>', FG, "tool_call:json"),
        ('<think>the user wants f</think>\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', [F1], "tool_call:json"),
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n', [F1], "tool_call:json"),  # stop token ate </tool_call>
        ('<|python_tag|>{"name": "f", "parameters": {"a": 1}}<|eom_id|>', [F1], "python_tag:json"),
        ("<|python_tag|>[f(a=1)]", [F1], "python_tag:python"),
        ('```json\n[{"name": "f", "arguments": {"a": 1}}]\n```', [F1], "fenced:json"),
        ("Sure, here is the call:\n```python\n[f(a=1)]\n```\nDone.", [F1], "fenced:python"),
        ('Sure, here is the call: [{"name": "f", "arguments": {"a": 1}}] Let me know if you need more.', [F1], "embedded:json"),
        ("Sure, here is the call: [f(a=1)]", [F1], "embedded:python"),
        ('[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}]', [F1], "mistral:json"),
        ('[TOOL_CALLS]f[ARGS]{"a": 1, "b": "x"}[TOOL_CALLS]g[ARGS]{}', FG, "mistral:json"),
        ('"[{\\"name\\": \\"f\\", \\"arguments\\": {\\"a\\": 1}}]"', [F1], "json"),  # double-encoded
        # Llama 3.x parallel calls: JSON objects separated by `;` or newlines
        ('{"name": "f", "parameters": {"a": 1, "b": "x"}}; {"name": "g", "parameters": {}}', FG, "json"),
        ('{"name": "f", "parameters": {"a": 1, "b": "x"}}\n{"name": "g", "parameters": {}}', FG, "json"),
        ('<|python_tag|>{"name": "f", "parameters": {"a": 1, "b": "x"}}; {"name": "g", "parameters": {}}<|eom_id|>',
         FG, "python_tag:json"),
        ('[TOOL_CALLS] [{"name": "f", "arguments": {"a": 1}, "id": "abc123xyz"}]', [F1], "mistral:json"),  # v0.3 ids
    ],
)
def test_accepted_surfaces(text, expected, fmt):
    r = parse_calls(text)
    assert r.error is None, r.error
    assert r.calls == expected
    assert r.format == fmt


def test_openai_message_with_tool_calls():
    msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1, "b": "x"}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }
    assert parse_calls(json.dumps(msg)).calls == FG
    assert parse_calls(msg).calls == FG  # structured input too
    assert parse_calls(msg).format == "structured"


def test_structured_inputs():
    assert parse_calls([F1]).calls == [F1]
    assert parse_calls({"name": "f", "arguments": {"a": 1}}).calls == [F1]
    assert parse_calls([{"f": {"a": 1}}]).calls == [F1]
    assert parse_calls(b'[{"f": {"a": 1}}]').calls == [F1]
    assert parse_calls(42).calls is None
    assert parse_calls([ToolCall("f", ["not", "a", "dict"])]).calls is None


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        (None, "empty"),
        ("I'll use the get_weather function with city='Paris'.", "no tool call"),
        ("Could you please provide the city?", "no tool call"),
        ('[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "argu', "invalid JSON"),  # truncated list
        ('{"name": "f", "arguments": {"a": 1}', "invalid JSON"),
        ('[{"name": "f", "arguments": {"a": NaN}}]', "non-finite"),
        ('[{"name": "f", "arguments": {"a": Infinity}}]', "non-finite"),
        ('[{"name": "f", "arguments": {"a": 1e999}}]', "out of range"),
        ("[f(1, 2)]", "positional argument"),
        ("f(x=g(y=1))", "nested call"),
        ("f(city=Boston)", "bare name"),
        ("f(x=1+2)", "not a literal"),
        ("f(x={1, 2})", "not a literal"),
        ("f(x=f'{y}')", "not a literal"),
        ("f(**kw)", "not allowed"),
        ("[f(a=1)", "invalid Python"),
        ("f(a=1)]", "invalid Python"),
        ("x = f(a=1)", "no tool call"),
        ('[{"name": 5, "arguments": {}}]', "non-empty string"),
        ('[{"name": "f", "arguments": [1, 2]}]', "must be an object"),
        ('[{"name": "f", "arguments": "{broken"}]', "invalid JSON"),
        ('[{"name": "f", "arguments": {}, "bogus": 1}]', "unexpected keys"),
        ("[1, 2, 3]", "not a call"),
        ('<tool_call>\n{"name": "f", "argu', "block 0"),
        ("<tool_call></tool_call>", "empty"),
        ("```json\n[{\"name\": \"f\"\n```", "code block 0"),
        ("```json\n[{\"name\": \"f\"}]", "unterminated"),
        ("<think>still thinking", "unfinished reasoning"),
        ('{"tool_calls": []}', "no tool_calls"),
        ('{"name": "f"} and then prose', "Extra data"),  # one object + text is not a call sequence
        ('{"name": "f"}; [1]', "Extra data"),
        ('{"name": "f"}; {"a": 1, "b": 2}', "not a call"),
    ],
)
def test_rejected_outputs(text, reason):
    r = parse_calls(text)
    assert r.calls is None
    assert reason in r.error, r.error


def test_payloads_are_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"[__import__('os').system('touch {marker}')]",
        f"f(x=__import__('os').system('touch {marker}'))",
        f"f(x=open('{marker}', 'w').write('x'))",
        f"[f(x=(lambda: __import__('os').system('touch {marker}'))())]",
        f"Sure: [f(x=exec(\"open('{marker}','w')\"))]",
        f"<tool_call>f(x=eval(\"open('{marker}','w')\"))</tool_call>",
    ]
    for p in payloads:
        r = parse_calls(p)
        assert r.calls is None, (p, r)
    # `os.system(command=...)` is syntactically a keyword call: it parses as data, not executed.
    r = parse_calls(f"os.system(command='touch {marker}')")
    assert r.calls == [ToolCall("os.system", {"command": f"touch {marker}"})]
    assert not marker.exists()


def test_pathological_inputs_do_not_crash():
    assert "too long" in parse_calls("[" + " " * MAX_CHARS + "]").error
    for text in ["[" * 50_000, "{\"a\":" * 50_000, "(" * 50_000, "f(a=" + "[" * 5000 + "]" * 5000 + ")",
                 "[f(a=" + "[" * 95 + "1" + "]" * 95 + ")]", "\x00f(a=1)", "f(a='\ud800')"]:
        r = parse_calls(text)
        assert r.calls is None or isinstance(r.calls, list)
        assert r.calls is not None or r.error


def test_first_bracket_rule_keeps_truncation_an_error():
    # A truncated list must not degrade into its first complete element.
    text = 'Here you go: [{"name": "f", "arguments": {"a": 1}}, {"name": "g"'
    assert parse_calls(text).calls is None


def test_tags_inside_json_arguments_are_data():
    text = '[{"name": "f", "arguments": {"note": "use <tool_call> and ```"}}]'
    assert parse_calls(text).calls == [ToolCall("f", {"note": "use <tool_call> and ```"})]


def test_reasoning_is_stripped():
    assert parse_calls("<think>maybe g?</think>\n[f(a=1)]").calls == [F1]
    assert parse_calls("the template opened the think block...</think>\n[f(a=1)]").calls == [F1]
