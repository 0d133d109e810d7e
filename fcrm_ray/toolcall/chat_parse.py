"""Read a policy's chat-template-rendered conversation back into tools, messages and response.

RL frameworks (OpenRLHF, verl, ...) send a reward server what they have: the prompt as the
policy's chat template rendered it (with `tools=`) and the sampled response as text. To score that
through the same rendering path as training, the reward server needs the structured pieces again:
the tool catalog, the conversation before the response, and the response itself (whose tool calls
`fcrm_ray.toolcall.parse.parse_calls` reads). `parse_rendered_chat(prompt, response)` does that
for the template families people train tool-calling policies with:

- "qwen" (Qwen2.5 / Qwen3): ChatML turns `<|im_start|>role\\n...<|im_end|>`; the catalog is one JSON
  object per line inside `<tools>...</tools>` in the system turn, after a "# Tools" header; tool
  results come back as a user turn of `<tool_response>` blocks.
- "hermes" (Hermes-2-Pro and vLLM's hermes template): ChatML; a boilerplate system turn "You are a
  function calling AI model ... <tools> {...} </tools> ...". Its descriptions are pasted into the
  JSON unescaped (raw newlines, sometimes quotes), so the catalog is decoded leniently.
- "llama3" (Llama-3.1 / 3.2 JSON tool calling): `<|start_header_id|>role<|end_header_id|>\\n\\n
  ...<|eot_id|>`; the tools are pretty-printed JSON objects in the first user turn (default) or
  the system turn, after "... Do not use variables."; tool results are `ipython` turns.
- "mistral" (v0.3 style): `[AVAILABLE_TOOLS] [...][/AVAILABLE_TOOLS]` before the last
  `[INST] ... [/INST]`; calls as `[TOOL_CALLS] [...]`, results as `[TOOL_RESULTS] ...`. The
  template folds the system prompt into the last user turn, so it comes back as user text.
- "json" (plain): a JSON list (or run of objects) of tool specs anywhere in the prompt; the rest of
  the prompt is one user message.

`family="auto"` picks the family from the prompt's markers (`detect_family`). If a family's own
catalog slot is empty, a JSON list of tools inside any message is used instead (users who paste the
catalog into the user turn). No catalog at all raises `ChatParseError`.

Pure core: no Ray, torch or transformers imports; nothing in the text is evaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fcrm_ray.toolcall.parse import parse_calls

FAMILIES = ("qwen", "hermes", "llama3", "mistral", "json")
_ALIASES = {
    "qwen2": "qwen", "qwen2.5": "qwen", "qwen25": "qwen", "qwen3": "qwen", "chatml": "qwen",
    "hermes2": "hermes", "hermes-2-pro": "hermes",
    "llama": "llama3", "llama3.1": "llama3", "llama3.2": "llama3", "llama-3": "llama3", "llama31": "llama3",
    "mistral-v0.3": "mistral", "plain": "json", "plain_json": "json",
}

# Tokens that close the assistant turn (or pad after it) and are not part of the response text.
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "</s>", "<|end|>")
# Headers of an assistant turn a caller may leave at the start of the response.
_ASSISTANT_HEADERS = ("<|im_start|>assistant\n", "<|start_header_id|>assistant<|end_header_id|>\n\n")


class ChatParseError(ValueError):
    """A rendered prompt that cannot be read back into a tool catalog (or a bad `family`)."""


@dataclass
class ParsedChat:
    """The structured pieces of one rendered (prompt, response).

    tools: tool specs as dicts (OpenAI `{"type": "function", "function": {...}}` or bare
    `{"name", "description", "parameters"}`), for `schema.normalize_tools`; messages: the
    conversation before the response (`role` + `content`; earlier assistant turns that made calls
    also carry OpenAI `tool_calls`); response: the assistant text after the generation prompt, end
    tokens stripped; family: the template family used; prefill: assistant text the prompt already
    opened the turn with (Qwen3's empty `<think>` block when thinking is off), not part of `response`;
    notes: how the catalog was found when not in the template's own slot (for logs)."""

    tools: list[dict]
    messages: list[dict]
    response: str
    family: str
    prefill: str = ""
    notes: list[str] = field(default_factory=list)


def canonical_family(family: str) -> str:
    """"auto" or a family name / alias -> the canonical name; ChatParseError names the choices."""
    f = str(family or "auto").strip().lower()
    if f == "auto" or f in FAMILIES:
        return f
    if f in _ALIASES:
        return _ALIASES[f]
    raise ChatParseError(f"unknown chat template family {family!r}; expected 'auto' or one of {list(FAMILIES)}")


def detect_family(text: str) -> str:
    """The template family whose markers `text` carries (a rendered prompt, or a chat template's
    source); "json" when none does."""
    text = text or ""
    # A rendered prompt opens with its family's first marker (after BOS); trust that over markers
    # quoted inside the conversation. A template's source opens with jinja, so it falls through.
    head = text.lstrip()
    for bos in ("<|begin_of_text|>", "<s>"):
        head = head[len(bos):].lstrip() if head.startswith(bos) else head
    for marker, fam in (("<|im_start|>", None), ("<|start_header_id|>", "llama3"), ("[INST]", "mistral"),
                        ("[AVAILABLE_TOOLS]", "mistral")):
        if head.startswith(marker):
            if fam is None:  # ChatML: Qwen or Hermes
                fam = "hermes" if "You are a function calling AI model" in text or "<|im_start|>tool" in text else "qwen"
            return fam
    if "[AVAILABLE_TOOLS]" in text or "[INST]" in text or "[TOOL_CALLS]" in text:
        return "mistral"
    if "<|start_header_id|>" in text:
        return "llama3"
    if "<|im_start|>" in text:
        if "You are a function calling AI model" in text or "<|im_start|>tool" in text:
            return "hermes"
        return "qwen"
    return "json"


def parse_rendered_chat(prompt: str, response: str, family: str = "auto") -> ParsedChat:
    """Tools, messages and response from a rendered prompt and the policy's response text."""
    if not isinstance(prompt, str):
        raise ChatParseError(f"prompt must be a string, got {type(prompt).__name__}")
    if not isinstance(response, str):
        raise ChatParseError(f"response must be a string, got {type(response).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ChatParseError(f"prompt too long ({len(prompt)} > {MAX_PROMPT_CHARS} characters)")
    fam = canonical_family(family)
    if fam == "auto":
        fam = detect_family(prompt)
    reader = {"qwen": _read_chatml, "hermes": _read_chatml, "llama3": _read_llama3,
              "mistral": _read_mistral, "json": _read_plain}[fam]
    tools, messages, prefill = reader(prompt)
    notes = []
    if not tools and fam != "json":
        tools = _catalog_from_messages(messages)
        if tools:
            notes.append("tool catalog found as a JSON list inside a message, not in the template's slot")
    if not tools:
        raise ChatParseError(
            f"no parsable tool catalog in the prompt (family {fam!r}): expected "
            + {"qwen": "<tools>...</tools> in the system turn",
               "hermes": "<tools>...</tools> in the system turn",
               "llama3": "JSON tool objects in the first user or the system turn",
               "mistral": "[AVAILABLE_TOOLS] [...] [/AVAILABLE_TOOLS]",
               "json": "a JSON list of tool specs"}[fam]
            + " (was the prompt rendered with tools=...?)")
    return ParsedChat(tools, messages, clean_response(response), fam, prefill, notes)


def split_query(query: str, family: str = "auto") -> tuple[str, str]:
    """(prompt, response) of a full rendered text (prompt + response, as OpenRLHF's `queries`),
    split after the last assistant generation header of the family."""
    fam = canonical_family(family)
    if fam == "auto":
        fam = detect_family(query)
    header = {"qwen": "<|im_start|>assistant\n", "hermes": "<|im_start|>assistant\n",
              "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n", "mistral": "[/INST]"}.get(fam)
    if header is None or header not in query:
        raise ChatParseError(f"cannot split the query into prompt and response: no assistant header for family {fam!r}")
    cut = query.rfind(header) + len(header)
    return query[:cut], query[cut:]


def clean_response(text: str) -> str:
    """The response without a leading assistant header and trailing end-of-turn / pad tokens."""
    s = text
    for h in _ASSISTANT_HEADERS:
        if s.startswith(h):
            s = s[len(h):]
    while True:
        s = s.rstrip()
        for tok in _END_TOKENS:
            if s.endswith(tok):
                s = s[: -len(tok)]
                break
        else:
            return s.strip()


# ----------------------------------------------------------------------------------------------
# Lenient JSON: tool specs as templates write them
# ----------------------------------------------------------------------------------------------

# strict=False: raw newlines/tabs inside strings (Hermes pastes multi-line descriptions unescaped).
_DECODER = json.JSONDecoder(strict=False)
MAX_PROMPT_CHARS = 500_000  # longer prompts are refused before any scanning
MAX_SCAN_STARTS = 200  # candidate positions tried when looking for a JSON catalog in free text
# Where a tool list or tool object may start: `[{"type"`, `{"name"`, ... (cheap to find; only
# these positions are decoded, so prose full of brackets costs one regex pass).
_SPEC_START = re.compile(r'[\[{]\s*(?:\{\s*)?"(?:type|function|name|description|parameters)"\s*:')
_WS_SEP = re.compile(r"[\s,;]*")
# A tool's description between its name and its parameters (Hermes and Mistral write them in that
# order); anchoring on the name keeps a match from starting at a parameter's description.
# Bounded length: an unclosed match must not rescan the rest of a long prompt from every start.
_DESC_RE = re.compile(r'("name"\s*:\s*"[^"\n]{0,200}"\s*,\s*"description"\s*:\s*")(.{0,2000}?)("\s*,\s*"parameters"\s*:)',
                      re.DOTALL)


_OPENAI_WRAPPER = re.compile(r'\{\s*"type"\s*:\s*"function"\s*,\s*"function"\s*:\s*(?=\{)')


def is_tool_spec(obj: Any) -> bool:
    """A tool spec (OpenAI or bare), not a call: its `parameters` is a JSON schema, not arguments."""
    if not isinstance(obj, dict):
        return False
    fn = obj["function"] if obj.get("type") == "function" and isinstance(obj.get("function"), dict) else obj
    if not isinstance(fn.get("name"), str):
        return False
    params = fn.get("parameters")
    if params is None:
        return "description" in fn and "arguments" not in fn
    return isinstance(params, dict) and (not params or "properties" in params or params.get("type") == "object")


def _repair_descriptions(text: str) -> str:
    """Re-escape `"description": "..."` values a template pasted in raw (quotes inside)."""
    def fix(m: re.Match) -> str:
        body = m.group(2)
        try:
            json.loads('"' + body + '"', strict=False)
            return m.group(0)  # already a valid JSON string
        except json.JSONDecodeError:
            return m.group(1)[:-1] + json.dumps(body, ensure_ascii=False) + m.group(3)[1:]
    return _DESC_RE.sub(fix, text)


def _tool_run(text: str, pos: int) -> tuple[list[dict], int]:
    """Tool specs decoded one after another from `pos` (JSON lists or objects separated by
    whitespace, commas or semicolons); stops at the first value that is not a spec."""
    tools: list[dict] = []
    end = pos
    while True:
        i = _WS_SEP.match(text, end).end()
        if i >= len(text) or text[i] not in "[{":
            return tools, end
        try:
            value, j = _DECODER.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError):
            return tools, end
        items = value if isinstance(value, list) else [value]
        if not items or not all(is_tool_spec(t) for t in items):
            return tools, end
        tools.extend(items)
        end = j


def tools_in_span(span: str) -> list[dict]:
    """All tool specs of a span that holds only a catalog (as between `<tools>` tags); [] if the
    span is not entirely tool specs."""
    repaired = _repair_descriptions(span)
    # Hermes-2-Pro's template opens `{"type": "function", "function": {` but closes one brace only:
    # without the wrapper's opening the bare function objects balance again.
    for text in (span, repaired, _OPENAI_WRAPPER.sub("", repaired)):
        tools, end = _tool_run(text, 0)
        if tools and not text[end:].strip(" \t\r\n,;"):
            return tools
    return []


def find_tool_run(text: str) -> tuple[int, int, list[dict]] | None:
    """(start, end, tools) of the first run of tool specs anywhere in `text`, or None. Only
    positions where a spec could start are decoded (`_SPEC_START`), a decoded value that is not a
    spec is skipped whole, and at most MAX_SCAN_STARTS are tried. No description repair here: JSON
    written by `json.dumps`/`tojson` (plain prompts, Llama) is valid as it is."""
    i = tries = 0
    while tries < MAX_SCAN_STARTS:
        m = _SPEC_START.search(text, i)
        if not m:
            return None
        p = m.start()
        tries += 1
        tools, end = _tool_run(text, p)
        if tools:
            return p, end, tools
        try:
            _value, i = _DECODER.raw_decode(text, p)  # skip a decoded non-spec value whole
        except (json.JSONDecodeError, RecursionError):
            i = p + 1
    return None


def _catalog_from_messages(messages: list[dict]) -> list[dict]:
    """A JSON catalog pasted into a message: taken out of that message's text."""
    for m in messages:
        content = m.get("content")
        if m.get("role") in ("system", "user") and isinstance(content, str):
            found = find_tool_run(content)
            if found:
                start, end, tools = found
                m["content"] = (content[:start].rstrip() + "\n" + content[end:].lstrip()).strip()
                return tools
    return []


def _assistant_message(text: str, call_marker: str | None = None) -> dict:
    """An earlier assistant turn: its prose as content, and its calls (if any) as OpenAI tool_calls."""
    text = text.strip()
    res = parse_calls(text)
    if not res.ok or not res.calls:
        return {"role": "assistant", "content": text}
    content = ""
    if call_marker and call_marker in text:
        content = text.split(call_marker, 1)[0]
        content = content.rsplit("</think>", 1)[-1].strip()
    return {"role": "assistant", "content": content, "tool_calls": [
        {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in res.calls]}


# ----------------------------------------------------------------------------------------------
# ChatML: Qwen2.5 / Qwen3 / Hermes
# ----------------------------------------------------------------------------------------------

_CHATML_TURN = re.compile(r"<\|im_start\|>([A-Za-z_]+)[ \t]*\n?(.*?)(<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL)
_TOOLS_BLOCK = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*(?:</tool_response>|\Z)", re.DOTALL)
# Where a template's tool boilerplate starts inside the system turn (text before it is the user's).
_TOOL_BOILERPLATE = ("# Tools", "You are a function calling AI model", "You are provided with function signatures")
_QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _read_chatml(prompt: str) -> tuple[list[dict], list[dict], str]:
    tools: list[dict] = []
    messages: list[dict] = []
    prefill = ""
    turns = list(_CHATML_TURN.finditer(prompt))
    for k, m in enumerate(turns):
        role, content, closed = m.group(1), m.group(2), bool(m.group(3))
        if role == "assistant" and not closed and k == len(turns) - 1:
            prefill = content  # the generation prompt (plus whatever the template pre-filled)
            break
        if role == "system" and not tools and "<tools>" in content:
            blocks = [b for b in _TOOLS_BLOCK.findall(content) if b.strip()]
            found = tools_in_span(blocks[0]) if blocks else []
            if found:
                tools = [_hermes_description(t) for t in found] if "function calling AI model" in content else found
                cuts = [content.find(p) for p in _TOOL_BOILERPLATE if p in content]
                own = content[: min(cuts) if cuts else content.find("<tools>")].strip()
                if own and own != _QWEN25_DEFAULT_SYSTEM:
                    messages.append({"role": "system", "content": own})
                continue
        if role in ("user", "tool") and content.lstrip().startswith("<tool_response>") \
                and not _TOOL_RESPONSE.sub("", content).strip():
            messages.extend(_tool_message(body) for body in _TOOL_RESPONSE.findall(content))
        elif role == "assistant":
            messages.append(_assistant_message(content, "<tool_call>"))
        else:
            messages.append({"role": role, "content": content.strip()})
    return tools, messages, prefill


def _hermes_description(tool: dict) -> dict:
    """Hermes writes `name(a: str) -> T - description\\n\\n    Args: ...` as the description;
    keep only the tool's own description (the signature and Args repeat the parameters)."""
    fn = tool["function"] if isinstance(tool.get("function"), dict) else tool
    desc, name = fn.get("description"), fn.get("name")
    if not isinstance(desc, str) or not desc.startswith(f"{name}("):
        return tool
    m = re.match(re.escape(name) + r"\(.*?\)(?: -> [^\n]*?)? - ", desc)
    if m:
        desc = desc[m.end():]
        for tail in ("\n\n    Args:\n", "\n    Returns:\n"):
            desc = desc.split(tail, 1)[0]
        fn = {**fn, "description": desc.rstrip("\n")}
    return {"type": "function", "function": fn}


def _tool_message(body: str) -> dict:
    """A tool result; Hermes wraps it as {"name": ..., "content": ...}."""
    msg = {"role": "tool", "content": body.strip()}
    try:
        value = json.loads(body, strict=False)
    except json.JSONDecodeError:
        return msg
    if isinstance(value, dict) and set(value) <= {"name", "content", "call_id"} and "content" in value:
        c = value["content"]
        msg["content"] = c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)
        if isinstance(value.get("name"), str):
            msg["name"] = value["name"]
    return msg


# ----------------------------------------------------------------------------------------------
# Llama 3.1 / 3.2
# ----------------------------------------------------------------------------------------------

_LLAMA_TURN = re.compile(
    r"<\|start_header_id\|>([A-Za-z_]+)<\|end_header_id\|>\n{0,2}(.*?)(<\|eot_id\|>|<\|eom_id\|>|(?=<\|start_header_id\|>)|\Z)",
    re.DOTALL)
_LLAMA_SYSTEM_LINES = re.compile(r"^(Environment: ipython|Tools: .*|Cutting Knowledge Date: .*|Today Date: .*)\n+", re.MULTILINE)
_LLAMA_TOOL_INTRO = ("Given the following functions", "You have access to the following functions")
_LLAMA_TOOL_MARK = "Do not use variables."


def _read_llama3(prompt: str) -> tuple[list[dict], list[dict], str]:
    tools: list[dict] = []
    messages: list[dict] = []
    prefill = ""
    turns = list(_LLAMA_TURN.finditer(prompt))
    for k, m in enumerate(turns):
        role, content, closed = m.group(1), m.group(2), bool(m.group(3))
        if role == "assistant" and not closed and k == len(turns) - 1:
            prefill = content
            break
        if role == "system":
            content = _LLAMA_SYSTEM_LINES.sub("", content)
        if role in ("system", "user") and not tools and _LLAMA_TOOL_MARK in content:
            # Boilerplate up to the marker, then the tool objects, then the user's own text.
            start = content.index(_LLAMA_TOOL_MARK) + len(_LLAMA_TOOL_MARK)
            found, end = _tool_run(content, start)  # tojson output: valid JSON, no repair needed
            if found:
                tools = found
                head = content[: content.index(_LLAMA_TOOL_MARK)]
                if any(p in head for p in _LLAMA_TOOL_INTRO):
                    head = ""
                content = (head.strip() + "\n" + content[end:].strip()).strip()
        if role in ("ipython", "tool"):
            messages.append({"role": "tool", "content": _unquote(content.strip())})
        elif role == "assistant":
            messages.append(_assistant_message(content))
        elif role == "system" and not content.strip():
            continue
        else:
            messages.append({"role": role, "content": content.strip()})
    return tools, messages, prefill


def _unquote(text: str) -> str:
    """Llama-3.1's template writes string tool results through `tojson` (a string is iterable in
    jinja), so they arrive as a JSON string literal."""
    if text.startswith('"') and text.endswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


# ----------------------------------------------------------------------------------------------
# Mistral (v0.3 style)
# ----------------------------------------------------------------------------------------------

_MISTRAL_MARK = re.compile(
    r"\[AVAILABLE_TOOLS\]|\[/AVAILABLE_TOOLS\]|\[INST\]|\[/INST\]|\[TOOL_CALLS\]|\[TOOL_RESULTS\]|\[/TOOL_RESULTS\]|</s>|<s>")


def _read_mistral(prompt: str) -> tuple[list[dict], list[dict], str]:
    tools: list[dict] = []
    messages: list[dict] = []
    prefill = ""
    # (marker, text up to the next marker) pairs; text before the first marker is ignored (BOS).
    marks = list(_MISTRAL_MARK.finditer(prompt))
    pieces = [(mk.group(0), prompt[mk.end(): marks[i + 1].start() if i + 1 < len(marks) else len(prompt)])
              for i, mk in enumerate(marks)]
    for i, (mark, text) in enumerate(pieces):
        nxt = pieces[i + 1][0] if i + 1 < len(pieces) else None
        if mark == "[AVAILABLE_TOOLS]":
            tools = tools_in_span(text) or tools
        elif mark == "[INST]":
            messages.append({"role": "user", "content": text.strip()})
        elif mark in ("[/INST]", "[/TOOL_RESULTS]") and text.strip():  # assistant prose follows either
            if nxt is None:
                prefill = text
            else:
                messages.append({"role": "assistant", "content": text.strip()})
        elif mark == "[TOOL_CALLS]":
            if nxt is None:
                prefill = mark + text
            else:
                messages.append(_assistant_message(mark + text))
        elif mark == "[TOOL_RESULTS]":
            messages.append(_tool_message(text))
    return tools, messages, prefill


# ----------------------------------------------------------------------------------------------
# Plain JSON
# ----------------------------------------------------------------------------------------------

def _read_plain(prompt: str) -> tuple[list[dict], list[dict], str]:
    found = find_tool_run(prompt)
    if not found:
        return [], [], ""
    start, end, tools = found
    rest = (prompt[:start].rstrip() + "\n" + prompt[end:].lstrip()).strip()
    return tools, ([{"role": "user", "content": rest}] if rest else []), ""
