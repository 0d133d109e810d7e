"""Wrong values of the right type for one parameter, as real models produce them: another span,
the same entity/date/time written differently, off-by-one and unit mistakes, another enum value."""

from __future__ import annotations

import copy
import datetime as _dt
import re
from typing import Any, Mapping, Sequence

from fcrm_ray.toolcall.mutate.reference import _is_alt_dict
from fcrm_ray.toolcall.mutate.spans import _STOP, _Context


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
