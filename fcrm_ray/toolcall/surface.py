"""Output surfaces: the ways models write the same tool calls, written (`format_calls`) and
recognised (`detect_style`). The inverse of `parse.py`: whatever `format_calls` writes,
`parse_calls` reads back as the same calls.

Styles (`STYLES`): a JSON list, pretty-printed JSON, a single JSON object, `<tool_call>` blocks,
Python call syntax, fenced JSON. The mutator (`mutate.py`) writes both sides of a pair with the same
style mix (`STYLE_WEIGHTS`) so the surface carries no label; obfuscation and perturbations keep a
text in its own style (`detect_style`). Pure: standard library only.
"""

from __future__ import annotations

import json
import keyword
import random
import re
from typing import Any, Mapping, Sequence

from fcrm_ray.toolcall.schema import ToolCall


STYLES: tuple[str, ...] = ("json", "json_pretty", "json_object", "tool_call", "python", "json_fenced")
# Rough mix of what open models emit; used for both sides so the surface carries no label.
STYLE_WEIGHTS: dict[str, float] = {
    "json": 0.28,
    "json_pretty": 0.10,
    "json_object": 0.10,
    "tool_call": 0.24,
    "python": 0.22,
    "json_fenced": 0.06,
}
_IDENT = re.compile(r"[A-Za-z_]\w*\Z")
TOOL_NAME_PATH = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*\Z")  # tool names as catalogs write them


def py_literal(value: Any) -> str:
    """A value as a Python literal (what BFCL-style `[f(a=1)]` outputs contain)."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_literal(str(k))}: {py_literal(v)}" for k, v in value.items()) + "}"
    return repr(str(value))


def _py_call(call: ToolCall) -> str:
    args = ", ".join(f"{k}={py_literal(v)}" for k, v in call.arguments.items())
    return f"{call.name}({args})"


def _py_ident(s: str) -> bool:
    return bool(_IDENT.match(s)) and not keyword.iskeyword(s)


def style_supports(calls: Sequence[ToolCall], style: str) -> bool:
    """Whether `style` can express `calls` (Python syntax needs identifier names and keyword
    argument names that are not Python keywords: `from=`, `class=` only fit JSON)."""
    if style == "python":
        return all(all(_py_ident(part) for part in c.name.split(".")) and all(_py_ident(str(k)) for k in c.arguments)
                   for c in calls)
    if style == "json_object":
        return len(calls) == 1
    return style in STYLES


def pick_style(calls: Sequence[ToolCall], rng: random.Random, weights: Mapping[str, float] | None = None) -> str:
    weights = dict(weights or STYLE_WEIGHTS)
    names = [s for s in STYLES if weights.get(s, 0) > 0 and style_supports(calls, s)]
    return rng.choices(names, weights=[weights[s] for s in names])[0]


def format_calls(calls: Sequence[ToolCall], style: str | None = None, rng: random.Random | None = None) -> str:
    """Serialise calls in one of `STYLES`; `style=None` draws one from `STYLE_WEIGHTS` with `rng`.
    A style that cannot express the calls (Python syntax for `my-tool`) falls back to `json`."""
    calls = list(calls)
    if style is None:
        style = pick_style(calls, rng or random.Random(0))
    if style not in STYLES:
        raise ValueError(f"unknown output style {style!r}; expected one of {STYLES}")
    if not style_supports(calls, style):
        style = "json"
    dicts = [c.to_dict() for c in calls]
    if style == "json":
        return json.dumps(dicts, ensure_ascii=False)
    if style == "json_pretty":
        return json.dumps(dicts, ensure_ascii=False, indent=2)
    if style == "json_object":
        return json.dumps(dicts[0], ensure_ascii=False)
    if style == "json_fenced":
        return "```json\n" + json.dumps(dicts, ensure_ascii=False, indent=2) + "\n```"
    if style == "tool_call":
        return "\n".join(f"<tool_call>\n{json.dumps(d, ensure_ascii=False)}\n</tool_call>" for d in dicts)
    return "[" + ", ".join(_py_call(c) for c in calls) + "]"  # python


def detect_style(text: str) -> str | None:
    """The `STYLES` entry whose output looks like `text` (None when it matches none)."""
    s = text.strip()
    if "<tool_call>" in s:
        return "tool_call"
    if s.startswith("```"):
        return "json_fenced"
    if s.startswith("[") or s.startswith("{"):
        try:
            obj = json.loads(s)
        except (json.JSONDecodeError, ValueError):
            return "python" if s.startswith("[") else None
        if isinstance(obj, dict):
            return "json_object"
        return "json_pretty" if "\n" in s else "json"
    return None
