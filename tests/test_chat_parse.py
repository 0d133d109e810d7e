"""parse_rendered_chat: prompts rendered by real transformers tokenizers with the chat templates of
Qwen2.5, Qwen3, Hermes-2-Pro, Llama-3.1 and Mistral v0.3 (tests/fixtures/chat_templates) read back
into the same tools, messages and calls; and the errors for prompts without a catalog."""

import json
from functools import lru_cache
from pathlib import Path

import pytest

from fcrm_ray.toolcall.chat_parse import (
    MAX_PROMPT_CHARS,
    ChatParseError,
    canonical_family,
    clean_response,
    detect_family,
    parse_rendered_chat,
    split_query,
)
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.render import render
from fcrm_ray.toolcall.schema import ToolCall, normalize_tools

TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"
# template file -> (family, special tokens the template reads)
FAMILIES = {
    "qwen2_5": ("qwen", dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")),
    "qwen3": ("qwen", dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")),
    "hermes2pro": ("hermes", dict(bos_token="<|begin_of_text|>", eos_token="<|im_end|>")),
    "llama3_1": ("llama3", dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")),
    "mistral_v0_3": ("mistral", dict(bos_token="<s>", eos_token="</s>")),
}


@lru_cache(maxsize=None)
def tokenizer(name: str):
    """A real PreTrainedTokenizerFast (tiny word-level vocabulary, no hub) carrying the template."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    special = FAMILIES[name][1]
    vocab = {"[UNK]": 0, **{t: i + 1 for i, t in enumerate(special.values())}}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
                                   unk_token="[UNK]", chat_template=(TEMPLATES / f"{name}.jinja").read_text(), **special)


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        # quotes and a newline: Hermes and Mistral paste descriptions into their JSON unescaped
        "description": 'Get the "current" weather.\nUses the nearest station.',
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. 'Paris'"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
            "days": {"type": "array", "items": {"type": "integer"}, "description": "Days ahead"}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between currencies.",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number", "description": "Amount"},
            "from": {"type": "string", "description": "ISO code"},
            "to": {"type": "string", "description": "ISO code"}},
            "required": ["amount", "from", "to"]}}},
]
SYSTEM = "You are a careful travel assistant."
USER = "What's the weather in Paris for the next 2 days, in celsius?"
CALL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": [1, 2]}}


def assistant_call(calls, ids=("call00001", "call00002")):
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": ids[i], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for i, c in enumerate(calls)]}


def rendered(name, messages, calls=(CALL,), **kw):
    """(prompt, response) as the policy's tokenizer renders them: the response is the rest of the
    full rendering with the assistant's tool-call turn (end-of-turn token included)."""
    tok = tokenizer(name)
    prompt = tok.apply_chat_template(messages, tools=TOOLS, add_generation_prompt=True, tokenize=False, **kw)
    full = tok.apply_chat_template(messages + [assistant_call(list(calls))], tools=TOOLS, tokenize=False, **kw)
    assert full.startswith(prompt), "template broke the prefix property"
    return prompt, full[len(prompt):]


def same_catalog(got):
    assert [t.to_dict() for t in normalize_tools(got)] == [t.to_dict() for t in normalize_tools(TOOLS)]


def convo(name):
    # Mistral v0.3 folds the system prompt into the *last* user turn, so a conversation with a
    # system prompt renders its prompt and its full text differently; test it without one.
    return [{"role": "user", "content": USER}] if name == "mistral_v0_3" else \
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_round_trip_tools_messages_and_call(name):
    prompt, response = rendered(name, convo(name))
    family = FAMILIES[name][0]
    assert detect_family(prompt) == family
    got = parse_rendered_chat(prompt, response)
    assert got.family == family
    same_catalog(got.tools)
    assert got.messages == convo(name)
    assert parse_calls(got.response).calls == [ToolCall(CALL["name"], CALL["arguments"])]
    # end-of-turn tokens are not part of the response
    assert not got.response.endswith(("<|im_end|>", "<|eot_id|>", "</s>"))
    # the explicit family gives the same result as detection
    assert parse_rendered_chat(prompt, response, family=family) == got


@pytest.mark.parametrize("name", list(FAMILIES))
def test_template_source_detects_its_family(name):
    assert detect_family(tokenizer(name).chat_template) == FAMILIES[name][0]


def test_markers_quoted_in_the_conversation_do_not_change_the_family():
    msgs = [{"role": "user", "content": "My old prompts used [INST] and <|start_header_id|> tags. " + USER}]
    prompt, response = rendered("qwen3", msgs)
    got = parse_rendered_chat(prompt, response)
    assert got.family == "qwen" and got.messages == msgs


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3", "hermes2pro", "mistral_v0_3"])
def test_parallel_calls(name):
    second = {"name": "convert_currency", "arguments": {"amount": 10.5, "from": "EUR", "to": "USD"}}
    prompt, response = rendered(name, convo(name), calls=(CALL, second))
    got = parse_rendered_chat(prompt, response)
    assert parse_calls(got.response).calls == [ToolCall(c["name"], c["arguments"]) for c in (CALL, second)]


def test_llama_parallel_calls_written_as_the_model_does():
    prompt, _ = rendered("llama3_1", convo("llama3_1"))
    response = ('{"name": "get_weather", "parameters": {"city": "Paris"}}; '
                '{"name": "get_weather", "parameters": {"city": "Lyon"}}<|eot_id|>')
    got = parse_rendered_chat(prompt, response)
    assert [c.arguments["city"] for c in parse_calls(got.response).calls] == ["Paris", "Lyon"]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_multi_turn_history_with_tool_results(name):
    first = {"name": "convert_currency", "arguments": {"amount": 3, "from": "EUR", "to": "USD"}}
    tool_msg = {"role": "tool", "content": '{"usd": 3.27}', "tool_call_id": "call00001", "name": "convert_currency"}
    history = convo(name)[:-1] + [
        {"role": "user", "content": "Convert 3 EUR to USD."}, assistant_call([first]), tool_msg,
        {"role": "assistant", "content": "That is 3.27 USD."}, {"role": "user", "content": USER}]
    prompt, response = rendered(name, history)
    got = parse_rendered_chat(prompt, response)
    same_catalog(got.tools)
    roles = [m["role"] for m in got.messages]
    assert roles == [m["role"] for m in history]
    call_turn = got.messages[roles.index("assistant")]
    assert call_turn["tool_calls"][0]["function"] == {"name": "convert_currency", "arguments": first["arguments"]}
    assert got.messages[roles.index("tool")]["content"] == '{"usd": 3.27}'
    assert got.messages[-1] == {"role": "user", "content": USER}
    assert got.messages[-2] == {"role": "assistant", "content": "That is 3.27 USD."}
    assert parse_calls(got.response).calls == [ToolCall(CALL["name"], CALL["arguments"])]


def test_qwen3_thinking_off_prefill_and_thinking_response():
    tok = tokenizer("qwen3")
    msgs = convo("qwen3")
    prompt = tok.apply_chat_template(msgs, tools=TOOLS, add_generation_prompt=True, tokenize=False,
                                     enable_thinking=False)
    got = parse_rendered_chat(prompt, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>')
    assert got.prefill == "<think>\n\n</think>\n\n"
    assert got.messages == msgs
    assert parse_calls(got.response).calls == [ToolCall("get_weather", {"city": "Paris"})]
    # thinking on: the model writes its reasoning before the call; parse_calls drops it
    prompt = tok.apply_chat_template(msgs, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    got = parse_rendered_chat(prompt, '<think>\nParis, two days.\n</think>\n\n<tool_call>\n'
                                      '{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>')
    assert got.prefill == ""
    assert parse_calls(got.response).calls == [ToolCall("get_weather", {"city": "Paris", "days": [1, 2]})]


def test_qwen25_default_system_prompt_is_template_text():
    prompt, response = rendered("qwen2_5", [{"role": "user", "content": USER}])
    assert "You are Qwen, created by Alibaba Cloud" in prompt
    assert parse_rendered_chat(prompt, response).messages == [{"role": "user", "content": USER}]


def test_llama_tools_in_system_turn():
    prompt, response = rendered("llama3_1", convo("llama3_1"), tools_in_user_message=False)
    assert "You have access to the following functions" in prompt
    got = parse_rendered_chat(prompt, response)
    same_catalog(got.tools)
    assert got.messages == convo("llama3_1")


def test_hermes_description_is_the_tools_own():
    prompt, response = rendered("hermes2pro", convo("hermes2pro"))
    assert '"description": "get_weather(city: str, unit: str, days: list[' in prompt
    got = parse_rendered_chat(prompt, response)
    assert got.tools[0]["function"]["description"] == TOOLS[0]["function"]["description"]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_split_query_inverts_concatenation(name):
    prompt, response = rendered(name, convo(name))
    assert split_query(prompt + response) == (prompt, response)


def test_plain_json_catalog():
    prompt = ("You can call these functions:\n" + json.dumps(TOOLS, indent=2)
              + "\n\nQuestion: " + USER + "\nAnswer with a JSON list of calls.")
    got = parse_rendered_chat(prompt, '[{"name": "get_weather", "arguments": {"city": "Paris"}}]')
    assert got.family == "json"
    same_catalog(got.tools)
    assert got.messages == [{"role": "user", "content": "You can call these functions:\nQuestion: " + USER
                             + "\nAnswer with a JSON list of calls."}]
    assert parse_calls(got.response).calls == [ToolCall("get_weather", {"city": "Paris"})]
    # bare specs (no OpenAI wrapper) too
    bare = [t["function"] for t in TOOLS]
    same_catalog(parse_rendered_chat("Tools: " + json.dumps(bare) + "\n" + USER, "").tools)
    # any key order; JSON that is not a catalog (a call, a list of numbers) before it is skipped
    reordered = [{"description": t["description"], "parameters": t["parameters"], "name": t["name"]} for t in bare]
    got = parse_rendered_chat('Example call: {"name": "f", "arguments": {"a": [1, 2]}} [1, 2]\nTools: '
                              + json.dumps(reordered) + "\n" + USER, "")
    same_catalog(got.tools)


def test_catalog_pasted_into_user_turn_of_a_chat_template():
    """A policy prompted without tools=, its catalog pasted in the user message as JSON."""
    tok = tokenizer("qwen3")
    user = "Tools:\n" + json.dumps(TOOLS) + "\n" + USER
    prompt = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
    got = parse_rendered_chat(prompt, "")
    same_catalog(got.tools)
    assert got.messages == [{"role": "user", "content": "Tools:\n" + USER}]
    assert got.notes


def test_parsed_pieces_render_like_the_structured_input():
    """What the reward model reads is the same whether the pair came structured or rendered."""
    from fcrm_ray.models import QWEN_STYLE_TEMPLATE

    class RMTokenizer:  # render() needs only these (a real RM tokenizer is exercised in test_render)
        chat_template = QWEN_STYLE_TEMPLATE
        eos_token = "<|im_end|>"

        def apply_chat_template(self, messages, **kw):
            return tokenizer("qwen2_5").apply_chat_template(messages, chat_template=QWEN_STYLE_TEMPLATE, **kw)

    class PlainTokenizer:  # an encoder: no chat template, the [TOOLS] ... [CALL] rendering
        chat_template = None
        eos_token = None

    for name in FAMILIES:
        prompt, response = rendered(name, convo(name))
        got = parse_rendered_chat(prompt, response)
        for rm_tok in (RMTokenizer(), PlainTokenizer()):
            want = render(rm_tok, TOOLS, convo(name), json.dumps([CALL]))
            assert render(rm_tok, got.tools, got.messages, got.response) == want, name


@pytest.mark.parametrize("name", list(FAMILIES))
def test_prompt_without_catalog_is_an_error(name):
    msgs = [{"role": "user", "content": USER}]
    if name == "hermes2pro":  # its tool_use template needs tools; without them Hermes is plain ChatML
        prompt = f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
    else:
        prompt = tokenizer(name).apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    with pytest.raises(ChatParseError, match="no parsable tool catalog"):
        parse_rendered_chat(prompt, '{"name": "get_weather", "arguments": {}}')


@pytest.mark.parametrize("prompt", [
    "",
    "just some words",
    "<|im_start|>system\n# Tools\n<tools>\nnot json at all\n</tools><|im_end|>\n<|im_start|>assistant\n",
    '<|im_start|>system\n<tools>\n{"name": "f", "arguments": {"a": 1}}\n</tools><|im_end|>\n',  # a call, not a spec
    "[AVAILABLE_TOOLS] [{broken[/AVAILABLE_TOOLS][INST] hi[/INST]",
    "[" * 5000 + "{" * 5000,  # bracket soup: bounded scan, clear error
    '\x00\x01<|start_header_id|>user<|end_header_id|>\n\nDo not use variables.\n\n{"a": [1, 2',
])
def test_garbage_prompts(prompt):
    with pytest.raises(ChatParseError):
        parse_rendered_chat(prompt, "anything")


def test_bad_arguments():
    with pytest.raises(ChatParseError, match="unknown chat template family"):
        parse_rendered_chat("x", "y", family="gpt-oss")
    with pytest.raises(ChatParseError, match="prompt must be a string"):
        parse_rendered_chat(None, "y")
    with pytest.raises(ChatParseError, match="response must be a string"):
        parse_rendered_chat("x", ["y"])
    with pytest.raises(ChatParseError, match="too long"):
        parse_rendered_chat("x" * (MAX_PROMPT_CHARS + 1), "")
    with pytest.raises(ChatParseError, match="cannot split"):
        split_query("no headers here")
    assert canonical_family("Qwen2.5") == "qwen" and canonical_family("llama3.2") == "llama3"


def test_clean_response():
    assert clean_response("<|im_start|>assistant\nhi<|im_end|><|endoftext|><|endoftext|>\n") == "hi"
    assert clean_response('{"name": "f"}<|eot_id|>') == '{"name": "f"}'
    assert clean_response("[TOOL_CALLS] []</s>") == "[TOOL_CALLS] []"
    assert clean_response("plain") == "plain"
