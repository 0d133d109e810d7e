"""Meaning-preserving perturbations of pair rows for the robustness benchmark.

Each perturbation takes normalised pair rows (`data.pairs.PAIR_COLUMNS`, JSON columns as JSON
strings) and returns new rows; inputs are never modified. Randomness is seeded per row from
`(seed, perturbation, row id)`, so a row is perturbed the same way whatever else is in the set.
None of them changes which side is correct: the verifier's verdict of `chosen_output` and
`rejected_output` against the (equally perturbed) reference is the same before and after
(checked in tests/test_eval_robustness.py).

- `obfuscate`: function and parameter names -> random identifiers (`toolcall.obfuscate`),
  applied consistently to catalog, conversation, reference and both outputs.
- `shuffle_tools`: the catalog in another order.
- `distractors`: `k` extra tools taken from other rows' catalogs (names not already present).
- `reorder_keys`: the keys of every JSON object in the tool schemas and the argument order of
  both calls (outputs keep their surface: JSON stays JSON, Python calls stay Python calls).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable, Mapping, Sequence

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.toolcall.surface import detect_style, format_calls

PERTURBATIONS: tuple[str, ...] = ("obfuscate", "shuffle_tools", "distractors", "reorder_keys")


def row_rng(seed: int, name: str, row: Mapping) -> random.Random:
    return random.Random(stable_hash("perturb", seed, name, row.get("id", ""), n=16))


def _loads(text: str, default: Any) -> Any:
    if text in (None, ""):
        return default
    return json.loads(text) if isinstance(text, str) else copy.deepcopy(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ----------------------------------------------------------------------------------------------
# Obfuscated names
# ----------------------------------------------------------------------------------------------


def obfuscate_row(row: Mapping, seed: int = 0) -> dict:
    """Random function/parameter names everywhere in the row (same map for both outputs)."""
    from fcrm_ray.toolcall.obfuscate import obfuscate_example, obfuscate_output
    from fcrm_ray.toolcall.schema import Example

    ref = _loads(row.get("reference"), [])
    ex = Example.from_dict({"id": row.get("example_id") or row.get("id", ""), "tools": _loads(row["tools"], []),
                            "conversation": _loads(row["conversation"], []), "reference": ref or []})
    obf, mapping = obfuscate_example(ex, f"{seed}:{row.get('id', '')}")
    out = dict(row)
    out["tools"] = _dumps([t.to_dict() for t in obf.tools])
    out["conversation"] = _dumps(obf.conversation)
    out["reference"] = _dumps([r.to_bfcl() for r in obf.reference]) if ref else (row.get("reference") or "")
    out["chosen_output"] = obfuscate_output(row["chosen_output"], mapping)
    out["rejected_output"] = obfuscate_output(row["rejected_output"], mapping)
    out["obfuscated"] = True
    return out


# ----------------------------------------------------------------------------------------------
# Tool order and distractor tools
# ----------------------------------------------------------------------------------------------


def shuffle_tools_row(row: Mapping, seed: int = 0) -> dict:
    """The catalog in a random order (a different order whenever there are 2+ tools)."""
    tools = _loads(row["tools"], [])
    rng = row_rng(seed, "shuffle_tools", row)
    if len(tools) > 1:
        order = list(range(len(tools)))
        while order == sorted(order):  # the identity permutation would not perturb anything
            rng.shuffle(order)
        tools = [tools[i] for i in order]
    return {**row, "tools": _dumps(tools)}


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, Mapping):
        fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        name = fn.get("name")
        return name if isinstance(name, str) else None
    return None


def add_distractors(rows: Sequence[Mapping], k: int = 3, seed: int = 0) -> list[dict]:
    """Each row's catalog plus up to `k` tools from other rows (by example), inserted at random
    positions. A tool whose name the row already has is never added (it would change which call
    is correct)."""
    catalogs: dict[str, list] = {}
    for r in rows:
        catalogs.setdefault(r.get("example_id") or r.get("id", ""), _loads(r["tools"], []))
    pool = [(ex, t) for ex, tools in sorted(catalogs.items()) for t in tools if _tool_name(t)]
    out = []
    for r in rows:
        tools = _loads(r["tools"], [])
        have = {_tool_name(t) for t in tools}
        me = r.get("example_id") or r.get("id", "")
        rng = row_rng(seed, "distractors", r)
        cands = [t for ex, t in pool if ex != me and _tool_name(t) not in have]
        rng.shuffle(cands)
        added = 0
        for t in cands:
            if added >= k:
                break
            name = _tool_name(t)
            if name in have:
                continue
            have.add(name)
            tools.insert(rng.randrange(len(tools) + 1), copy.deepcopy(t))
            added += 1
        out.append({**r, "tools": _dumps(tools)})
    return out


# ----------------------------------------------------------------------------------------------
# Reordered JSON keys
# ----------------------------------------------------------------------------------------------


def shuffle_keys(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in a random order (lists keep their order)."""
    if isinstance(value, Mapping):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffle_keys(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffle_keys(v, rng) for v in value]
    return value


def reorder_output(text: str, rng: random.Random) -> str:
    """A call text with its argument order (and JSON key order) shuffled, in the same surface.
    Text that does not parse as calls is returned unchanged (its breakage is the point)."""
    from fcrm_ray.toolcall.parse import parse_calls
    from fcrm_ray.toolcall.schema import ToolCall

    if not isinstance(text, str):
        return text
    style = detect_style(text)
    if style in ("json", "json_object", "json_pretty"):
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            return text
        return json.dumps(shuffle_keys(obj, rng), ensure_ascii=False, indent=2 if style == "json_pretty" else None)
    parsed = parse_calls(text)
    if parsed.calls is None or style is None:
        return text
    calls = [ToolCall(c.name, shuffle_keys(dict(c.arguments), rng)) for c in parsed.calls]
    new = format_calls(calls, style)
    reparsed = parse_calls(new).calls
    # only accept a rewrite that reads back as the same calls
    if reparsed is None or [c.to_dict() for c in reparsed] != [c.to_dict() for c in calls]:
        return text
    return new


def reorder_keys_row(row: Mapping, seed: int = 0) -> dict:
    rng = row_rng(seed, "reorder_keys", row)
    tools = shuffle_keys(_loads(row["tools"], []), rng)
    return {**row, "tools": _dumps(tools), "chosen_output": reorder_output(row["chosen_output"], rng),
            "rejected_output": reorder_output(row["rejected_output"], rng)}


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def _per_row(fn: Callable[[Mapping, int], dict]) -> Callable[..., list[dict]]:
    def apply(rows: Sequence[Mapping], seed: int = 0, **_: Any) -> list[dict]:
        return [fn(r, seed) for r in rows]

    return apply


_APPLY: dict[str, Callable[..., list[dict]]] = {
    "obfuscate": _per_row(obfuscate_row),
    "shuffle_tools": _per_row(shuffle_tools_row),
    "distractors": lambda rows, seed=0, distractors=3, **_: add_distractors(rows, k=distractors, seed=seed),
    "reorder_keys": _per_row(reorder_keys_row),
}


def perturb_rows(name: str, rows: Sequence[Mapping], seed: int = 0, **params: Any) -> list[dict]:
    """Apply perturbation `name` (one of PERTURBATIONS) to all rows."""
    if name not in _APPLY:
        raise ValueError(f"unknown perturbation {name!r}; expected one of {PERTURBATIONS}")
    return _APPLY[name](rows, seed=seed, **params)
