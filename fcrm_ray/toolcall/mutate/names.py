"""Names a model gets wrong: sibling tools ranked by similarity, hallucinated tool names, renamed
parameters, and parameters models add unasked, with plausible values."""

from __future__ import annotations

import copy
import random
import re
from typing import Any, Mapping, Sequence

from fcrm_ray.toolcall.mutate.spans import _STOP, _WORD_RE, _Context
from fcrm_ray.toolcall.mutate.values import _parse_date
from fcrm_ray.toolcall.schema import ToolSpec
from fcrm_ray.toolcall.surface import TOOL_NAME_PATH
from fcrm_ray.toolcall.verify import json_type

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
