"""What the conversation offers a model to (mis)copy into an argument: the numbers, entity-like
spans (quoted, capitalised, dates) and content words of the user turns."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from fcrm_ray.toolcall.schema import Example, ToolCall, content_text

_STOP = {
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "by", "from", "is", "are",
    "be", "me", "my", "i", "you", "your", "it", "its", "this", "that", "what", "how", "can", "could",
    "would", "please", "find", "get", "calculate", "give", "tell", "show", "also", "then", "as", "if",
    "do", "does", "want", "like", "need", "about", "using", "use", "some", "any", "all", "there", "their",
    "they", "we", "our", "us", "which", "who", "when", "where", "will", "should", "into", "than",
}
_NUM_RE = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d])|(?<![\w.])-?\d+(?:\.\d+)?")
_QUOTED_RE = re.compile(r"(?:(?<=[\s(\[:])|^)(['\"])([^'\"\n]{1,60})\1(?=[\s.,;:!?)\]]|$)")
_CAP_RE = re.compile(r"\b[A-Z][\w'&-]*(?:(?:\s+(?:of|de|la|the)\s+|\s+)[A-Z0-9][\w'&-]*)*(?:,\s+[A-Z]{2}\b)?")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DATE_PATTERNS = [
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"),
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
    re.compile(r"\b(?:" + "|".join(_MONTHS) + r")\s+\d{1,2}(?:st|nd|rd|th)?(?:,\s*\d{4})?\b"),
    re.compile(r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:" + "|".join(_MONTHS) + r")(?:,?\s*\d{4})?\b"),
]


@dataclass
class _Context:
    text: str
    numbers: list[float]
    strings: list[str]  # entity-like spans: quoted, capitalised, dates
    words: list[str]  # content words (for lowercase string values)
    ref_values: list[Any]  # every concrete value in the reference (other params / calls)


def _context(example: Example, base: Sequence[ToolCall]) -> _Context:
    turns = [(m.get("role"), content_text(m.get("content"))) for m in example.conversation]
    text = "\n".join(t for role, t in turns if role in ("user", "system", "tool"))
    user = "\n".join(t for role, t in turns if role == "user") or text
    numbers: list[float] = []
    for m in _NUM_RE.finditer(user):
        s = m.group(0).replace(",", "")
        try:
            numbers.append(float(s) if "." in s else int(s))
        except ValueError:
            continue
    strings: list[str] = []
    for m in _QUOTED_RE.finditer(user):
        strings.append(m.group(2).strip())
    for m in _CAP_RE.finditer(user):
        span = m.group(0).strip()
        start = m.start()
        sentence_start = start == 0 or user[:start].rstrip()[-1:] in ".?!\n"
        if sentence_start:  # "Find", "Calculate the Euclidean", ...: the first word is no entity
            span = " ".join(w for w in span.split()[1:]).strip()
            while span.split() and span.split()[0].lower() in _STOP:
                span = " ".join(span.split()[1:])
        if span.lower() in _STOP or len(span) < 2:
            continue
        strings.append(span)
    for rx in _DATE_PATTERNS:
        strings.extend(m.group(0) for m in rx.finditer(user))
    words = [w for w in _WORD_RE.findall(user) if w.lower() not in _STOP]
    ref_values: list[Any] = []
    for c in base:
        for v in c.arguments.values():
            ref_values.append(v)
            if isinstance(v, Mapping):
                ref_values.extend(v.values())
    return _Context(text=user, numbers=_dedup(numbers), strings=_dedup(strings), words=_dedup(words),
                    ref_values=ref_values)


def _dedup(items: Iterable[Any]) -> list[Any]:
    seen, out = set(), []
    for x in items:
        k = json.dumps(x, sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out
