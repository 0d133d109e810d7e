"""Best-of-N pools for the listwise objective (`train.listwise_weight`): read, tokenise, batch.

A pool row is what `fcrm bench build` writes per question of real model outputs
(`pools_real_train.jsonl` for train questions, licence-permissive models only; the same columns as
`fcrm eval bon --candidates` reads): `example_id`, `tools`, `conversation`, `candidates`,
`correct` (one bool per candidate). Each candidate is rendered and encoded exactly as a pair's side
is (`train.data.tokenize_pair`: `toolcall.render` + `models.encode_for_reward`).

Every pool read ends in exactly one of three places, so `read = kept + dropped + quarantined`:
- quarantined (with the reason, in quarantine.jsonl): a row that is not a pool (bad JSON, a
  missing or mistyped column, `candidates` and `correct` of different lengths);
- dropped (counted by reason): a well-formed pool the objective cannot use: `no_positive`,
  `no_negative` (after unusable candidates left), `too_few_candidates` (fewer than two usable);
- kept.
Candidates left out of a kept or dropped pool are counted by reason too (`over_long`,
`empty_call`, `non_utf8`, `render_error`, `duplicate`: the same rendering twice; `conflicting_label`:
the same rendering marked both correct and wrong, every copy left out; `over_cap`: beyond
`data.max_pool_candidates`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from fcrm_ray.models import encode_for_reward
from fcrm_ray.train.data import _is_bad_text, pad_right
from fcrm_ray.toolcall.render import render

POOL_OK = "ok"
POOL_DROP_REASONS = ("no_positive", "no_negative", "too_few_candidates")


class MalformedPool(ValueError):
    """A row that is not a pool (quarantined)."""


def _json_field(row: Mapping, key: str) -> Any:
    v = row.get(key)
    if v is None:
        raise MalformedPool(f"missing `{key}`")
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError as e:
            raise MalformedPool(f"`{key}` is not JSON: {e}") from None
    return v


def check_pool(row: Any) -> tuple[list, list[bool]]:
    """(candidates, correct) of a well-formed pool row; MalformedPool otherwise."""
    if not isinstance(row, Mapping):
        raise MalformedPool(f"a pool row is a JSON object, got {type(row).__name__}")
    if not isinstance(row.get("example_id"), str) or not row["example_id"]:
        raise MalformedPool("missing `example_id`")
    for key in ("tools", "conversation"):
        if not isinstance(_json_field(row, key), list):
            raise MalformedPool(f"`{key}` is not a list")
    cands, correct = row.get("candidates"), row.get("correct")
    if not isinstance(cands, list) or not isinstance(correct, list):
        raise MalformedPool("`candidates` and `correct` must be lists")
    if len(cands) != len(correct):
        raise MalformedPool(f"{len(cands)} candidates but {len(correct)} `correct` labels")
    if not all(isinstance(c, bool) for c in correct):
        raise MalformedPool("`correct` must hold booleans")
    return cands, correct


def tokenize_pool(row: Mapping, tokenizer: Any, max_length: int, min_prompt_tokens: int = 16,
                  overflow_length: int = 0, max_candidates: int = 0, seed: int = 0,
                  candidate_counts: Counter | None = None) -> dict:
    """One well-formed pool row -> {id, status, ids: [[int]], positive: [bool]} (status `ok` or a
    drop reason). At most `max_candidates` members (0 = all): a seeded choice that keeps at least
    one positive and one negative where the pool has them. Raises MalformedPool for a bad row."""
    cands, correct = check_pool(row)
    counts = candidate_counts if candidate_counts is not None else Counter()
    tools, conversation = row["tools"], row["conversation"]
    for key in ("tools", "conversation"):
        if isinstance(row[key], str) and _is_bad_text(row[key]):
            raise MalformedPool(f"`{key}` holds undecodable text")
    by_ids: dict[tuple, set[bool]] = {}
    order: list[tuple] = []
    for cand, ok in zip(cands, correct):
        text = cand if isinstance(cand, str) else json.dumps(cand, ensure_ascii=False)
        if not text.strip() or text.strip() in ("[]", "{}", "null"):
            counts["empty_call"] += 1
            continue
        if _is_bad_text(text):
            counts["non_utf8"] += 1
            continue
        try:
            r = render(tokenizer, tools, conversation, text)
        except Exception:  # as for pairs: a candidate the renderer cannot handle is left out
            counts["render_error"] += 1
            continue
        ids, _ = encode_for_reward(tokenizer, r.prompt, r.completion, max_length, min_prompt_tokens, overflow_length)
        if ids is None:
            counts["over_long"] += 1
            continue
        key = tuple(ids)
        if key in by_ids:
            counts["duplicate"] += 1
        else:
            order.append(key)
        by_ids.setdefault(key, set()).add(bool(ok))
    members = []
    for key in order:
        if len(by_ids[key]) > 1:
            counts["conflicting_label"] += 1
            continue
        members.append((list(key), next(iter(by_ids[key]))))
    out = {"id": row["example_id"], "status": POOL_OK, "ids": [], "positive": []}
    if len(members) < 2:
        out["status"] = "too_few_candidates"
    elif not any(p for _, p in members):
        out["status"] = "no_positive"
    elif all(p for _, p in members):
        out["status"] = "no_negative"
    if out["status"] != POOL_OK:
        return out
    if max_candidates and len(members) > max_candidates:
        rng = random.Random(f"fcrm-pool-members:{seed}:{row['example_id']}")
        rng.shuffle(members)
        first_pos = next(i for i, (_, p) in enumerate(members) if p)
        first_neg = next(i for i, (_, p) in enumerate(members) if not p)
        head = sorted({first_pos, first_neg})
        rest = [m for i, m in enumerate(members) if i not in head]
        counts["over_cap"] += len(members) - max_candidates
        members = [members[i] for i in head] + rest[:max_candidates - 2]
    out["ids"] = [m[0] for m in members]
    out["positive"] = [m[1] for m in members]
    return out


def load_pools(path: str | Path, tokenizer: Any, max_length: int, min_prompt_tokens: int = 16,
               overflow_length: int = 0, max_candidates: int = 0, max_pools: int = 0, seed: int = 0,
               quarantine: Any = None) -> tuple[list[dict], dict]:
    """(kept pools, stats) from a pool JSONL file. stats: {read, kept, dropped: {reason: n},
    quarantined, candidates_left_out: {reason: n}}; read == kept + sum(dropped) + quarantined.
    `max_pools` (0 = all) keeps a stable subset of the kept pools (smallest id hashes)."""
    from fcrm_ray.data.pairs import stable_hash

    kept, dropped, cand_counts = [], Counter(), Counter()
    read = quarantined = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            read += 1
            row = None
            try:
                row = json.loads(line)
                pool = tokenize_pool(row, tokenizer, max_length, min_prompt_tokens, overflow_length,
                                     max_candidates, seed, cand_counts)
            except ValueError as e:  # MalformedPool, or json.JSONDecodeError
                quarantined += 1
                if quarantine is not None:
                    rid = row.get("example_id") if isinstance(row, dict) else None
                    quarantine.add({"id": rid or f"{Path(path).name}:{line_no}", "line": line_no},
                                   f"bad pool: {e}"[:300], source="train.train_pools")
                continue
            if pool["status"] == POOL_OK:
                kept.append(pool)
            else:
                dropped[pool["status"]] += 1
    if max_pools and len(kept) > max_pools:
        kept = sorted(kept, key=lambda p: stable_hash(p["id"]))[:max_pools]
        dropped["over_max_train_pools"] += read - quarantined - sum(dropped.values()) - max_pools
    stats = {"read": read, "kept": len(kept), "dropped": dict(dropped), "quarantined": quarantined,
             "candidates_left_out": dict(cand_counts),
             "candidates": sum(len(p["ids"]) for p in kept),
             "positives": sum(sum(p["positive"]) for p in kept)}
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) + stats["quarantined"], stats
    return kept, stats


def collate_pools(pools: Sequence[Mapping], pad_id: int) -> dict:
    """Every member of every pool as one right-padded row batch (pool by pool), plus the
    [pools, width] maps back: `slot` (row index, -1 = padding), `positive`, `valid`."""
    seqs, slot_rows, pos_rows = [], [], []
    for p in pools:
        ids = [np.asarray(x) for x in p["ids"]]
        slot_rows.append(list(range(len(seqs), len(seqs) + len(ids))))
        pos_rows.append([bool(x) for x in p["positive"]])
        seqs += ids
    ids, mask = pad_right(seqs, pad_id)
    n = max(len(s) for s in slot_rows)
    slot = torch.full((len(pools), n), -1, dtype=torch.long)
    positive = torch.zeros((len(pools), n), dtype=torch.bool)
    for i, (sl, pos) in enumerate(zip(slot_rows, pos_rows)):
        slot[i, :len(sl)] = torch.as_tensor(sl)
        positive[i, :len(pos)] = torch.as_tensor(pos)
    return {"input_ids": ids, "attention_mask": mask, "slot": slot, "positive": positive, "valid": slot >= 0}


def pool_rewards(row_rewards: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """Row rewards [rows] -> [pools, width] (padding slots 0; masked by `valid` in the loss)."""
    slot = batch["slot"].to(row_rewards.device)
    return row_rewards[slot.clamp(min=0)] * batch["valid"].to(row_rewards.device)


def cycle_pools(n: int, per_step: int, seed: int) -> Iterator[list[int]]:
    """Indices of `per_step` pools at a time, forever, one seeded shuffle per pass."""
    if n < 1:
        raise ValueError("no training pools on this worker")
    epoch = 0
    while True:
        order = list(range(n))
        random.Random(seed + 1000 * epoch).shuffle(order)
        for i in range(0, n - per_step + 1 if n >= per_step else 1, per_step):
            yield order[i:i + per_step]
        epoch += 1
