"""Tool calls in model-native encodings that are neither a JSON nor a Python payload.

Open-weight models served raw (no server-side tool parser) write their calls in their own chat
format's tokens. `find_native_calls(text)` recognises these encodings and returns the calls as
`(name, arguments)` pairs, where arguments is a dict or the JSON text of one; `parse.py` checks
and builds the `ToolCall`s. It returns None when the text carries none of the markers below, so
every other surface goes through the generic JSON/Python paths.

Encodings (the marker that selects each, then its layout):

- DeepSeek V3 / R1 / V3.1: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME` + a fenced JSON
  block, or (V3.1) `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{json}`, each closed by
  `<｜tool▁call▁end｜>`, inside `<｜tool▁calls▁begin｜> ... <｜tool▁calls▁end｜>`.
- Kimi K2: `<|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{json}<|tool_call_end|>`.
- Harmony (gpt-oss): a message addressed `to=functions.NAME` (in its header or its channel),
  `<|message|>{json}` up to `<|call|>`; messages to built-in tools (`to=browser.search`) and the
  analysis channel are not function calls.
- `<function=NAME>...</function>`: with a JSON body, Llama 3.1's custom-tool format and
  Functionary v3.1; with `<parameter=KEY>VALUE</parameter>` children, Qwen3-Coder's and Seed-OSS's
  XML format (usually inside `<tool_call>` / `<seed:tool_call>`).
- GLM-4.5 / 4.6: `<tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value>...</tool_call>`
  (a call without arguments is the bare name: `<tool_call>NAME</tool_call>`).
- Functionary v3.2: `>>>NAME\\n{json}` segments; `>>>all` is the assistant's text (only text: no
  call, which `parse_calls` reports as plain text).

XML-style values are text. With a catalog (`tools`), a parameter the schema types as a string keeps
its text; any other value is read as JSON when it is valid JSON (`5`, `true`, `[1, 2]`,
`{"a": 1}`) and kept as text otherwise; without a catalog every value gets the JSON reading. This
is what servers' own parsers for these formats do (they convert by the schema). Nothing is ever
evaluated. Pure: standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

_DS_CALL = re.compile(r"<｜tool▁call▁begin｜>(.*?)(?:<｜tool▁call▁end｜>|\Z)", re.DOTALL)
_DS_SEP = "<｜tool▁sep｜>"
# The header between recipient and <|message|> is a few words (" <|constrain|>json"): bounded, so
# text full of recipients and no message stays linear.
_HARMONY_CALL = re.compile(
    r"to=functions\.([^\s<]+)(?:[^<]|<\|(?:channel|constrain)\|>){0,200}<\|message\|>(.*?)"
    r"(?:<\|call\|>|<\|end\|>|<\|return\|>|(?=<\|start\|>)|\Z)", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|\Z)", re.DOTALL)
_PARAMETER_TAG = re.compile(r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|(?=<parameter=)|\Z)", re.DOTALL)
_GLM_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_GLM_NO_ARGS = re.compile(r"<tool_call>\s*[A-Za-z_][\w.\-]*\s*(?:</tool_call>|\Z)")
_FUNCTIONARY = re.compile(r">>>\s*([^\s>]+)[ \t]*\n?")
_FENCE = re.compile(r"\A```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)\n?```\s*\Z", re.DOTALL)

Call = tuple[str, Any]  # (name, arguments dict or the JSON text of one)


class NativeFormatError(ValueError):
    """A native encoding was recognised but its content is malformed."""


def find_native_calls(text: str, tools: Sequence[Any] | None = None) -> tuple[str, list[Call]] | None:
    """(encoding, calls) of `text` in one of the encodings above; None when it uses none of them.
    `tools`: `ToolSpec`s (anything with `name` and `properties`) to type XML-style values."""
    if "<｜tool▁call▁begin｜>" in text:
        return "deepseek", [_deepseek(body) for body in _DS_CALL.findall(text)]
    if "<|tool_call_begin|>" in text:
        return "kimi", _kimi(text)
    if "to=functions." in text and "<|message|>" in text:
        return "harmony", [(name, _unfence(args)) for name, args in _HARMONY_CALL.findall(text)]
    if "<function=" in text:
        return "function_tag", [_function_tag(name, body, tools) for name, body in _FUNCTION_TAG.findall(text)]
    if "<arg_key>" in text or _GLM_NO_ARGS.search(text):
        return "glm", [_glm(body, tools) for body in _GLM_CALL.findall(text)]
    if text.startswith(">>>"):
        return "functionary", _functionary(text)
    return None


def _deepseek(body: str) -> Call:
    if _DS_SEP not in body:
        raise NativeFormatError(f"DeepSeek tool call without {_DS_SEP}: {body[:60]!r}")
    head, rest = body.split(_DS_SEP, 1)
    if head.strip() == "function":  # V3 / R1: the type, then the name line, then fenced JSON
        name, _, args = rest.partition("\n")
        return name.strip(), _unfence(args)
    return head.strip(), _unfence(rest)  # V3.1: the name, then the JSON


def _kimi(text: str) -> list[Call]:
    """Split on the markers (a regex that looks ahead for the argument marker from every call
    marker is quadratic on text with many of one and none of the other)."""
    calls = []
    for block in text.split("<|tool_call_begin|>")[1:]:
        head, sep, args = block.partition("<|tool_call_end|>")[0].partition("<|tool_call_argument_begin|>")
        if sep:
            calls.append((_strip_namespace(head), _unfence(args)))
    return calls


def _strip_namespace(head: str) -> str:
    """`functions.get_weather:0` -> `get_weather` (Kimi's call ids)."""
    name = head.strip()
    name = re.sub(r":\d+\Z", "", name)
    return name[len("functions."):] if name.startswith("functions.") else name


def _function_tag(name: str, body: str, tools: Sequence[Any] | None) -> Call:
    if "<parameter=" in body:
        props = _properties(name, tools)
        return name, {key: _typed(_trim_value(value), props.get(key)) for key, value in _PARAMETER_TAG.findall(body)}
    return name, _unfence(body)


def _glm(body: str, tools: Sequence[Any] | None) -> Call:
    name, *pairs = body.split("<arg_key>")  # split, not a regex: linear however many markers
    props = _properties(name.strip(), tools)
    args = {}
    for pair in pairs:
        key, sep, rest = pair.partition("</arg_key>")
        rest = rest.lstrip()
        if sep and rest.startswith("<arg_value>"):
            value = rest[len("<arg_value>"):].partition("</arg_value>")[0]
            args[key.strip()] = _typed(_trim_value(value), props.get(key.strip()))
    return name.strip(), args


def _functionary(text: str) -> list[Call]:
    marks = list(_FUNCTIONARY.finditer(text))
    calls = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if m.group(1) != "all":  # `>>>all` carries the assistant's text, not a call
            calls.append((m.group(1), _unfence(text[m.end():end])))
    return calls  # [] when there is only text


def _unfence(args: str) -> str:
    """The JSON text of arguments, without a surrounding ``` fence (DeepSeek V3 fences it)."""
    s = args.strip()
    m = _FENCE.match(s)
    return m.group(1).strip() if m else s


def _trim_value(value: str) -> str:
    """XML values sit on their own lines in Qwen3-Coder's format: one newline each side is layout."""
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def _properties(name: str, tools: Sequence[Any] | None) -> Mapping[str, Any]:
    for tool in tools or ():
        if getattr(tool, "name", None) == name:
            return getattr(tool, "properties", {}) or {}
    return {}


def _typed(value: str, schema: Any) -> Any:
    """Text for a string-typed parameter; otherwise the JSON reading when there is one."""
    types = schema.get("type") if isinstance(schema, Mapping) else None
    if types in ("string", ["string"]):
        return value
    try:
        return json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")
