"""Programmatic rejected calls that look like real model errors, and alternative chosen forms.

An RM trained on naive mutations (random strings, `x+1` everywhere, one output format) learns the
*surface* of the mutation and ranks real LLM errors below chance. So every mutation here imitates
an error real tool-calling models make, in FC-RewardBench's taxonomy (`schema.ERROR_TYPES`):

- incorrect_parameter_value: a value of the right type taken from the wrong span of the
  conversation (another number/entity/date the user mentioned, the value of a sibling call),
  a span one word too long or too short, an off-by-one or unit-scaled number, the same
  entity written differently ("NYC", "Boston, Massachusetts", "05/01/2023"), another enum value,
  the schema default instead of the asked value, two values swapped between parameters or calls.
- incorrect_function_name: a sibling tool of the catalog (weighted by name/description
  similarity) or a plausible hallucinated name (namespace dropped/added, snake vs camel case,
  verb synonym, "functions." prefix).
- incorrect_number_of_functions: a dropped, duplicated, merged or split call, an extra call of
  a sibling tool, a repeated call with another value.
- missing_required_parameter / missing_optional_parameter: a dropped (or renamed) required
  parameter; a dropped optional parameter the reference requires (its acceptable list lacks "").
- unexpected_parameter: a schema parameter the reference says must be absent, a parameter name
  borrowed from a sibling tool or a common one ("unit", "limit", ...), a renamed optional one.
- incorrect_parameter_type: numbers/booleans/lists as strings, int as float, a scalar for an
  array (and the reverse), a numeric-looking string as a number.
- incorrect_output_format: truncated JSON, a missing bracket (also inside a code fence),
  positional or unquoted Python arguments, prose instead of a call.

How: `_Builder` lists every candidate rewrite of one example for the asked error type (each with
a `kind`, e.g. `wrong_span`, `sibling_tool`, `dropped_call`), `_draw` samples them by
`GROUP_WEIGHTS` (families of kinds, weighted by how often real models make them), and each draw
is rendered in a random surface and checked with the verifier (`verify.verify`) on the exact
text: only candidates wrong with exactly the asked `error_type` are kept. The rejected side starts
from the canonical reference half the time and from another acceptable form otherwise, like the
chosen side (`chosen_variants`). Both sides share
`surface.format_calls`, which writes calls in the surfaces real models emit (JSON list, single JSON
object, `<tool_call>` blocks, Python calls, fenced JSON), so format is never a cue for which
side is which. Everything is driven by the `random.Random` passed in: same seed, same output.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from fcrm_ray.toolcall.schema import ERROR_TYPES, Example, ReferenceCall, ToolCall, ToolSpec
from fcrm_ray.toolcall.surface import TOOL_NAME_PATH, format_calls, py_literal, style_supports
from fcrm_ray.toolcall.verify import json_type

# ----------------------------------------------------------------------------------------------
# Reference -> concrete acceptable calls
# ----------------------------------------------------------------------------------------------


def _is_alt_dict(v: Any) -> bool:
    """BFCL writes nested dict answers as {key: [acceptable values]}."""
    return isinstance(v, Mapping) and all(isinstance(x, list) for x in v.values())


def resolve_reference(reference: Sequence[ReferenceCall], rng: random.Random | None = None) -> list[ToolCall]:
    """Concrete calls accepted by `reference`. `rng=None`: the canonical form (first value per
    parameter); otherwise a random acceptable value per parameter, omitted where "" allows."""
    return [ref.resolve(rng) for ref in reference]


# ----------------------------------------------------------------------------------------------
# What the conversation offers: spans a model could (mis)copy
# ----------------------------------------------------------------------------------------------

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


def _message_text(m: Mapping) -> str:
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # multimodal-style content parts
        return " ".join(str(p.get("text", "")) for p in c if isinstance(p, Mapping))
    return ""


@dataclass
class _Context:
    text: str
    numbers: list[float]
    strings: list[str]  # entity-like spans: quoted, capitalised, dates
    words: list[str]  # content words (for lowercase string values)
    ref_values: list[Any]  # every concrete value in the reference (other params / calls)


def _context(example: Example, base: Sequence[ToolCall]) -> _Context:
    text = "\n".join(_message_text(m) for m in example.conversation if m.get("role") in ("user", "system", "tool"))
    user = "\n".join(_message_text(m) for m in example.conversation if m.get("role") == "user") or text
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


# ----------------------------------------------------------------------------------------------
# Value rewrites that real models produce
# ----------------------------------------------------------------------------------------------


def _std(s: str) -> str:
    """BFCL's string standardisation (spaces, ",./-_*^" dropped, lowercase): rewrites that only
    change these are not errors, so they are not proposed."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


_US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho",
    "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming", "DC": "District of Columbia",
}
_STATE_ABBR = {v.lower(): k for k, v in _US_STATES.items()}
_CITY_STATE = {
    "new york": "NY", "los angeles": "CA", "san francisco": "CA", "chicago": "IL", "boston": "MA",
    "seattle": "WA", "austin": "TX", "houston": "TX", "dallas": "TX", "miami": "FL", "denver": "CO",
    "atlanta": "GA", "phoenix": "AZ", "portland": "OR", "las vegas": "NV", "san diego": "CA",
    "berkeley": "CA", "philadelphia": "PA", "orlando": "FL", "nashville": "TN", "san jose": "CA",
    "washington": "DC", "detroit": "MI", "sacramento": "CA", "oakland": "CA", "palo alto": "CA",
}
_CITY_ALIASES = {
    "new york": ["NYC", "New York City", "NY"], "los angeles": ["LA", "L.A."], "san francisco": ["SF", "San Fran"],
    "washington": ["DC", "Washington DC"], "las vegas": ["Vegas"], "philadelphia": ["Philly"],
    "united states": ["USA", "US", "America"], "united kingdom": ["UK", "England", "Britain"],
    "usa": ["United States", "US"], "uk": ["United Kingdom", "England"], "new york city": ["NYC", "New York"],
    "uae": ["United Arab Emirates", "Dubai"], "south korea": ["Korea"], "beijing": ["Peking"],
    "mumbai": ["Bombay"], "kolkata": ["Calcutta"],
}
_WORD_SWAPS = {
    "celsius": ["fahrenheit", "C"], "fahrenheit": ["celsius", "F"], "metric": ["imperial", "SI"],
    "imperial": ["metric"], "ascending": ["descending", "asc"], "descending": ["ascending", "desc"],
    "asc": ["desc"], "desc": ["asc"], "km": ["miles", "kilometers"], "miles": ["km", "kilometers"],
    "kilometers": ["miles", "km"], "usd": ["US dollars", "dollars", "EUR"], "eur": ["euros", "USD"],
    "daily": ["weekly", "day"], "weekly": ["daily", "monthly"], "monthly": ["yearly", "month"],
    "yearly": ["annual", "monthly"], "annual": ["yearly", "monthly"], "true": ["yes"], "false": ["no"],
    "male": ["man", "female"], "female": ["woman", "male"], "english": ["en", "EN"], "en": ["English"],
    "json": ["JSON format", "text"], "hot": ["warm", "very hot"], "large": ["big", "L"],
    "small": ["S", "little"], "medium": ["M", "regular"], "today": ["now", "current"],
    "tomorrow": ["next day", "today"], "minutes": ["mins", "seconds"], "seconds": ["secs", "minutes"],
    "hours": ["hrs", "minutes"], "percent": ["%", "percentage"], "average": ["mean", "avg"],
    "mean": ["average", "median"], "median": ["mean"], "dollars": ["USD", "$"],
}
_COUNTRIES = {"usa", "us", "uk", "united states", "united kingdom", "china", "india", "japan", "france", "germany",
              "canada", "australia", "spain", "italy", "brazil", "mexico", "russia", "korea", "south korea"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DATE_PATTERNS = [
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"),
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
    re.compile(r"\b(?:" + "|".join(_MONTHS) + r")\s+\d{1,2}(?:st|nd|rd|th)?(?:,\s*\d{4})?\b"),
    re.compile(r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:" + "|".join(_MONTHS) + r")(?:,?\s*\d{4})?\b"),
]
_DATE_FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%B %d, %Y", "%d %B %Y", "%Y/%m/%d", "%m-%d-%Y",
                 "%Y-%m-%dT%H:%M:%S", "%b %d, %Y", "%B %d %Y"]


def _parse_date(s: str) -> tuple[_dt.datetime, str] | None:
    for fmt in _DATE_FORMATS:
        try:
            return _dt.datetime.strptime(s.strip(), fmt), fmt
        except ValueError:
            continue
    return None


def _date_rewrites(s: str) -> list[tuple[str, str]]:
    parsed = _parse_date(s)
    if not parsed:
        return []
    d, fmt = parsed
    out = []
    for f in ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%B %d, %Y", "%d-%m-%Y", "%Y%m%d"):
        if f != fmt:
            out.append(("date_reformatted", d.strftime(f)))
    if d.day <= 12 and d.day != d.month:  # day and month swapped
        try:
            out.append(("date_day_month_swapped", d.replace(month=d.day, day=d.month).strftime(fmt)))
        except ValueError:
            pass
    for delta in (1, -1):
        out.append(("date_off_by_one", (d + _dt.timedelta(days=delta)).strftime(fmt)))
    try:
        out.append(("date_wrong_year", d.replace(year=d.year - 1).strftime(fmt)))
    except ValueError:
        pass
    if "%H" not in fmt:
        out.append(("date_with_time", d.strftime(fmt) + " 00:00:00"))
    return out


_RELATIVE_DATE_RE = re.compile(
    r"\b(?:today|tomorrow|tonight|yesterday|this (?:weekend|week|month|friday|saturday|sunday)|"
    r"next (?:week|month|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|last (?:week|month|year))\b",
    re.IGNORECASE)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::\d{2})?\s*(am|pm|AM|PM)?$")


def _time_rewrites(s: str) -> list[tuple[str, str]]:
    m = _TIME_RE.match(s.strip())
    if not m:
        return []
    h, mi, ampm = int(m.group(1)), m.group(2), m.group(3)
    out = []
    if ampm is None and h > 12:
        out.append(("time_12h", f"{h - 12}:{mi} PM"))
    elif ampm is None:
        out.append(("time_12h", f"{h}:{mi} {'AM' if h < 12 else 'PM'}"))
        out.append(("time_off_by_12h", f"{(h + 12) % 24:02d}:{mi}"))
    else:
        hh = h % 12 + (12 if ampm.lower() == "pm" else 0)
        out.append(("time_24h", f"{hh:02d}:{mi}"))
    out.append(("time_off_by_one_hour", f"{(h + 1) % 24:02d}:{mi}" if ampm is None else f"{h % 12 + 1}:{mi} {ampm}"))
    return out


def _location_rewrites(s: str) -> list[tuple[str, str]]:
    out = []
    parts = [p.strip() for p in s.split(",")]
    low = s.lower().strip()
    if len(parts) >= 2:
        city, rest = parts[0], parts[1]
        out.append(("location_qualifier_dropped", city))
        if rest.upper() in _US_STATES and len(rest) == 2:
            out.append(("location_state_expanded", f"{city}, {_US_STATES[rest.upper()]}"))
            out.append(("location_country_added", f"{city}, {rest}, USA"))
        elif rest.lower() in _STATE_ABBR:
            out.append(("location_state_abbreviated", f"{city}, {_STATE_ABBR[rest.lower()]}"))
        if len(parts) >= 3:
            out.append(("location_qualifier_dropped", ", ".join(parts[:2])))
    else:
        if low in _CITY_STATE:
            out.append(("location_qualifier_added", f"{s.strip()}, {_CITY_STATE[low]}"))
            out.append(("location_qualifier_added", f"{s.strip()}, USA"))
    key = parts[0].lower()
    for alias in _CITY_ALIASES.get(key, []):
        out.append(("entity_alias", alias if len(parts) == 1 else ", ".join([alias] + parts[1:])))
    return out


def _string_rewrites(s: str, ctx: _Context) -> list[tuple[str, str, float]]:
    """(kind, new value, weight) rewrites of a string value."""
    out: list[tuple[str, str, float]] = []
    for kind, v in _date_rewrites(s):
        out.append((kind, v, 1.5))
    for kind, v in _time_rewrites(s):
        out.append((kind, v, 1.5))
    for kind, v in _location_rewrites(s):
        out.append((kind, v, 1.5))
    for w in _WORD_SWAPS.get(s.lower().strip(), []):
        out.append(("near_synonym", w, 1.2))
    words = s.split()
    proper = all(w[:1].isupper() for w in words)
    if 2 <= len(words) <= 8 and not proper:
        out.append(("span_truncated", " ".join(words[:-1]), 1.0))
        out.append(("span_truncated", " ".join(words[1:]), 0.6))
    elif len(words) == 2 and proper and all(w.isalpha() for w in words) and s.lower() not in _CITY_STATE \
            and s.lower() not in _CITY_ALIASES:
        out.append(("span_truncated", words[-1], 0.6))  # a person's surname only
    if proper and 3 <= len(words) <= 4:  # "United Nations Children Fund" -> "UNCF"
        out.append(("abbreviated", "".join(w[0] for w in words).upper(), 0.5))
    last = words[-1] if words else ""
    if last.isalpha() and last.islower() and len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        alt = last[:-3] + "y" if last.endswith("ies") else last[:-1]
        out.append(("plural_singular", " ".join(words[:-1] + [alt]), 0.6))
    # span boundary: the value as it appears in the user turn, one word too long / short
    idx = ctx.text.lower().find(s.lower()) if s.strip() else -1
    if idx >= 0:
        after = re.match(r"\s+([\w'-]+)", ctx.text[idx + len(s):])
        if after and after.group(1).lower() not in ("and", "or", "to", "with", "for", "in", "on", "at"):
            out.append(("span_boundary", ctx.text[idx:idx + len(s)] + " " + after.group(1), 1.3))
        before = re.search(r"([\w'-]+)\s+$", ctx.text[:idx])
        if before and before.group(1).lower() not in _STOP:
            out.append(("span_boundary", before.group(1) + " " + ctx.text[idx:idx + len(s)], 1.0))
        # the whole clause instead of the entity (small models copy the request into the argument)
        for sent in re.split(r"(?<=[.?!])\s+|\n+", ctx.text):
            if s.lower() in sent.lower() and len(words) + 2 <= len(sent.split()) <= len(words) + 8:
                out.append(("overlong_span", sent.strip().rstrip(".?!"), 0.8))
                break
    if _parse_date(s):  # "tomorrow" passed through instead of the date it means
        for m in _RELATIVE_DATE_RE.finditer(ctx.text):
            out.append(("unresolved_relative_date", m.group(0), 1.5))
    digits = re.search(r"\d+", s)
    if digits and not _parse_date(s):
        n = int(digits.group(0))
        out.append(("digit_off_by_one", s[:digits.start()] + str(n + 1) + s[digits.end():], 0.8))
    return out


_TIME_WORDS = ("second", "minute", "hour", "duration", "time", "timeout", "delay", "interval", "sec", "min")
_METRIC_WORDS = ("meter", "metre", "gram", "liter", "litre", "byte", "km", "kg", "ms", "millisecond", "distance",
                 "weight", "mass", "length", "memory", "size")
_PERCENT_WORDS = ("percent", "percentage", "rate", "ratio", "probability", "fraction", "interest", "%")


def _number_rewrites(v: int | float, hint: str = "") -> list[tuple[str, Any, float]]:
    """Off-by-one, sign and unit mistakes. Unit scalings are only proposed where the parameter is
    about that kind of unit (a minutes/seconds mix-up needs a time parameter)."""
    out: list[tuple[str, Any, float]] = []
    timeish = any(w in hint for w in _TIME_WORDS)
    metric = any(w in hint for w in _METRIC_WORDS)
    percent = any(w in hint for w in _PERCENT_WORDS)
    if isinstance(v, int):
        out += [("off_by_one", v + 1, 1.0), ("off_by_one", v - 1, 0.7)]
        if v != 0:
            if timeish:
                out.append(("unit_scaled", v * 60, 1.0))
                if v % 60 == 0:
                    out.append(("unit_scaled", v // 60, 1.0))
            if metric:
                out.append(("unit_scaled", v * 1000, 1.0))
                if v % 1000 == 0:
                    out.append(("unit_scaled", v // 1000, 1.0))
            if percent:
                out.append(("unit_scaled", v * 100, 0.8))
            if "year" not in hint:
                out.append(("unit_scaled", v * 10, 0.3))  # an extra zero
            if v < 0:
                out.append(("sign_dropped", -v, 1.0))
    else:
        out.append(("off_by_one", v + 1.0, 0.4))
        if percent or 0 < abs(v) < 1:  # 0.05 vs 5.0: fraction vs percent
            out.append(("unit_scaled", round(v * 100, 10), 1.0))
        if percent and abs(v) >= 1:
            out.append(("unit_scaled", round(v / 100, 10), 1.0))
        if timeish:
            out.append(("unit_scaled", round(v * 60, 10), 0.8))
        if metric:
            out.append(("unit_scaled", round(v * 1000, 10), 0.8))
        out.append(("unit_scaled", round(v * 10, 10), 0.2))
        if v != round(v):
            out.append(("rounded", float(round(v)), 0.8))
            out.append(("rounded", float(round(v, 1)), 0.5))
        if v < 0:
            out.append(("sign_dropped", -v, 1.0))
    return out


def _shape(v: Any) -> tuple:
    """Coarse look of a string value: values a model confuses with each other share a shape."""
    if not isinstance(v, str):
        return (type(v).__name__,)
    return (bool(_parse_date(v)), "," in v, v[:1].isupper(), bool(re.fullmatch(r"[\d.\s-]+", v)), len(v.split()) > 4)


def _same_kind(a: Any, b: Any) -> bool:
    """Same Python type, counting int/float as different (a float for an int is a type error)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return type(a) is type(b)


def _is_acceptable(v: Any, alts: Sequence[Any]) -> bool:
    for a in alts:
        if isinstance(v, str) and isinstance(a, str):
            if _std(v) == _std(a) and not (a == "" and v != ""):
                return True
        elif _is_alt_dict(a) or isinstance(a, list) and any(_is_alt_dict(x) for x in a):
            continue  # nested answers: left to the verifier
        elif _same_kind(v, a) and v == a:
            return True
        elif isinstance(v, (int, float)) and isinstance(a, (int, float)) and not isinstance(v, bool) and v == a:
            return True
    return False


def _value_candidates(value: Any, alts: Sequence[Any], schema: Mapping, ctx: _Context,
                      call_idx: int, param: str, others: Sequence[Any]) -> list[tuple[str, Any, float]]:
    """Wrong values of the same type for one parameter: (kind, value, weight)."""
    out: list[tuple[str, Any, float]] = []
    if isinstance(value, bool):
        out.append(("boolean_flipped", not value, 1.0))
    elif isinstance(value, (int, float)):
        for n in ctx.numbers:  # another number the user mentioned
            cand = float(n) if isinstance(value, float) else n
            if isinstance(value, int) and not float(n).is_integer():
                continue
            out.append(("wrong_span", int(cand) if isinstance(value, int) else cand, 2.0))
        for o in others:
            if _same_kind(o, value):
                out.append(("wrong_span", o, 1.5))
        out += _number_rewrites(value, (param + " " + str(schema.get("description", ""))).lower()
                                if isinstance(schema, Mapping) else param.lower())
    elif isinstance(value, str):
        for o in others:  # the value of another parameter / call
            if isinstance(o, str) and o:
                out.append(("wrong_span", o, 2.0))
        shape = _shape(value)
        for s in ctx.strings:
            if bool(_parse_date(s)) != shape[0]:
                continue  # a date for a name (or the reverse) is not a confusion models make
            out.append(("wrong_span", s, 1.5 if _shape(s) == shape else 0.5))
        if value[:1].islower() or not ctx.strings:
            for word in ctx.words:
                out.append(("wrong_span_word", word if value[:1].islower() else word.capitalize(), 1.0))
        out += _string_rewrites(value, ctx)
    elif isinstance(value, list) and value and not any(isinstance(x, Mapping) for x in value):
        if len(value) >= 2:
            for i in range(len(value)):
                out.append(("list_element_dropped", value[:i] + value[i + 1:], 1.0))
            out.append(("list_reordered", list(reversed(value)), 0.6))
        item = value[-1]
        for kind, nv, w in _value_candidates(item, [], {}, ctx, call_idx, param, []):
            if kind in ("wrong_span", "off_by_one", "near_synonym", "entity_alias", "span_truncated",
                        "location_qualifier_dropped", "location_state_expanded"):
                if nv not in value:
                    out.append(("list_element_" + kind, value[:-1] + [nv], 0.3 * w))
                    out.append(("list_element_added", value + [nv], 0.15 * w))
    elif isinstance(value, Mapping) and value:
        for k in value:  # nested dict: one inner value wrong
            inner = value[k]
            for kind, nv, w in _value_candidates(inner, [], {}, ctx, call_idx, param, []):
                if isinstance(nv, (str, int, float)) and not isinstance(nv, (list, dict)) and nv != inner:
                    new = dict(value)
                    new[k] = nv
                    out.append(("nested_" + kind, new, 0.5 * w))
    enum = schema.get("enum") or (schema.get("items") or {}).get("enum") if isinstance(schema, Mapping) else None
    if enum and not isinstance(value, (list, Mapping)):
        for e in enum:
            if _same_kind(e, value) and e != value:
                out.append(("enum_other", e, 3.0 / max(1, len(enum) - 1) + 0.5))
    default = schema.get("default") if isinstance(schema, Mapping) else None
    if default is not None and default != "" and _same_kind(default, value) and default != value:
        out.append(("default_value", copy.deepcopy(default), 2.0))
    # keep only values that really differ from every acceptable one and keep the type
    kept = []
    for kind, nv, w in out:
        if not _same_kind(nv, value) or nv == value:
            continue
        if isinstance(nv, str) and (not nv.strip() or _std(nv) == _std(value)):
            continue
        if _is_acceptable(nv, alts):
            continue
        kept.append((kind, nv, w))
    return kept


# ----------------------------------------------------------------------------------------------
# Names: siblings and hallucinations
# ----------------------------------------------------------------------------------------------

_VERB_SYNONYMS = {
    "get": ["fetch", "retrieve"], "fetch": ["get"], "retrieve": ["get", "fetch"], "calculate": ["compute", "calc"],
    "compute": ["calculate"], "calc": ["calculate"], "find": ["search", "get"], "search": ["find", "lookup"],
    "lookup": ["search"], "create": ["add", "make"], "add": ["create"], "update": ["modify", "edit", "set"],
    "set": ["update"], "delete": ["remove"], "remove": ["delete"], "list": ["get_all", "get"], "book": ["reserve"],
    "reserve": ["book"], "convert": ["transform"], "send": ["post"], "check": ["verify", "get"],
    "analyze": ["analyse", "evaluate"], "predict": ["forecast", "estimate"], "estimate": ["predict", "calculate"],
    "play": ["start"], "order": ["buy", "purchase"], "buy": ["purchase", "order"], "schedule": ["create", "book"],
}


def _name_tokens(name: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t.lower() for t in re.split(r"[._\-\s]+", s) if t]


def _snake_to_camel(s: str) -> str:
    parts = [p for p in s.split("_") if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) if parts else s


def _camel_to_snake(s: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _similarity(a: ToolSpec, b: ToolSpec) -> float:
    ta, tb = set(_name_tokens(a.name)), set(_name_tokens(b.name))
    da = {w.lower() for w in _WORD_RE.findall(a.description)} - _STOP
    db = {w.lower() for w in _WORD_RE.findall(b.description)} - _STOP
    j = lambda x, y: len(x & y) / len(x | y) if x | y else 0.0  # noqa: E731
    return j(ta, tb) + 0.5 * j(da, db) + 0.3 * j(set(a.properties), set(b.properties))


def _hallucinated_names(name: str, catalog: Sequence[str]) -> list[tuple[str, str, float]]:
    """(kind, name, weight) names a model invents from the right one."""
    out: list[tuple[str, str, float]] = []
    ns, _, base = name.rpartition(".")
    if ns:
        out.append(("namespace_dropped", base, 1.5))
        out.append(("namespace_flattened", ns.replace(".", "_") + "_" + base, 0.6))
    else:
        out.append(("namespace_added", "functions." + name, 0.8))
        dotted = sorted({n.rpartition(".")[0] for n in catalog if "." in n})
        for d in dotted[:2]:
            out.append(("namespace_added", f"{d}.{name}", 0.8))
    prefix = ns + "." if ns else ""
    sep = "-" if "-" in base and "_" not in base else "_"  # kebab-case names keep their separator
    if "_" in base or "-" in base:
        out.append(("case_changed", prefix + _snake_to_camel(base.replace("-", "_")), 1.0))
        if sep == "-":  # kebab-case written as snake_case
            out.append(("case_changed", prefix + base.replace("-", "_"), 0.6))
    elif re.search(r"[a-z][A-Z]", base):
        out.append(("case_changed", prefix + _camel_to_snake(base), 1.0))
    words = [w for w in re.split(r"[_-]", _camel_to_snake(base)) if w]
    camel = bool(re.search(r"[a-z][A-Z]", base))
    join = (lambda ws: _snake_to_camel("_".join(ws))) if camel else (lambda ws: sep.join(ws))  # noqa: E731
    if words and words[0] in _VERB_SYNONYMS:
        for syn in _VERB_SYNONYMS[words[0]]:
            out.append(("verb_synonym", prefix + join(syn.split("_") + words[1:]), 1.3))
    elif words and len(words) <= 3:
        out.append(("verb_added", prefix + join(["get"] + words), 0.8))
    if len(words) >= 2:
        out.append(("word_dropped", prefix + join(words[1:]), 0.7))
        out.append(("word_dropped", prefix + join(words[:-1]), 0.5))
    if len(words) >= 3:
        out.append(("word_dropped", prefix + join(words[:1] + words[2:]), 0.7))
    if words and words[-1].isalpha() and len(words[-1]) > 2:
        last = words[-1]
        alt = last[:-1] if last.endswith("s") and not last.endswith("ss") else last + "s"
        out.append(("plural_singular", prefix + join(words[:-1] + [alt]), 0.3))
    names = set(catalog)
    seen, kept = set(), []
    for kind, n, w in out:
        if n and n != name and n not in names and n not in seen and TOOL_NAME_PATH.match(n):
            seen.add(n)
            kept.append((kind, n, w))
    return kept


_PARAM_SYNONYMS = {
    "location": ["city", "place"], "city": ["location", "city_name"], "loc": ["location"],
    "query": ["q", "search_query"],
    "number": ["num", "n"], "num": ["number"], "n": ["number"], "amount": ["value", "quantity"],
    "start_date": ["from_date", "date_from"], "end_date": ["to_date", "date_to"], "date": ["day"],
    "name": ["title"], "title": ["name"], "id": ["identifier"], "user_id": ["userId", "user"], "limit": ["max_results"],
    "unit": ["units"], "units": ["unit"], "country": ["country_name", "region"], "year": ["date"],
    "text": ["input", "content"], "message": ["text", "msg"], "quantity": ["amount", "count"], "radius": ["r"],
    "length": ["len"], "width": ["w"], "height": ["h"], "temperature": ["temp"], "currency": ["currency_code"],
    "language": ["lang"], "category": ["type"], "type": ["category", "kind"], "url": ["link"],
}


def _param_name_variants(p: str) -> list[str]:
    out = list(_PARAM_SYNONYMS.get(p, []))
    if "_" in p:
        out.append(_snake_to_camel(p))
    elif re.search(r"[a-z][A-Z]", p):
        out.append(_camel_to_snake(p))
    if p.endswith("s") and len(p) > 3:
        out.append(p[:-1])
    elif p.isalpha():
        out.append(p + "s")
    return [v for v in dict.fromkeys(out) if v != p]


# Parameter names models add unasked, with a typical value and the words (in the tool's name or
# description) that make a model think of them; unrelated tools get them rarely.
COMMON_PARAMS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "unit": ("metric", ("distance", "temperature", "weight", "area", "length", "height", "speed", "volume", "measure",
                        "weather")),
    "units": ("metric", ("distance", "temperature", "weather", "measure", "length", "speed")),
    "format": ("json", ("data", "report", "export", "file", "list", "date", "output")),
    "limit": (10, ("search", "list", "find", "results", "records", "items", "query", "fetch", "retrieve")),
    "max_results": (5, ("search", "find", "results", "query", "list", "recommend")),
    "language": ("en", ("text", "translate", "news", "search", "content", "lyrics", "book", "movie")),
    "verbose": (True, ("analysis", "analyze", "calculate", "compute", "details", "run")),
    "include_details": (True, ("details", "information", "info", "get", "retrieve", "profile")),
    "currency": ("USD", ("price", "cost", "payment", "money", "stock", "convert", "amount", "budget", "loan")),
    "precision": (2, ("calculate", "compute", "math", "probability", "rate", "value", "area", "ratio")),
    "round_to": (2, ("calculate", "compute", "math", "average", "mean")),
    "sort_by": ("relevance", ("search", "list", "find", "restaurants", "hotels", "products", "results")),
    "timezone": ("UTC", ("time", "date", "schedule", "event", "meeting", "calendar", "alarm")),
    "country": ("US", ("city", "location", "address", "weather", "holiday", "population", "news")),
    "year": (2023, ("statistics", "history", "population", "revenue", "report", "season")),
    "detailed": (True, ("report", "analysis", "forecast", "information", "summary")),
    "page": (1, ("list", "search", "results", "records")),
    "timeout": (30, ("request", "api", "http", "connect", "server", "url")),
    "mode": ("default", ("play", "run", "transport", "travel", "route", "directions")),
}


def _type_ok(v: Any, schema: Mapping) -> bool:
    t = schema.get("type") if isinstance(schema, Mapping) else None
    if t is None:
        return True
    jt = json_type(v)
    types = t if isinstance(t, list) else [t]
    return jt in types or (jt == "integer" and "number" in types)


def _plausible_value(name: str, schema: Mapping, ctx: _Context, rng: random.Random) -> Any:
    """A value a model would plausibly pass for a parameter it was not asked to fill."""
    if not isinstance(schema, Mapping):
        schema = {}
    if schema.get("enum"):
        return copy.deepcopy(rng.choice(list(schema["enum"])))
    if schema.get("default") not in (None, ""):
        return copy.deepcopy(schema["default"])
    t = schema.get("type")
    t = t[0] if isinstance(t, list) and t else t
    lname = name.lower()
    if t == "boolean":
        return rng.random() < 0.7
    if t == "integer":
        ints = [n for n in ctx.numbers if isinstance(n, int)]
        return rng.choice(ints) if ints and rng.random() < 0.6 else rng.choice([1, 5, 10, 20, 100])
    if t == "number":
        return float(rng.choice(ctx.numbers)) if ctx.numbers and rng.random() < 0.6 else rng.choice([0.5, 1.0, 10.0])
    if t == "array":
        item = _plausible_value(name, schema.get("items") or {"type": "string"}, ctx, rng)
        return [item]
    if t == "object":
        return {}
    if "date" in lname:
        dates = [s for s in ctx.strings if _parse_date(s)]
        return rng.choice(dates) if dates else "2024-01-01"
    if lname in COMMON_PARAMS and isinstance(COMMON_PARAMS[lname][0], str):
        return COMMON_PARAMS[lname][0]
    if ctx.strings and rng.random() < 0.7:
        return rng.choice(ctx.strings)
    if ctx.words:
        return rng.choice(ctx.words)
    return "default"


def _adapt_args(args: Mapping, dst: ToolSpec, ctx: _Context, rng: random.Random) -> dict:
    """Arguments a model would pass to the wrong tool: shared names kept, the rest mapped onto
    the sibling's parameters by name similarity and type; the original args when nothing fits."""
    props = dst.properties
    out = {k: copy.deepcopy(v) for k, v in args.items() if k in props}
    left = [(k, v) for k, v in args.items() if k not in props]
    order = [p for p in dst.required if p not in out] + [p for p in props if p not in out and p not in dst.required]
    for p in order:
        best, best_score = None, 0.0
        for i, (k, v) in enumerate(left):
            if not _type_ok(v, props[p]):
                continue
            score = len(set(_name_tokens(k)) & set(_name_tokens(p))) + (0.5 if p in dst.required else 0.0)
            if score > best_score:
                best, best_score = i, score
        if best is not None:
            out[p] = copy.deepcopy(left.pop(best)[1])
        elif p in dst.required:
            out[p] = _plausible_value(p, props[p], ctx, rng)
    return out if out else {k: copy.deepcopy(v) for k, v in args.items()}


# ----------------------------------------------------------------------------------------------
# Candidates per error type
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """A rejected output: `text` as a model would emit it, the parsed `calls` (None when the text
    does not parse, i.e. format errors), the verified `error_type`, and the `kind` of rewrite."""

    text: str
    calls: list[ToolCall] | None
    error_type: str
    kind: str


@dataclass
class _Cand:
    kind: str
    calls: list[ToolCall] | None = None
    text: str | None = None
    weight: float = 1.0


def _replace(calls: Sequence[ToolCall], i: int, call: ToolCall) -> list[ToolCall]:
    out = list(calls)
    out[i] = call
    return out


def _with_arg(call: ToolCall, key: str, value: Any) -> ToolCall:
    args = dict(call.arguments)
    args[key] = value
    return ToolCall(call.name, args)


def _without_arg(call: ToolCall, key: str) -> ToolCall:
    return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != key})


def _renamed_arg(call: ToolCall, old: str, new: str) -> ToolCall:
    return ToolCall(call.name, {(new if k == old else k): v for k, v in call.arguments.items()})


class _Builder:
    """Everything the candidate builders need about one example."""

    def __init__(self, example: Example, rng: random.Random):
        self.ex = example
        self.rng = rng
        # Half the time the rejected side starts from a non-canonical acceptable form, like a real
        # model whose other arguments are fine but not written as the first listed answer.
        self.base = resolve_reference(example.reference, rng if rng.random() < 0.5 else None)
        self.refs = list(example.reference)
        self.ctx = _context(example, self.base)
        self.names = [t.name for t in example.tools]

    def tool(self, name: str) -> ToolSpec | None:
        return self.ex.tool(name)

    def schema(self, call: ToolCall, p: str) -> Mapping:
        t = self.tool(call.name)
        return (t.properties.get(p) if t else None) or {}

    # -- incorrect_parameter_value -----------------------------------------------------------
    def param_value(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            for p, v in call.arguments.items():
                others = [o for j, c in enumerate(self.base) for q, o in c.arguments.items() if (j, q) != (i, p)]
                # values of the same parameter in sibling calls first: the classic parallel mix-up
                same_param = [c.arguments[p] for j, c in enumerate(self.base) if j != i and p in c.arguments]
                for kind, nv, w in _value_candidates(v, ref.params.get(p, []), self.schema(call, p), self.ctx, i, p,
                                                     same_param + others):
                    out.append(_Cand(kind, _replace(self.base, i, _with_arg(call, p, nv)), weight=w))
            keys = list(call.arguments)
            for a in range(len(keys)):  # two values swapped within the call
                for b in range(a + 1, len(keys)):
                    va, vb = call.arguments[keys[a]], call.arguments[keys[b]]
                    if (_same_kind(va, vb) and va != vb and isinstance(va, (str, int, float))
                            and _shape(va) == _shape(vb)):
                        swapped = _with_arg(_with_arg(call, keys[a], vb), keys[b], va)
                        out.append(_Cand("swapped_params", _replace(self.base, i, swapped), weight=1.0))
        for i in range(len(self.base)):  # one value swapped across two calls of the same tool
            for j in range(i + 1, len(self.base)):
                ci, cj = self.base[i], self.base[j]
                if ci.name != cj.name:
                    continue
                for p in ci.arguments:
                    if p in cj.arguments and ci.arguments[p] != cj.arguments[p]:
                        calls = list(self.base)
                        calls[i] = _with_arg(ci, p, cj.arguments[p])
                        calls[j] = _with_arg(cj, p, ci.arguments[p])
                        out.append(_Cand("swapped_across_calls", calls, weight=1.5))
        return out

    # -- incorrect_function_name ---------------------------------------------------------------
    def function_name(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            spec = self.tool(call.name)
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                sim = _similarity(spec, sib) if spec else 0.1
                # mostly arguments fitted to the sibling's schema, sometimes the original ones as they were
                adapt = self.rng.random() < 0.7
                args = _adapt_args(call.arguments, sib, self.ctx, self.rng) if adapt else dict(call.arguments)
                out.append(_Cand("sibling_tool", _replace(self.base, i, ToolCall(sib.name, args)), weight=0.2 + sim))
            for kind, name, w in _hallucinated_names(call.name, self.names):
                calls = _replace(self.base, i, ToolCall(name, dict(call.arguments)))
                out.append(_Cand("hallucinated_" + kind, calls, weight=w))
        return out

    # -- incorrect_number_of_functions ---------------------------------------------------------
    def number_of_functions(self) -> list[_Cand]:
        out = []
        base = self.base
        if len(base) > 1:
            for i in range(len(base)):
                out.append(_Cand("dropped_call", base[:i] + base[i + 1:], weight=1.0))
            # merged calls: one call whose differing string values are joined ("A and B")
            if len({c.name for c in base}) == 1:
                merged = dict(base[0].arguments)
                ok = False
                for p in merged:
                    vals = [c.arguments.get(p) for c in base]
                    if all(isinstance(v, str) for v in vals) and len(set(vals)) > 1:
                        merged[p] = self.rng.choice([", ", " and "]).join(vals)
                        ok = True
                if ok:
                    out.append(_Cand("merged_calls", [ToolCall(base[0].name, merged)], weight=1.2))
            if len(base) > 2:
                out.append(_Cand("dropped_call", base[:-2], weight=0.4))
        for i, call in enumerate(base):
            out.append(_Cand("duplicate_call", base[: i + 1] + [call] + base[i + 1:], weight=0.4))
            # repeated call with another value (a model that "also" tries another reading)
            ref = self.refs[i]
            for p, v in call.arguments.items():
                alts = ref.params.get(p, [])
                for kind, nv, w in _value_candidates(v, alts, self.schema(call, p), self.ctx, i, p, []):
                    if kind in ("wrong_span", "enum_other", "default_value", "near_synonym", "entity_alias",
                                "location_qualifier_added", "location_state_expanded", "boolean_flipped"):
                        calls = base[: i + 1] + [_with_arg(call, p, nv)] + base[i + 1:]
                        out.append(_Cand("repeated_call_other_value", calls, weight=0.3 * w))
            # split call: a comma/and-joined string value spread over two calls
            for p, v in call.arguments.items():
                if isinstance(v, str):
                    parts = [s.strip() for s in re.split(r",\s*|\s+and\s+", v) if s.strip()]
                    # a list packed into one string ("repo1,repo2", "Paris and Rome"), not an address
                    if (2 <= len(parts) <= 3 and not _parse_date(v) and not parts[0][:1].isdigit()
                            and not any(x.upper() in _US_STATES or x.lower() in _COUNTRIES for x in parts)):
                        split = [_with_arg(call, p, s) for s in parts]
                        out.append(_Cand("split_call", base[:i] + split + base[i + 1:], weight=0.8))
            spec = self.tool(call.name)
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                sim = _similarity(spec, sib) if spec else 0.1
                extra = ToolCall(sib.name, _adapt_args(call.arguments, sib, self.ctx, self.rng))
                pos = self.rng.choice([i, i + 1])
                out.append(_Cand("extra_sibling_call", base[:pos] + [extra] + base[pos:], weight=0.3 + sim))
        return out

    # -- missing parameters ---------------------------------------------------------------------
    def missing_required(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            spec = self.tool(call.name)
            if not spec:
                continue
            for p in spec.required:
                if p not in call.arguments:
                    continue
                out.append(_Cand("dropped_required", _replace(self.base, i, _without_arg(call, p)), weight=1.0))
                for alt in _param_name_variants(p):
                    if alt not in spec.properties:
                        calls = _replace(self.base, i, _renamed_arg(call, p, alt))
                        out.append(_Cand("renamed_required", calls, weight=0.4))
        return out

    def missing_optional(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            spec = self.tool(call.name)
            required = set(spec.required) if spec else set()
            for p, alts in ref.params.items():
                if p in call.arguments and p not in required and "" not in alts:
                    out.append(_Cand("dropped_optional", _replace(self.base, i, _without_arg(call, p)), weight=1.0))
        return out

    # -- unexpected_parameter -------------------------------------------------------------------
    def unexpected(self) -> list[_Cand]:
        out = []
        for i, (call, ref) in enumerate(zip(self.base, self.refs)):
            spec = self.tool(call.name)
            if not spec:
                continue
            props = spec.properties
            for p, ps in props.items():  # in the schema but not wanted by the reference
                if p not in ref.params and p not in call.arguments:
                    value = _plausible_value(p, ps, self.ctx, self.rng)
                    out.append(_Cand("schema_param_not_expected", _replace(self.base, i, _with_arg(call, p, value)),
                                     weight=1.5))
            desc_words = {w.lower() for w in _WORD_RE.findall(spec.description)}
            for sib in self.ex.tools:
                if sib.name == call.name:
                    continue
                for p, ps in sib.properties.items():
                    if p not in props:
                        value = _plausible_value(p, ps, self.ctx, self.rng)
                        calls = _replace(self.base, i, _with_arg(call, p, value))
                        out.append(_Cand("sibling_param", calls, weight=0.6))
            topic = desc_words | set(_name_tokens(call.name))
            for p, (v, triggers) in COMMON_PARAMS.items():
                if p in props:
                    continue
                w = 1.0 if topic & set(triggers) else 0.05
                calls = _replace(self.base, i, _with_arg(call, p, copy.deepcopy(v)))
                out.append(_Cand("common_param", calls, weight=w))
            for p in call.arguments:  # an optional parameter under a made-up name
                if p in spec.required:
                    continue
                for alt in _param_name_variants(p):
                    if alt not in props:
                        calls = _replace(self.base, i, _renamed_arg(call, p, alt))
                        out.append(_Cand("renamed_optional", calls, weight=0.8))
        return out

    # -- incorrect_parameter_type ---------------------------------------------------------------
    def param_type(self) -> list[_Cand]:
        out = []
        for i, call in enumerate(self.base):
            for p, v in call.arguments.items():
                st = self.schema(call, p).get("type")
                st = st if isinstance(st, str) else None
                new: list[tuple[str, Any, float]] = []
                if isinstance(v, bool):
                    as_text = self.rng.choice(["true", "True"] if v else ["false", "False"])
                    new += [("bool_as_string", as_text, 1.0),
                            ("bool_as_int", int(v), 0.3)]
                elif isinstance(v, (int, float)):
                    new.append(("number_as_string", str(v), 1.5))
                    if isinstance(v, int) and st == "integer":
                        new.append(("int_as_float", float(v), 1.0))
                    if st in ("integer", "number", "string"):
                        new.append(("scalar_wrapped_in_list", [v], 0.3))
                elif isinstance(v, str):
                    if re.fullmatch(r"-?\d+", v.strip()):
                        new.append(("numeric_string_as_number", int(v.strip()), 1.5))
                    elif re.fullmatch(r"-?\d+\.\d+", v.strip()):
                        new.append(("numeric_string_as_number", float(v.strip()), 1.5))
                    elif v.strip().lower() in ("true", "false"):
                        new.append(("string_as_bool", v.strip().lower() == "true", 1.0))
                    if st == "string":
                        new.append(("scalar_wrapped_in_list", [v], 0.4))
                elif isinstance(v, list):
                    new.append(("list_as_string", json.dumps(v, ensure_ascii=False), 1.2))
                    if all(isinstance(x, (str, int, float)) for x in v):
                        new.append(("list_as_csv", ", ".join(str(x) for x in v), 1.0))
                    if len(v) == 1:
                        new.append(("list_unwrapped", copy.deepcopy(v[0]), 1.5))
                elif isinstance(v, Mapping):
                    new.append(("dict_as_string", json.dumps(v, ensure_ascii=False), 1.0))
                for kind, nv, w in new:
                    out.append(_Cand(kind, _replace(self.base, i, _with_arg(call, p, nv)), weight=w))
        return out

    # -- incorrect_output_format ----------------------------------------------------------------
    def output_format(self) -> list[_Cand]:
        rng, base = self.rng, self.base
        out = []
        if not base:
            return out
        for style in ("json", "json_pretty", "tool_call", "python"):
            s = format_calls(base, style)
            if len(s) > 12:
                cut = rng.randint(max(4, int(len(s) * 0.4)), len(s) - 3)
                out.append(_Cand("truncated_" + style, text=s[:cut], weight=1.0))
        js = format_calls(base, "json")
        out.append(_Cand("missing_closing_bracket", text=js[:-1], weight=1.0))
        out.append(_Cand("missing_closing_bracket", text=js[:-2] + "]", weight=0.6))
        out.append(_Cand("fenced_missing_bracket", text="```json\n" + js[:-1] + "\n```", weight=1.0))
        if style_supports(base, "python"):
            py = format_calls(base, "python")
            out.append(_Cand("python_unbalanced", text=py[:-2] + "]", weight=1.0))
            out.append(_Cand("python_unbalanced", text=py[:-1], weight=0.6))
            pos = ", ".join(f"{c.name}({', '.join(py_literal(v) for v in c.arguments.values())})" for c in base)
            if any(c.arguments for c in base):
                out.append(_Cand("positional_arguments", text=f"[{pos}]", weight=0.8))
            def unquoted(c: ToolCall) -> str:
                args = ", ".join(f"{k}={v if isinstance(v, str) else py_literal(v)}" for k, v in c.arguments.items())
                return f"{c.name}({args})"

            unq = ", ".join(unquoted(c) for c in base)
            if any(isinstance(v, str) and (" " in v or "," in v) for c in base for v in c.arguments.values()):
                out.append(_Cand("unquoted_string_arguments", text=f"[{unq}]", weight=0.8))
        c0 = base[0]
        args_str = json.dumps(c0.arguments, ensure_ascii=False)
        broken_args = json.dumps([{"name": c0.name, "arguments": args_str[:-1]}], ensure_ascii=False)
        out.append(_Cand("arguments_string_broken", text=broken_args, weight=0.6))
        out.append(_Cand("tool_call_unterminated",
                         text="<tool_call>\n" + json.dumps(c0.to_dict(), ensure_ascii=False)[:-2], weight=0.6))
        # arguments as `k=v` (how models write them in prose; also keeps names renamable by obfuscation)
        described = ", ".join(f"{k}={py_literal(v)}" for k, v in c0.arguments.items())
        spec = self.tool(c0.name)
        req = (spec.required if spec else []) or list(c0.arguments)
        nl = [
            f"I'll use the {c0.name} function" + (f" with {described}." if described else "."),
            f"To do this, I would call {c0.name}" + (f" with {described}." if described else ".")
            + " Let me know if you want me to proceed.",
            f"Sure! I can help with that. I need to call {c0.name} for this request.",
        ]
        if req:
            nl.append(f"Could you please provide the {req[0].replace('_', ' ')}? "
                      "I need it before I can help with this request.")
        for t in nl:
            out.append(_Cand("natural_language", text=t, weight=0.5))
        return out


_BUILDERS = {
    "incorrect_parameter_value": _Builder.param_value,
    "incorrect_function_name": _Builder.function_name,
    "incorrect_number_of_functions": _Builder.number_of_functions,
    "missing_required_parameter": _Builder.missing_required,
    "missing_optional_parameter": _Builder.missing_optional,
    "unexpected_parameter": _Builder.unexpected,
    "incorrect_parameter_type": _Builder.param_type,
    "incorrect_output_format": _Builder.output_format,
}

# Sampling weights. Candidates are grouped (a group is a family of rewrites: all reformatted
# entities, all hallucinated names, ...); a group is drawn by its weight, then a candidate of the
# group by its own weight. So a family with many candidates (wrong spans exist for every
# parameter) is not favoured just for having many, and the mix follows how often real models
# make each kind of mistake. Groups not listed weigh 1.0.
_GROUP_OF_PREFIX = {
    "hallucinated_": "hallucinated_name", "date_": "reformatted", "location_": "reformatted",
    "time_": "reformatted", "entity_alias": "reformatted", "near_synonym": "reformatted",
    "abbreviated": "reformatted", "digit_off_by_one": "reformatted", "list_element_": "list_edit",
    "list_reordered": "list_edit", "nested_": "nested_value", "truncated_": "truncated",
}
GROUP_WEIGHTS: dict[str, float] = {
    # incorrect_parameter_value
    "wrong_span": 3.0, "wrong_span_word": 0.6, "span_boundary": 1.5, "span_truncated": 1.0,
    "overlong_span": 0.8, "unresolved_relative_date": 1.5,
    "plural_singular": 0.4, "swapped_params": 1.2, "swapped_across_calls": 2.0, "enum_other": 1.5,
    "default_value": 1.2, "off_by_one": 1.0, "unit_scaled": 1.2, "rounded": 0.6, "sign_dropped": 0.8,
    "reformatted": 2.5, "boolean_flipped": 1.2, "list_edit": 1.0, "nested_value": 1.0,
    # incorrect_function_name: siblings first, as in the benchmark
    "sibling_tool": 3.0, "hallucinated_name": 1.3,
    # incorrect_number_of_functions
    "dropped_call": 2.0, "merged_calls": 1.2, "duplicate_call": 0.5, "repeated_call_other_value": 1.0,
    "split_call": 0.8, "extra_sibling_call": 1.5,
    # missing_required_parameter
    "dropped_required": 2.0, "renamed_required": 0.8,
    # unexpected_parameter
    "schema_param_not_expected": 2.0, "sibling_param": 1.0, "common_param": 1.0, "renamed_optional": 1.0,
    # incorrect_parameter_type
    "number_as_string": 2.0, "int_as_float": 1.2, "bool_as_string": 1.5, "bool_as_int": 0.3,
    "numeric_string_as_number": 1.5, "string_as_bool": 0.8, "list_as_string": 1.0, "list_as_csv": 0.8,
    "list_unwrapped": 1.5, "dict_as_string": 0.8, "scalar_wrapped_in_list": 0.4,
    # incorrect_output_format
    "truncated": 1.5, "missing_closing_bracket": 1.0, "fenced_missing_bracket": 0.8,
    "python_unbalanced": 1.0, "positional_arguments": 0.8, "unquoted_string_arguments": 0.8,
    "arguments_string_broken": 0.5, "tool_call_unterminated": 0.6, "natural_language": 1.0,
}


def group_of(kind: str) -> str:
    for prefix, group in _GROUP_OF_PREFIX.items():
        if kind.startswith(prefix):
            return group
    return kind


def _draw(cands: list[_Cand], rng: random.Random) -> Iterable[_Cand]:
    """Weighted draws without replacement: first a group, then a candidate of that group."""
    by_group: dict[str, list[_Cand]] = {}
    for c in cands:
        by_group.setdefault(group_of(c.kind), []).append(c)
    while by_group:
        groups = list(by_group)
        g = rng.choices(groups, weights=[GROUP_WEIGHTS.get(x, 1.0) for x in groups])[0]
        pool = by_group[g]
        i = rng.choices(range(len(pool)), weights=[max(c.weight, 1e-6) for c in pool])[0]
        yield pool.pop(i)
        if not pool:
            del by_group[g]


def _shuffle_args(calls: Sequence[ToolCall], rng: random.Random, p: float) -> list[ToolCall]:
    """Argument order as models vary it (mostly schema order, sometimes not); same on both sides."""
    out = []
    for c in calls:
        items = list(c.arguments.items())
        if len(items) > 1 and rng.random() < p:
            rng.shuffle(items)
        out.append(ToolCall(c.name, dict(items)))
    return out


ARG_SHUFFLE_P = 0.2


def _verify(text: str, example: Example):
    from fcrm_ray.toolcall.verify import verify  # sibling module of the pure core

    return verify(text, example.reference, example.tools)


def mutate(example: Example, error_type: str, rng: random.Random, n: int = 1,
           max_checks: int | None = None) -> list[Mutation]:
    """Up to `n` distinct rejected outputs wrong with exactly `error_type` (verifier-checked).
    Fewer when the example does not admit the error (no optional parameters, one-tool catalog
    for some flavours, ...). Deterministic given the state of `rng`."""
    if error_type not in _BUILDERS:
        raise ValueError(f"unknown error_type {error_type!r}; expected one of {ERROR_TYPES}")
    if n <= 0 or not example.reference:
        return []
    b = _Builder(example, rng)
    cands = _BUILDERS[error_type](b)
    budget = max_checks if max_checks is not None else 6 * n + 20
    out: list[Mutation] = []
    seen: set[str] = set()
    for cand in _draw(cands, rng):
        if len(out) >= n or budget <= 0:
            break
        if cand.calls is not None:
            calls = _shuffle_args(cand.calls, rng, ARG_SHUFFLE_P)
            key = json.dumps([c.to_dict() for c in calls], sort_keys=True, default=str)
            if key in seen:
                continue
            texts = [format_calls(calls, None, rng)]
            if not texts[0].lstrip().startswith("["):
                texts.append(format_calls(calls, "json"))  # fallback if a surface did not parse
        else:
            calls, key, texts = None, cand.text or "", [cand.text or ""]
            if key in seen:
                continue
        for text in texts:
            budget -= 1
            v = _verify(text, example)
            if not v.correct and v.error_type == error_type:
                seen.add(key)
                out.append(Mutation(text=text, calls=calls, error_type=error_type, kind=cand.kind))
                break
            if v.error_type != "incorrect_output_format" or calls is None:
                break
    return out


def mutate_all(example: Example, rng: random.Random, per_type: int | Mapping[str, int] = 1) -> list[Mutation]:
    """Mutations of every error type (`per_type` each, or a dict error_type -> count)."""
    out: list[Mutation] = []
    for et in ERROR_TYPES:
        n = per_type.get(et, 0) if isinstance(per_type, Mapping) else per_type
        if n:
            out.extend(mutate(example, et, rng, n))
    return out


def chosen_variants(example: Example, rng: random.Random, n: int) -> list[str]:
    """Up to `n` distinct texts the verifier accepts: other acceptable values, optional
    parameters present or absent, other argument/call order, other output surfaces. Forms with
    new content come before mere re-formattings of a form already taken."""
    if n <= 0 or not example.reference:
        return []
    out: list[str] = []
    seen_text: set[str] = set()
    seen_key: set[str] = set()
    later: list[str] = []
    for _ in range(4 * n + 8):
        if len(out) >= n:
            break
        # same mix of canonical / other acceptable forms as the rejected side's starting point, so
        # e.g. an omitted optional parameter is no cue for either side
        calls = resolve_reference(example.reference, rng if rng.random() < 0.5 else None)
        calls = _shuffle_args(calls, rng, ARG_SHUFFLE_P)
        if len(calls) > 1 and rng.random() < 0.3:
            calls = list(calls)
            rng.shuffle(calls)
        text = format_calls(calls, None, rng)
        if text in seen_text:
            continue
        seen_text.add(text)
        if not _verify(text, example).correct:
            continue
        key = json.dumps(sorted(json.dumps(c.to_dict(), sort_keys=True, default=str) for c in calls))
        if key in seen_key:
            later.append(text)
            continue
        seen_key.add(key)
        out.append(text)
    for t in later:
        if len(out) >= n:
            break
        out.append(t)
    return out
