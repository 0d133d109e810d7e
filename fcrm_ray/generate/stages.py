"""The stages of pair synthesis, as plain functions over rows (dicts), each testable alone:

    obfuscate -> render generation prompt -> generate (backends.py) -> judge (parse + verify against
    the reference) -> emit pairs -> dedup

`pipeline.py` composes them with Ray Data; none of them imports Ray. A *work row* is one example
as it travels through a generator branch:

| column       | meaning                                                                  |
|--------------|--------------------------------------------------------------------------|
| shard        | input shard index (unit of resume)                                       |
| example_id   | id of the example                                                        |
| example      | JSON of `Example.to_dict()` (already obfuscated when `obfuscated`)       |
| source, category, split, obfuscated | copied into every pair                            |
| generator    | generator tag (config name) - added by the generator stage               |
| unit         | sample slot of a fanned-out request (vLLM: 0..n-1; else 0)                |
| candidates   | JSON list of `{"text", "tag"}` produced by the generator                 |
| gen_error    | "" or why the generator failed on this row (after retries)               |
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from fcrm_ray.data.pairs import normalize_pair_row, stable_hash
from fcrm_ray.toolcall import mutate
from fcrm_ray.toolcall.obfuscate import obfuscate_example
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import Example, calls_to_text
from fcrm_ray.toolcall.verify import canonical_key, verify

WORK_COLUMNS = ("shard", "example_id", "example", "source", "category", "split", "obfuscated")

# Columns a judged pair carries besides PAIR_COLUMNS, so the shard flush can order and dedup
# deterministically (whatever order Ray Data delivered the rows in).
RANK_COLUMNS = ("gen_index", "unit", "cand_index", "dedup_key")


def example_seed(*parts: Any) -> int:
    """A 63-bit seed from stable parts (never Python's salted `hash`)."""
    return int(stable_hash(*parts, n=15), 16)


# --- obfuscate -------------------------------------------------------------------------------

def should_obfuscate(example_id: str, fraction: float, seed: int) -> bool:
    """Deterministic per-example coin with P = fraction."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    return (example_seed("obfuscate", seed, example_id) % 1_000_000) / 1_000_000 < fraction


def obfuscate_stage(example: Example, fraction: float, seed: int) -> tuple[Example, bool]:
    """The example the generators will see: renamed functions/params for a `fraction` of examples.
    The reference is renamed with it, so verification happens entirely in the obfuscated space."""
    if not should_obfuscate(example.id, fraction, seed):
        return example, False
    obf, _mapping = obfuscate_example(example, example_seed("obfuscate-names", seed, example.id))
    return obf, True


def work_row(example: Example, shard: int, split: str, obfuscated: bool) -> dict:
    """The input-shard row for one (possibly obfuscated) example."""
    return {
        "shard": int(shard),
        "example_id": example.id,
        "example": json.dumps(example.to_dict(), ensure_ascii=False),
        "source": example.source,
        "category": example.category,
        "split": split,
        "obfuscated": bool(obfuscated),
    }


def row_example(row: Mapping) -> Example:
    return Example.from_dict(json.loads(row["example"]))


# --- render ----------------------------------------------------------------------------------

# Used only for tokenizers without a chat template (e.g. BERT-style): a documented plain format.
PLAIN_GENERATION_TEMPLATE = (
    "You can call these functions:\n{tools}\n\n{conversation}\n"
    "Answer with a JSON list of calls [{{\"name\": ..., \"arguments\": {{...}}}}].\nassistant: "
)


def render_generation_prompt(tokenizer, tools: Sequence, conversation: Sequence[Mapping],
                             chat_template_kwargs: Mapping | None = None) -> str:
    """The prompt a generator model answers: its own chat template with this row's `tools=` and
    `add_generation_prompt=True` (the RM's input, prompt + call, is `toolcall.render`'s job)."""
    openai_tools = [t.to_openai() if hasattr(t, "to_openai") else t for t in tools]
    messages = [dict(m) for m in conversation]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tools=openai_tools, add_generation_prompt=True,
                                             tokenize=False, **dict(chat_template_kwargs or {}))
    convo = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    tools_text = "\n".join(json.dumps(t, ensure_ascii=False) for t in openai_tools)
    return PLAIN_GENERATION_TEMPLATE.format(tools=tools_text, conversation=convo)


def render_stage(rows: list[dict], tokenizer, chat_template_kwargs: Mapping | None = None) -> list[dict]:
    """Add `prompt` to every work row, each rendered with its own tool catalog."""
    out = []
    for row in rows:
        ex = row_example(row)
        out.append({**row, "prompt": render_generation_prompt(tokenizer, ex.tools, ex.conversation, chat_template_kwargs)})
    return out


# --- judge + emit ----------------------------------------------------------------------------

def dedup_key(text: str) -> str:
    """The normalised rejected call: `canonical_key` of the parsed calls (order- and
    value-normalised), or the whitespace-collapsed raw text when it does not parse."""
    parsed = parse_calls(text)
    if parsed.calls is not None:
        return "calls:" + canonical_key(parsed.calls)
    return "raw:" + " ".join(str(text).split())


def chosen_forms(example: Example, variants: int) -> list[str]:
    """The reference's canonical call text, plus up to `variants` alternative acceptable forms
    (`mutate.chosen_variants`, verifier-checked), drawn once per example."""
    canonical = calls_to_text(r.canonical_call() for r in example.reference)
    if variants <= 0:
        return [canonical]
    rng = random.Random(example_seed("chosen-forms", example.id))
    return [canonical] + [v for v in mutate.chosen_variants(example, rng, variants) if v != canonical]


def chosen_output(example: Example, variants: int, pair_seed: int, forms: list[str] | None = None) -> str:
    """`chosen_output` of one pair: one of the example's chosen forms, picked by the pair's seed."""
    forms = forms or chosen_forms(example, variants)
    return forms[random.Random(pair_seed).randrange(len(forms))]


def judge_stage(rows: list[dict], gen_index: int, chosen_variants: int = 0) -> tuple[list[dict], list[dict]]:
    """Parse + verify every candidate of every work row against the reference and emit a pair for
    each rejected one. Returns (pairs with RANK_COLUMNS, tallies): one tally per row with
    `candidates`, `correct`, `gen_errors` so the shard's counts add up."""
    pairs, tallies = [], []
    for row in rows:
        cands = json.loads(row.get("candidates") or "[]")
        tally = {"shard": int(row["shard"]), "generator": row["generator"], "units": 1,
                 "candidates": len(cands), "correct": 0, "gen_errors": int(bool(row.get("gen_error"))),
                 "error": row.get("gen_error") or ""}
        if cands:
            ex = row_example(row)
            forms = None
        for ci, cand in enumerate(cands):
            text = cand["text"]
            verdict = verify(text, ex.reference, ex.tools)
            if verdict.correct:
                tally["correct"] += 1
                continue
            tag = cand.get("tag") or row["generator"]
            forms = forms or chosen_forms(ex, chosen_variants)
            pid_seed = example_seed("chosen", ex.id, tag, text)
            pair = normalize_pair_row({
                "source": row["source"], "example_id": ex.id, "category": row["category"],
                "tools": [t.to_dict() for t in ex.tools], "conversation": ex.conversation,
                "reference": [r.to_bfcl() for r in ex.reference],
                "chosen_output": chosen_output(ex, chosen_variants, pid_seed, forms),
                "rejected_output": text, "error_type": verdict.error_type or "unknown",
                "generator": tag, "obfuscated": bool(row["obfuscated"]), "split": row["split"],
            })
            pair.update({"shard": int(row["shard"]), "gen_index": int(gen_index), "unit": int(row.get("unit") or 0),
                         "cand_index": ci, "dedup_key": dedup_key(text)})
            pairs.append(pair)
        tallies.append(tally)
    return pairs, tallies


# --- dedup -----------------------------------------------------------------------------------

def dedup_stage(pairs: Iterable[Mapping], exact: bool = True, max_per_example: int = 0,
                max_per_error_type: int = 0) -> tuple[list[dict], Counter]:
    """Drop repeated rejected calls per example (first generator in config order wins), then cap
    pairs per example and per (example, error type). Caps take generators round-robin (each
    generator's 1st pair, then each one's 2nd, ...) so cheap, plentiful mutations cannot crowd
    out the real model errors. Input order does not matter: everything is ranked by (example,
    generator index, sample, candidate) first. Returns (kept, dropped counts keyed by (reason,
    generator index))."""
    ranked = sorted(pairs, key=lambda p: (p["example_id"], p["gen_index"], p["unit"], p["cand_index"], p["id"]))
    seen_slots: set[tuple] = set()
    seen_keys: set[tuple[str, str]] = set()
    seen_ids: set[str] = set()
    dropped: Counter = Counter()
    unique: list[tuple[tuple, dict]] = []
    ordinal: Counter = Counter()
    for p in ranked:
        ex = p["example_id"]
        slot = (ex, p["gen_index"], p["unit"], p["cand_index"])
        if slot in seen_slots:  # the same candidate delivered twice (a retried batch): not a candidate
            dropped[("replayed", p["gen_index"])] += 1
            continue
        seen_slots.add(slot)
        # Same id = same (example, text, generator): a duplicate even with exact=False, ids are unique.
        if p["id"] in seen_ids or (exact and (ex, p["dedup_key"]) in seen_keys):
            dropped[("duplicate", p["gen_index"])] += 1
            continue
        seen_ids.add(p["id"])
        seen_keys.add((ex, p["dedup_key"]))
        n = ordinal[(ex, p["gen_index"])]
        ordinal[(ex, p["gen_index"])] += 1
        unique.append(((ex, n, p["gen_index"]), p))
    per_example: Counter = Counter()
    per_type: Counter = Counter()
    kept = []
    for _, p in sorted(unique, key=lambda t: t[0]):
        ex = p["example_id"]
        if max_per_example and per_example[ex] >= max_per_example:
            dropped[("cap_per_example", p["gen_index"])] += 1
            continue
        if max_per_error_type and per_type[(ex, p["error_type"])] >= max_per_error_type:
            dropped[("cap_per_error_type", p["gen_index"])] += 1
            continue
        per_example[ex] += 1
        per_type[(ex, p["error_type"])] += 1
        kept.append(dict(p))
    return kept, dropped
