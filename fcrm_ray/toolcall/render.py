"""Render (tools, conversation, candidate call) into the text a reward model reads.

The same function is used at train time and at score time, so whatever a model learns about the
format it sees again when it is scored. The reward-model input is `prompt + completion`; the
completion is the candidate call (and nothing else), which lets training truncate the prompt side
(the tool catalog) while keeping the call intact.

Candidate calls are parsed with `parse_calls` and rendered canonically: a JSON list, a Python call
string and a `<tool_call>` block that mean the same calls render to the same text, so the output
*surface* never leaks into the score. Arguments are ordered by the tool's schema (then by name), so
argument order does not either. Unparseable output is rendered verbatim as assistant content.

Two renderings:

1. Tokenizers with a tool-aware chat template (Qwen3 and friends): the conversation plus an
   assistant turn with `tool_calls` goes through `tokenizer.apply_chat_template(..., tools=...)`.
   The prompt is the conversation rendered with `add_generation_prompt=True`; the completion is the
   rest of the full rendering. If a template breaks that prefix property the split falls back to
   the longest common prefix of the two renderings.

2. Everything else (BERT-style encoders such as all-MiniLM-L6-v2): a compact plain-text template
   (MiniLM has a 512-token limit). The catalog is one line per tool; the candidate is written as a
   filled-in form of its tool's schema::

       [TOOLS] gcd(a: integer; b: integer; verbose?: boolean = false) - Greatest common divisor.
       lcm(a: integer; b: integer) - Least common multiple.
       [USER] What is the gcd of 12 and 15?
       [CALL] gcd
         a: integer = 12.0 (float) - First number.
         b: integer = 12 - Second number.
         verbose?: boolean = (not given; default false)
       (numbers in request not used: 15)

   Catalog: required parameters bare, optional ones with `?`, enums in braces, defaults after
   `=`. Form (`call_form`): one line per schema parameter with its type, the given value as a JSON
   literal or `(not given)`, the value's kind when the schema type does not name it (`kind_mark`:
   `(float)`, `(string)`, ...) and the first words of its description; then `(not a
   parameter)` lines for arguments the schema lacks, and `(not in [TOOLS])` after an unknown
   function. After the last call, the numbers of the user's request that no argument carries
   (`Grounding.unused_numbers`): a value taken from the wrong span of the request, a dropped call
   or parameter leaves one. (Per-value `(in request)` / `(not in request)` marks, a literal
   substring test, were removed: real answers follow conventions the request does not spell
   ("GB" for "UK", "San Francisco, CA", "AAPL" for "Apple"), the marks taught the RM to prefer
   the literal copy; without them real-output validation pairs went 0.770 -> 0.816, while
   held-out mutation pairs (made-up values) lost 6 points; benchmarks/RESULTS.md. A names line of the same kind, capitalised request words that no
   argument carries, was tried and removed: validation tied, and the CPU quickstart's held-out
   pairwise fell 0.908 -> 0.823 with it; benchmarks/RESULTS.md.) A very wide schema's unset
   optional parameters share one line, so its form fits the encoder. Each value sits next to what the schema says about it, and an absent
   parameter is as visible as a present one, so a small encoder can compare value, type and
   presence without attending across the whole catalog. Measured on MiniLM (held-out test pairs):
   0.565 with the call on one line after a catalog with parameter descriptions, 0.750 with the
   form (64 steps); 0.843 -> 0.910 from adding the kind marks and the unused-numbers line
   (96 steps; type errors 0.75 -> 0.98, dropped calls 0.38 -> 0.75). Several calls are separated
   by `[CALL]`; roles are `[SYSTEM]`, `[USER]`, `[ASSISTANT]`, `[TOOL]`.

EOS: when the tokenizer has an `eos_token`, the completion ends with exactly one EOS (a template's
trailing whitespace is dropped first), so a causal-LM reward is read at the EOS token. Encoders
(no eos_token) get their `[SEP]` from the tokenizer's own special-token handling instead.

Pure core: no torch, transformers or Ray imports; `tokenizer` is any object with `chat_template`,
`eos_token` and `apply_chat_template`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from fcrm_ray.toolcall.schema import ToolCall, ToolSpec, content_text, normalize_tools

TOOL_DESC_WORDS = 40
# The call's form (the completion, never truncated) is kept short: the full enum lists are in the
# catalog line, and a parameter description's first words carry its format hint ("YYYY-MM-DD",
# "e.g. 'Paris, FR'"); the rest is mostly prose that costs tokens.
FORM_DESC_WORDS = 8
FORM_ENUM_VALUES = 8
FORM_MAX_CHARS = 480  # per call


@dataclass(frozen=True)
class Rendered:
    """A reward-model input split at the candidate call: `prompt + completion` is the full text."""

    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def render(tokenizer: Any, tools: Any, conversation: Any, output_text: Any) -> Rendered:
    """Render one candidate call for reward scoring (see the module docstring for the format).

    tools: list of ToolSpec / tool dicts (any format `normalize_tools` accepts) or a JSON string;
    conversation: list of chat messages or a JSON string; output_text: the raw candidate."""
    specs = normalize_tools(tools) if tools not in (None, "") else []
    messages = _messages(conversation)
    calls = _parse(output_text, specs)
    if calls is not None:
        calls = [_ordered(c, specs) for c in calls]
    raw = output_text if isinstance(output_text, str) else json.dumps(output_text, ensure_ascii=False, default=str)
    if has_tool_template(tokenizer):
        prompt, completion = _render_chat(tokenizer, specs, messages, calls, raw)
    else:
        prompt, completion = _render_plain(specs, messages, calls, raw)
    return Rendered(prompt, _with_eos(completion, getattr(tokenizer, "eos_token", None)))


def has_tool_template(tokenizer: Any) -> bool:
    """True if the tokenizer's chat template renders `tools` (and so, by convention, tool_calls)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):  # named templates: the tool one if present
        template = template.get("tool_use") or template.get("default")
    return isinstance(template, str) and "tools" in template and hasattr(tokenizer, "apply_chat_template")


# --- parsing and canonical calls -------------------------------------------------------------

def _parse(output: Any, specs: Sequence[ToolSpec] = ()) -> list[ToolCall] | None:
    from fcrm_ray.toolcall.parse import parse_calls  # lazy: parse is a sibling in the pure core

    return parse_calls(output, specs).calls


def _ordered(call: ToolCall, specs: Sequence[ToolSpec]) -> ToolCall:
    """Arguments in the tool's schema order, unknown ones after in name order."""
    spec = next((t for t in specs if t.name == call.name), None)
    order = list(spec.properties) if spec else []
    args = call.arguments if isinstance(call.arguments, Mapping) else {}
    keys = [k for k in order if k in args] + sorted(k for k in args if k not in order)
    return ToolCall(call.name, {k: args[k] for k in keys})


def _messages(conversation: Any) -> list[dict]:
    if conversation in (None, ""):
        return []
    if isinstance(conversation, str):
        conversation = json.loads(conversation)
    if isinstance(conversation, Mapping):
        conversation = [conversation]
    out = []
    for m in conversation:
        m = dict(m)
        m["content"] = content_text(m.get("content"))
        m["role"] = _ROLE_ALIASES.get(m.get("role"), m.get("role"))
        out.append(m)
    return out


# Roles clients use for the four the renderings (and chat templates) know: OpenAI's `developer`
# is its system turn; `function` (OpenAI's legacy) and `ipython` (Llama) carry tool results.
_ROLE_ALIASES = {"developer": "system", "function": "tool", "ipython": "tool"}


def _with_eos(completion: str, eos: str | None) -> str:
    if not eos:
        return completion
    completion = completion.rstrip()
    return completion if completion.endswith(eos) else completion + eos


# --- tool-aware chat templates ----------------------------------------------------------------

def _render_chat(tokenizer: Any, specs: Sequence[ToolSpec], messages: list[dict],
                 calls: list[ToolCall] | None, raw: str) -> tuple[str, str]:
    openai_tools = [t.to_openai() for t in specs] or None
    if calls is None:
        turn = {"role": "assistant", "content": raw}
    else:
        turn = {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]}
    prompt = tokenizer.apply_chat_template(messages, tools=openai_tools, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages + [turn], tools=openai_tools, tokenize=False)
    if full.startswith(prompt):
        return prompt, full[len(prompt):]
    # A template that renders the generation prompt differently from a finished turn: split at
    # the longest common prefix so prompt + completion is still exactly the full rendering.
    cut = len(os.path.commonprefix([prompt, full]))
    return full[:cut], full[cut:]


# --- plain-text template for encoders ---------------------------------------------------------

def _words(text: str, n: int) -> str:
    parts = " ".join(str(text).split()).split(" ")
    return " ".join(parts[:n]) + (" ..." if len(parts) > n else "")


def _type_str(schema: Mapping, max_enum: int = 0) -> str:
    """`string {a|b}`, `array[integer]`...; `max_enum` > 0 lists at most that many enum values."""
    t = schema.get("type")
    if isinstance(t, list):
        t = "|".join(str(x) for x in t)
    t = t or "any"
    if t == "array" and isinstance(schema.get("items"), Mapping):
        t = f"array[{_type_str(schema['items'], max_enum)}]"
    if isinstance(schema.get("enum"), list):
        values = [_value(v) if not isinstance(v, str) else v for v in schema["enum"]]
        if max_enum and len(values) > max_enum:
            values = values[:max_enum] + ["..."]
        t += " {" + "|".join(values) + "}"
    return t


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def tool_line(spec: ToolSpec) -> str:
    """One tool of the catalog in the compact plain-text form (parameter descriptions are not
    here: the called tool's are in the call's form)."""
    required = set(spec.required)
    params = []
    for name, schema in spec.properties.items():
        schema = schema if isinstance(schema, Mapping) else {}
        p = f"{name}{'' if name in required else '?'}: {_type_str(schema)}"
        if "default" in schema and name not in required:
            p += f" = {_value(schema['default'])}"
        params.append(p)
    head = f"{spec.name}({'; '.join(params)})"
    if spec.description:
        head += f" - {_words(spec.description, TOOL_DESC_WORDS)}"
    return head


def call_text(calls: Iterable[ToolCall]) -> str:
    """`name(a=1, b="x"); other()` with JSON-literal values."""
    return "; ".join(f"{c.name}({', '.join(f'{k}={_value(v)}' for k, v in c.arguments.items())})" for c in calls)


def _message_text(m: Mapping) -> str:
    role = str(m.get("role", "user")).upper()
    text = m.get("content") or ""
    tool_calls = m.get("tool_calls") or []
    if tool_calls:
        calls = []
        for tc in tool_calls:
            fn = tc.get("function", tc) if isinstance(tc, Mapping) else {}
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {"_raw": args}
            calls.append(ToolCall(str(fn.get("name", "")), args if isinstance(args, Mapping) else {"_raw": args}))
        text = (text + " " if text else "") + call_text(calls)
    return f"[{role}] {text}"


def _leaf_values(calls: Sequence[ToolCall]) -> Iterable[Any]:
    """Every scalar inside the calls' arguments (through nested objects and lists)."""
    stack: list[Any] = [c.arguments for c in reversed(calls)]
    while stack:
        v = stack.pop()
        if isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        else:
            yield v


class Grounding:
    """The numbers the user wrote (`5,000` = 5000, `6%` also 0.06), to list those that no argument
    carries (`unused_numbers`). Numbers, not words: a number is copied literally or not at all,
    while a name or place is often rewritten by convention ("GB" for "UK")."""

    # a number: optional sign (not the dash of a range: "3-5" is 3 and 5), digits with thousands
    # commas (not a trailing comma), decimals, optional percent sign (group 1)
    _NUM = re.compile(r"(?<![\d.])-?\d(?:[\d,]*\d)?(?:\.\d+)?(%?)")

    def __init__(self, messages: Sequence[Mapping]):
        # (surface, value, is_percent) of the numbers in the user's messages, in order
        self.user_numbers = [n for m in messages if str(m.get("role", "user")) == "user"
                             for n in self._parse_numbers(str(m.get("content") or ""))]

    @classmethod
    def _parse_numbers(cls, text: str) -> list[tuple[str, float, bool]]:
        """(surface, value, is_percent) of each number written in `text`."""
        out = []
        for m in cls._NUM.finditer(text):
            try:
                out.append((m.group(0), float(m.group(0).rstrip("%").replace(",", "")), bool(m.group(1))))
            except ValueError:
                continue
        return out

    def unused_numbers(self, calls: Sequence[ToolCall], limit: int = 8) -> list[str]:
        """Numbers the user wrote that no argument of `calls` carries (compared by absolute
        value, so "3-5 days" offers 5; a number inside a string argument counts as carried:
        "x**3"), in request order, at most `limit`. A value taken from the wrong span, a dropped
        call or parameter leaves a request number unused."""
        carried: set[float] = set()
        for v in _leaf_values(calls):
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, float)):
                carried.add(abs(float(v)))
            elif isinstance(v, str):
                carried.update(abs(x) for _, x, _ in self._parse_numbers(v))
        out: list[str] = []
        for surface, x, percent in self.user_numbers:
            used = abs(x) in carried or (percent and abs(round(x / 100, 12)) in carried)
            if not used and surface not in out:
                out.append(surface)
        return out[:limit]


_KIND_MATCHES = {"integer": {"integer"}, "number": {"integer", "float"}, "string": {"string"},
                 "boolean": {"boolean"}, "array": {"array"}, "object": {"object"}, "null": {"null"}}


def value_kind(value: Any) -> str:
    """`verify.json_type`, but a float is a float even when it is whole (`40.0` is what a model
    wrote instead of `40`): integer / float / string / boolean / array / object / null."""
    from fcrm_ray.toolcall.verify import json_type  # lazy, like parse: siblings in the pure core

    kind = json_type(value)
    return "float" if kind == "number" else kind


def kind_mark(value: Any, schema: Mapping) -> str:
    """` (float)` after a value whose kind is not what its schema type names (a `number` takes
    integers and floats); nothing when they agree or the schema type is absent, a union or
    unknown. Spells out what a small encoder reads poorly from quotes and a trailing `.0`."""
    expected = schema.get("type")
    kind = value_kind(value)
    if not isinstance(expected, str) or expected not in _KIND_MATCHES or kind in _KIND_MATCHES[expected]:
        return ""
    return f" ({kind})"


def call_form(call: ToolCall, specs: Sequence[ToolSpec], descriptions: bool = True, compact: bool = False) -> str:
    """One call as a filled-in form of its tool's schema: the function name, then one line per
    schema parameter (given value, or `(not given)` with the default), then arguments the schema
    does not have. Puts each value next to its parameter's type (and, with `descriptions`, the
    first words of its description: for parameters that are set or required; an unset optional
    one gets name, type and default only), and makes an absent parameter as visible as a present
    one."""
    spec = next((t for t in specs if t.name == call.name), None)
    if spec is None:
        return "\n".join([f"{call.name} (not in [TOOLS])"]
                         + [f"  {k} = {_value(v)}" for k, v in call.arguments.items()])
    required = set(spec.required)
    lines = [call.name]
    unset: list[str] = []
    for name, schema in spec.properties.items():
        schema = schema if isinstance(schema, Mapping) else {}
        if compact and name not in call.arguments and name not in required:
            unset.append(name)  # one summary line below instead of a line each
            continue
        if name in call.arguments:
            given = _value(call.arguments[name]) + kind_mark(call.arguments[name], schema)
        else:
            given = "(not given" + (f"; default {_value(schema['default'])})" if "default" in schema else ")")
        line = f"  {name}{'' if name in required else '?'}: {_type_str(schema, FORM_ENUM_VALUES)} = {given}"
        if descriptions and schema.get("description") and (name in call.arguments or name in required):
            line += f" - {_words(schema['description'], FORM_DESC_WORDS)}"
        lines.append(line)
    if unset:
        lines.append("  (optional, not given: " + ", ".join(unset) + ")")
    lines += [f"  {k} (not a parameter) = {_value(v)}" for k, v in call.arguments.items()
              if k not in spec.properties]
    return "\n".join(lines)


def calls_form(calls: Sequence[ToolCall], specs: Sequence[ToolSpec]) -> str:
    """All calls' forms, `[CALL]`-separated. Parameter descriptions go with the first call of each
    function only, and a call whose form would pass `FORM_MAX_CHARS` (a wide schema) is written
    without them, and if still too long with its unset optional parameters named on one line, so
    the completion stays well inside a 512-token encoder. Each call's text
    depends on that call and the calls before it, never on the calls after it: an extra or a
    missing call does not change how the others are written. A character rule, not a token
    count: the same text at train and score time whatever the tokenizer."""
    seen: set[str] = set()
    forms = []
    for c in calls:
        form = call_form(c, specs, descriptions=c.name not in seen)
        if len(form) > FORM_MAX_CHARS:
            form = call_form(c, specs, descriptions=False)
        if len(form) > FORM_MAX_CHARS:  # a very wide schema: unset optional parameters on one line
            form = call_form(c, specs, descriptions=False, compact=True)
        seen.add(c.name)
        forms.append(form)
    return "\n[CALL] ".join(forms)


UNPARSED_CHARS = 400  # of an output our parser cannot read, in the plain-text form


def _render_plain(specs: Sequence[ToolSpec], messages: list[dict], calls: list[ToolCall] | None,
                  raw: str) -> tuple[str, str]:
    lines = ["[TOOLS] " + "\n".join(tool_line(t) for t in specs)] if specs else []
    lines += [_message_text(m) for m in messages]
    prompt = "\n".join(lines + ["[CALL]"])
    if calls is None:  # says so, and keeps a long unparsable answer (prose, a second copy) scorable
        text = " ".join(raw.split())
        completion = " (not a parsable call) " + (text[:UNPARSED_CHARS] + " ..." if len(text) > UNPARSED_CHARS else text)
    elif not calls:
        completion = " (no call)"
    else:
        completion = " " + calls_form(calls, specs)
        unused = Grounding(messages).unused_numbers(calls)
        if unused:
            completion += "\n(numbers in request not used: " + ", ".join(unused) + ")"
    return prompt, completion
