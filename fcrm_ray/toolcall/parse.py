"""Turn raw model output into tool calls: `parse_calls(output) -> ParseResult`.

Models write tool calls in many surfaces; the verifier, the renderer and the mutator all need the
same list of `ToolCall`s out of them. `parse_calls` never raises and never evaluates anything:
Python-syntax calls are read with `ast.parse` plus a walker that only accepts literals.

Accepted surfaces (after dropping reasoning — everything up to the last `</think>` —, trailing
end-of-turn tokens such as `<|eot_id|>` / `<|im_end|>` / `<|call|>`, and surrounding whitespace):

- structured input (already-decoded dicts/lists, `ToolCall` objects) -> format "structured";
- JSON (format "json"): `{"name": f, "arguments": {...}}` (or `"parameters"`; arguments may be a
  JSON *string*, OpenAI style), `{"function": {...}}` wrappers, OpenAI assistant messages
  `{"tool_calls": [{"type": "function", "function": {"name", "arguments": "<json>"}}]}`,
  BFCL's `{"f": {"a": 1}}` single-key dicts, and lists of any of these; several call objects
  separated by `;` or newlines (Llama 3.x parallel calls: `{...}; {...}`);
- Python calls (format "python"): `[f(a=1), g()]`, `f(a=1)`, several calls separated by
  newlines / commas / `;`, dotted names `math.factorial(n=5)`. Keyword arguments only: a
  positional argument is a format error (BFCL requires keywords). Values must be literals:
  strings, numbers (with a sign), True/False/None (also JSON's true/false/null), lists, tuples
  (-> lists) and dicts with string keys. Anything else — a nested call, a bare name (an unquoted
  string), arithmetic, a set, an f-string, `**kwargs` — is a format error, never evaluated;
- Python-literal dicts/lists with single quotes (`{'name': 'f', 'arguments': {...}}`), read like JSON;
- wrappers: `<tool_call>...</tool_call>` blocks (Qwen/Hermes; several allowed; text outside them
  is ignored; a final block may lack its closing tag if its content is complete), `<|python_tag|>`
  (Llama), `[TOOL_CALLS]` (Mistral, both `[TOOL_CALLS][...]` and `[TOOL_CALLS]f[ARGS]{...}`),
  ```json / ```python / ``` code fences (the calls of all fenced blocks, in order).
- call objects also as `{"tool_name", "parameters"}` (Cohere), Anthropic `tool_use` blocks
  (`input`), OpenAI Responses `function_call` items, the legacy OpenAI `{"function_call": {...}}`
  message, and chat messages whose `content` holds the calls; in a list of calls, Anthropic
  `text` blocks and Responses `reasoning` / assistant `message` items beside them are skipped;
- model-native encodings, tried only where the readings above fail (`native_calls.py`):
  DeepSeek and Kimi special-token calls, gpt-oss harmony messages `to=functions.NAME`,
  `<function=NAME>` with a JSON body (Llama 3.1) or `<parameter=...>` children (Qwen3-Coder,
  Seed-OSS), GLM's `<arg_key>/<arg_value>`, Functionary's `>>>NAME`; XML-style values are typed
  by the catalog when `parse_calls` gets one (`tools=`);
- chatter around ONE block ("Sure, here is the call: [...]"): the payload starts at the FIRST
  `[` or `{` of the text. A JSON value decoded from there is used, whatever text follows; else the
  span from that bracket to the last `]`/`}` is tried as Python. Only the first bracket is tried,
  so a truncated list never degrades into its first complete element, and prose that merely
  mentions a call ("I would call f with a=1") is not a call.

Failures give `calls=None` and an `error` (the verifier reports `incorrect_output_format`):
empty output, prose without a call, malformed JSON/Python, over-long input (> MAX_CHARS),
pathological nesting, NaN/Infinity or out-of-range numbers. `[]` parses to zero calls.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

from fcrm_ray.toolcall.native_calls import NativeFormatError, find_native_calls
from fcrm_ray.toolcall.schema import ToolCall

MAX_CHARS = 200_000  # longer outputs are rejected before any parsing (no call is that long)
MAX_DEPTH = 100  # nesting depth of decoded values; deeper is treated as malformed

# Keys an OpenAI/Hermes call object may carry besides its name and arguments.
_CALL_META_KEYS = {"id", "type", "index", "call_id", "status"}  # status: OpenAI Responses items
_ARG_KEYS = ("arguments", "parameters")


@dataclass(frozen=True)
class ParseResult:
    """`calls` is None when the output is not a (list of) tool call(s); `error` says why."""

    calls: list[ToolCall] | None
    format: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.calls is not None


class _ParseError(ValueError):
    """Internal: a reason the output is not a call. Never escapes `parse_calls`."""


def parse_calls(output: Any, tools: Sequence[Any] | None = None) -> ParseResult:
    """Parse model output (text, decoded JSON, or `ToolCall`s) into tool calls. Never raises.
    `tools` (optional `ToolSpec`s) only types the text values of XML-style native encodings."""
    try:
        if output is None:
            return ParseResult(None, "empty", "empty output")
        if isinstance(output, (bytes, bytearray)):
            output = output.decode("utf-8", errors="replace")
        if isinstance(output, str):
            return _parse_text(output, tools)
        if isinstance(output, (list, tuple, Mapping, ToolCall)):
            return ParseResult(_calls_from_obj(output, depth=0), "structured")
        return ParseResult(None, "unknown", f"cannot parse a {type(output).__name__} as tool calls")
    except _ParseError as e:
        fmt = "structured" if not isinstance(output, str) else "text"
        return ParseResult(None, fmt, str(e))
    except (RecursionError, MemoryError):
        return ParseResult(None, "unknown", "output is nested too deeply")
    except Exception as e:  # last line of defence: a parser bug must not crash a pipeline
        return ParseResult(None, "unknown", f"unparseable output ({type(e).__name__}: {e})")


# ----------------------------------------------------------------------------------------------
# Text: unwrap the surface, then parse the payload as JSON or Python
# ----------------------------------------------------------------------------------------------

_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)```", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
# End-of-turn / end-of-message tokens a raw completion may keep at its end (Llama, ChatML, Phi,
# Gemma, DeepSeek, Command-R, harmony's <|call|>): layout, not part of the calls.
_END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "<|end|>", "<|return|>",
               "<|call|>", "</s>", "<end_of_turn>", "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>")
_MISTRAL_PREFIX = "[TOOL_CALLS]"
_MISTRAL_ARGS_RE = re.compile(r"\s*([A-Za-z_][\w.\-]*)\[ARGS\]")


def _parse_text(text: str, tools: Sequence[Any] | None = None) -> ParseResult:
    if len(text) > MAX_CHARS:
        return ParseResult(None, "text", f"output too long ({len(text)} > {MAX_CHARS} characters)")
    # Everything up to the last </think> is reasoning (also when the chat template opened the
    # <think> block in the prompt). A plain split: a regex over unbalanced tags is quadratic.
    s = text.rsplit("</think>", 1)[1] if "</think>" in text else text
    s = _strip_end_tokens(s)
    if s.startswith("<think>"):  # unterminated reasoning: nothing after it can be a call
        return ParseResult(None, "text", "output is unfinished reasoning (<think> without </think>)")
    if not s:
        return ParseResult(None, "empty", "empty output")
    res = _parse_surface(s)
    if res.calls is None:  # model-native encodings get a say only where the generic reading fails
        return _parse_native(s, tools) or res
    return res


def _strip_end_tokens(s: str) -> str:
    """`s` stripped, without the end tokens it ends with (linear: only the tail is looked at)."""
    s = s.strip()
    while s.endswith(_END_TOKENS):
        s = s[:-len(next(t for t in _END_TOKENS if s.endswith(t)))].rstrip()
    return s


def _parse_native(s: str, tools: Sequence[Any] | None) -> ParseResult | None:
    """`native_calls.find_native_calls` as a ParseResult; None when no native encoding is there."""
    try:
        found = find_native_calls(s, tools)
    except NativeFormatError as e:
        return ParseResult(None, "native", str(e))
    if found is None:
        return None
    encoding, raw = found
    if not raw:
        if encoding == "functionary":  # only `>>>all` text: prose, as far as the verifier is concerned
            return ParseResult(None, "text", "no tool call found in the output (Functionary text only)")
        return ParseResult(None, f"native:{encoding}", f"{encoding} markers without a complete call")
    try:
        return ParseResult([_make_call(name, args, "arguments") for name, args in raw], f"native:{encoding}")
    except _ParseError as e:
        return ParseResult(None, f"native:{encoding}", str(e))


def _parse_surface(s: str) -> ParseResult:
    """JSON / Python payloads, bare or in their common wrappers (`s`: stripped, non-empty)."""
    if s.startswith(_MISTRAL_PREFIX):
        return _wrapped("mistral", lambda: _parse_mistral(s[len(_MISTRAL_PREFIX):].strip()))
    if s[0] in "[{":  # a bare payload; tags or fences inside it are argument text, not wrappers
        try:
            calls, fmt = _parse_payload(s)
            return ParseResult(calls, fmt)
        except _ParseError as e:
            return ParseResult(None, _guess_format(s), str(e))
    if "<tool_call>" in s:
        return _wrapped("tool_call", lambda: _parse_tool_call_tags(s))
    if s.startswith(_PYTHON_TAG):
        body = s[len(_PYTHON_TAG):].strip()
        return _wrapped("python_tag", lambda: _parse_payload(body))
    if "```" in s:
        blocks = _FENCE_RE.findall(s)
        if blocks:
            return _wrapped("fenced", lambda: _parse_fenced(blocks))
        return ParseResult(None, "fenced", "unterminated ``` code fence")
    try:
        calls, fmt = _parse_payload(s)
        return ParseResult(calls, fmt)
    except _ParseError as e:
        if _looks_like_python_call(s):
            return ParseResult(None, "python", str(e))
        return _parse_embedded(s)


def _wrapped(wrapper: str, parse) -> ParseResult:
    """Run a payload parser (a no-argument callable) and label the result `wrapper:format`."""
    try:
        calls, fmt = parse()
        return ParseResult(calls, f"{wrapper}:{fmt}")
    except _ParseError as e:
        return ParseResult(None, wrapper, str(e))


def _parse_tool_call_tags(s: str) -> tuple[list[ToolCall], str]:
    calls: list[ToolCall] = []
    fmts = set()
    for i, body in enumerate(_TOOL_CALL_RE.findall(s)):
        body = body.strip()
        if not body:
            raise _ParseError(f"<tool_call> block {i} is empty")
        try:
            got, fmt = _parse_payload(body)
        except _ParseError as e:
            raise _ParseError(f"<tool_call> block {i}: {e}") from None
        calls.extend(got)
        fmts.add(fmt)
    return calls, "+".join(sorted(fmts)) or "json"


def _parse_mistral(body: str) -> tuple[list[ToolCall], str]:
    if _MISTRAL_ARGS_RE.match(body):  # v11+ tokenizer: name[ARGS]{json} (repeated)
        calls = []
        parts = re.split(r"\[TOOL_CALLS\]", body)
        for part in parts:
            part = part.strip()
            if not part:
                continue
            m = _MISTRAL_ARGS_RE.match(part)
            if not m:
                raise _ParseError(f"[TOOL_CALLS] entry without [ARGS]: {part[:60]!r}")
            args = _json_loads(part[m.end():].strip())
            calls.append(_make_call(m.group(1), args, "[ARGS]"))
        return calls, "json"
    return _parse_payload(body)


def _parse_fenced(blocks: list[tuple[str, str]]) -> tuple[list[ToolCall], str]:
    calls: list[ToolCall] = []
    fmts = []
    for i, (_lang, body) in enumerate(blocks):
        body = body.strip()
        try:
            got, fmt = _parse_payload(body)
        except _ParseError as e:
            raise _ParseError(f"code block {i}: {e}") from None
        calls.extend(got)
        fmts.append(fmt)
    return calls, "+".join(sorted(set(fmts))) or "json"


def _parse_embedded(s: str) -> ParseResult:
    """Chatter around one block: payload starts at the first `[` or `{` (see module docstring)."""
    starts = [i for i in (s.find("["), s.find("{")) if i >= 0]
    if not starts:
        return ParseResult(None, "text", "no tool call found in the output (plain text)")
    start = min(starts)
    try:
        value, _end = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).raw_decode(s, start)
    except json.JSONDecodeError:
        value = None
    except ValueError as e:  # non-finite numbers
        return ParseResult(None, "embedded:json", str(e))
    try:
        if value is not None:
            return ParseResult(_calls_from_obj(value, depth=0), "embedded:json")
        end = max(s.rfind("]"), s.rfind("}"))
        if end <= start:
            raise _ParseError("unbalanced brackets")
        calls, fmt = _parse_python(s[start:end + 1])
        return ParseResult(calls, f"embedded:{fmt}")
    except _ParseError as e:
        return ParseResult(None, "embedded", f"no tool call found in the output ({e})")


_PY_CALL_START = re.compile(r"[A-Za-z_][\w.]*\s*\(")


def _looks_like_python_call(s: str) -> bool:
    return bool(_PY_CALL_START.match(s))


def _guess_format(s: str) -> str:
    if s[0] == "{":
        return "json"
    if s[0] == "[":
        return "json" if s[1:].lstrip()[:1] in ("{", "]", '"') else "python"
    return "python"


def _parse_payload(s: str) -> tuple[list[ToolCall], str]:
    """A bare payload: JSON first, then Python (calls, or a Python-literal dict/list)."""
    s = s.strip()
    if not s:
        raise _ParseError("empty payload")
    json_error = None
    if s[0] in "[{\"":
        try:
            value = _json_loads(s)
            if isinstance(value, str) and value.strip()[:1] in ("[", "{"):  # double-encoded output
                value = _json_loads(value)
            return _calls_from_obj(value, depth=0), "json"
        except _ParseError as e:
            json_error = e
        objects = _json_object_sequence(s) if s[0] == "{" else None
        if objects is not None:
            return _calls_from_obj(objects, depth=0), "json"
    try:
        return _parse_python(s)
    except _ParseError as e:
        # Report the JSON error for JSON-looking text unless the text is clearly Python.
        if json_error is not None and not (s[0] == "[" and _looks_like_python_call(s[1:].lstrip())):
            raise json_error from None
        raise e from None


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} is not valid JSON")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text[:30]} is out of range")
    return v


def _json_loads(s: str) -> Any:
    try:
        return json.loads(s, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise _ParseError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise _ParseError("JSON is nested too deeply") from None
    except ValueError as e:  # non-finite numbers, integers over Python's digit limit
        raise _ParseError(f"invalid JSON: {e}") from None


_SEQ_SEP = re.compile(r"\s*;?\s*")


def _json_object_sequence(s: str) -> list | None:
    """Several JSON call objects one after another, separated by `;` or whitespace (Llama 3.x's
    parallel calls: `{"name": ...}; {"name": ...}`); None unless the whole text is such a sequence."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
    objects, i = [], 0
    try:
        while i < len(s):
            value, i = decoder.raw_decode(s, i)
            if not isinstance(value, dict):
                return None
            objects.append(value)
            i = _SEQ_SEP.match(s, i).end()
    except (ValueError, RecursionError):
        return None
    return objects if len(objects) > 1 else None


# ----------------------------------------------------------------------------------------------
# Decoded objects -> calls
# ----------------------------------------------------------------------------------------------


def _calls_from_obj(obj: Any, depth: int) -> list[ToolCall]:
    """Calls from a decoded JSON/Python value (list of calls, one call, or a message)."""
    if depth > 4:
        raise _ParseError("call objects are nested too deeply")
    if isinstance(obj, ToolCall):
        return [_make_call(obj.name, obj.arguments, "arguments")]
    if isinstance(obj, (list, tuple)):
        if any(_is_side_item(x) for x in obj) and not all(_is_side_item(x) for x in obj):
            obj = [x for x in obj if not _is_side_item(x)]  # text / reasoning beside the calls
        calls: list[ToolCall] = []
        for i, item in enumerate(obj):
            if not isinstance(item, (Mapping, ToolCall)):
                raise _ParseError(f"element {i} is a {type(item).__name__}, not a call object")
            calls.extend(_calls_from_obj(item, depth + 1))
        return calls
    if isinstance(obj, Mapping):
        return _calls_from_dict(obj, depth)
    raise _ParseError(f"a JSON {type(obj).__name__} is not a call object")


def _calls_from_dict(d: Mapping, depth: int) -> list[ToolCall]:
    if "tool_calls" in d:  # OpenAI assistant message
        tc = d["tool_calls"]
        if tc:
            if not isinstance(tc, list):
                raise _ParseError("`tool_calls` must be a list")
            return _calls_from_obj(tc, depth + 1)
        content = d.get("content")
        if isinstance(content, str) and content.strip():
            return _content_calls(content, depth)
        raise _ParseError("message has no tool_calls")
    if "role" in d and "content" in d and set(d) <= {"role", "content", "name", "id", "type", "model", "stop_reason"}:
        return _content_calls(d["content"], depth)  # a chat message without tool_calls: its content holds the calls
    if isinstance(d.get("function_call"), Mapping) and "name" in d["function_call"]:
        # the legacy OpenAI assistant message: {"role", "content": null, "function_call": {...}}
        extra = set(d) - {"function_call", "role", "content"}
        if extra:
            raise _ParseError(f"unexpected keys next to `function_call`: {sorted(extra)}")
        return _calls_from_obj(d["function_call"], depth + 1)
    if "function" in d and isinstance(d["function"], Mapping) and "name" not in d:
        extra = set(d) - {"function"} - _CALL_META_KEYS
        if extra:
            raise _ParseError(f"unexpected keys next to `function`: {sorted(extra)}")
        return _calls_from_obj(d["function"], depth + 1)
    if "name" in d or "tool_name" in d:
        return [_call_object(d)]
    if len(d) == 1:  # BFCL style {"fn": {"a": 1}}
        (name, args), = d.items()
        if isinstance(args, Mapping):
            return [_make_call(name, args, name)]
    raise _ParseError(f"object with keys {sorted(map(str, d))[:5]} is not a call")


def _content_calls(content: Any, depth: int) -> list[ToolCall]:
    """The calls a message's `content` holds: text (any surface) or a list of content items."""
    if isinstance(content, str):
        res = _parse_text(content)
        if res.calls is None:
            raise _ParseError(f"message content: {res.error}")
        return res.calls
    if isinstance(content, list):
        return _calls_from_obj(content, depth + 1)
    raise _ParseError("message has no tool calls")


def _is_side_item(x: Any) -> bool:
    """A content item next to the calls that is not one: Anthropic `text` blocks, OpenAI Responses
    `reasoning` and assistant `message` items."""
    if not isinstance(x, Mapping) or "name" in x:
        return False
    kind = x.get("type")
    return kind in ("text", "reasoning") or (kind == "message" and x.get("role") == "assistant")


def _call_object(d: Mapping) -> ToolCall:
    """One call object: `name` (Cohere: `tool_name`) and `arguments` / `parameters` (Anthropic's
    `tool_use` blocks: `input`), plus id/type metadata."""
    name_keys = [k for k in ("name", "tool_name") if k in d]
    arg_keys = _ARG_KEYS + (("input",) if d.get("type") == "tool_use" else ())
    extra = set(d) - {*name_keys, *arg_keys} - _CALL_META_KEYS
    if extra:
        raise _ParseError(f"call object has unexpected keys {sorted(extra)}")
    if len(name_keys) > 1:
        raise _ParseError("call object has both `name` and `tool_name`")
    present = [k for k in arg_keys if k in d]
    if len(present) > 1:
        raise _ParseError(f"call object has more than one of {present}")
    args = d[present[0]] if present else {}
    return _make_call(d[name_keys[0]], args, present[0] if present else "arguments")


def _make_call(name: Any, args: Any, where: str) -> ToolCall:
    if not isinstance(name, str) or not name.strip():
        raise _ParseError(f"function name must be a non-empty string, got {name!r:.60}")
    if args is None or args == "":
        args = {}
    if isinstance(args, str):  # OpenAI: arguments is a JSON string (sometimes double-encoded)
        args = _json_loads(args)
        if isinstance(args, str):
            args = _json_loads(args)
    if not isinstance(args, Mapping):
        raise _ParseError(f"`{where}` of {name!r} must be an object, got {type(args).__name__}")
    for k in args:
        if not isinstance(k, str):
            raise _ParseError(f"argument name {k!r} of {name!r} is not a string")
    _check_value(args, 0)
    return ToolCall(name.strip(), dict(args))


def _check_value(v: Any, depth: int) -> None:
    """Reject values JSON cannot carry (NaN, exotic objects) and pathological depth."""
    if depth > MAX_DEPTH:
        raise _ParseError("argument value is nested too deeply")
    if isinstance(v, float) and not math.isfinite(v):
        raise _ParseError("non-finite number in arguments")
    if isinstance(v, Mapping):
        for k, x in v.items():
            if not isinstance(k, str):
                raise _ParseError(f"dict key {k!r} is not a string")
            _check_value(x, depth + 1)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _check_value(x, depth + 1)
    elif v is not None and not isinstance(v, (str, int, float, bool)):
        raise _ParseError(f"unsupported value type {type(v).__name__}")


# ----------------------------------------------------------------------------------------------
# Python syntax: parsed with `ast`, converted by a literal-only walker (nothing is evaluated)
# ----------------------------------------------------------------------------------------------

_JSON_NAMES = {"true": True, "false": False, "null": None}


def _parse_python(s: str) -> tuple[list[ToolCall], str]:
    try:
        tree = ast.parse(s.strip(), mode="exec")
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes
        raise _ParseError(f"invalid Python call syntax: {getattr(e, 'msg', e)}") from None
    except (RecursionError, MemoryError):
        raise _ParseError("Python expression is nested too deeply") from None
    if not tree.body:
        raise _ParseError("no call found")
    nodes: list[ast.expr] = []
    for stmt in tree.body:  # `f(a=1)\ng(b=2)` and `f(a=1); g(b=2)` are several statements
        if not isinstance(stmt, ast.Expr):
            raise _ParseError(f"a {type(stmt).__name__} statement is not a call")
        nodes.append(stmt.value)
    if len(nodes) == 1 and not _is_call_container(nodes[0]):
        # A Python-literal dict/list (single-quoted JSON): read it like JSON.
        return _calls_from_obj(_literal(nodes[0], 0), depth=0), "python_literal"
    calls = []
    for node in nodes:
        elts = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        for e in elts:
            if not isinstance(e, ast.Call):
                raise _ParseError(f"list element `{_snippet(e)}` is not a function call")
            calls.append(_call_from_node(e))
    return calls, "python"


def _is_call_container(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        return True
    return isinstance(node, (ast.List, ast.Tuple)) and (not node.elts or isinstance(node.elts[0], ast.Call))


def _dotted_name(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise _ParseError(f"`{_snippet(node)}` is not a function name")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _call_from_node(node: ast.Call) -> ToolCall:
    name = _dotted_name(node.func)
    if node.args:
        raise _ParseError(f"positional argument in call to {name!r}: BFCL-style calls need keyword arguments")
    args = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise _ParseError(f"`**{_snippet(kw.value)}` in call to {name!r} is not allowed")
        if kw.arg in args:
            raise _ParseError(f"argument {kw.arg!r} repeated in call to {name!r}")
        args[kw.arg] = _literal(kw.value, 0)
    return ToolCall(name, args)


def _literal(node: ast.expr, depth: int) -> Any:
    """`ast.literal_eval` restricted to JSON-like values; raises _ParseError on anything else."""
    if depth > MAX_DEPTH:
        raise _ParseError("argument value is nested too deeply")
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (str, bool, int)):
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise _ParseError("non-finite number in arguments")
            return v
        raise _ParseError(f"unsupported constant `{_snippet(node)}`")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand, depth + 1)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _ParseError(f"sign applied to a non-number in `{_snippet(node)}`")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):  # tuples become lists, as after a JSON round trip
        return [_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise _ParseError("`**` unpacking inside a dict is not allowed")
            key = _literal(k, depth + 1)
            if not isinstance(key, str):
                raise _ParseError(f"dict key `{_snippet(k)}` is not a string")
            out[key] = _literal(v, depth + 1)
        return out
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.Name):
        raise _ParseError(f"bare name `{node.id}` as a value (unquoted string?)")
    if isinstance(node, ast.Call):
        raise _ParseError(f"nested call `{_snippet(node)}` as an argument value")
    raise _ParseError(f"`{_snippet(node)}` is not a literal value ({type(node).__name__})")


def _snippet(node: ast.AST, limit: int = 60) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
