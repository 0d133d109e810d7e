"""Pair rows -> token ids for reward-model training, and the batches the loop consumes.

- `tokenize_pair`: render chosen and rejected with the one renderer (`toolcall.render`), encode
  each as prompt + call within `max_length`, cutting the prompt from the left (the catalog side)
  and never the call; truncations are counted. Rows that cannot be used get a `status` instead of
  ids: `empty_call`, `non_utf8`, `over_long`, `identical_rendering`, `render_error`.
- `tokenize_batch`: the same over a Ray Data batch (pyarrow in, pyarrow out), used with
  `map_batches` so tokenisation streams and scales with the cluster.
- `length_grouped_batches`: shuffled micro-batches whose members have similar lengths (sort within
  windows of `group_size` batches, then shuffle batch order), so padding stays small.
- `collate_pairs`: chosen rows then rejected rows in ONE padded tensor, so a pair is scored by a
  single forward pass (`rewards[:B]` vs `rewards[B:]`).
"""

from __future__ import annotations

import json
import random
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.models import encode_for_reward, load_tokenizer
from fcrm_ray.toolcall.render import render

STATUS_OK = "ok"
REJECT_REASONS = ("empty_call", "non_utf8", "over_long", "identical_rendering", "render_error")
META_COLUMNS = ("id", "error_type", "category", "source", "generator", "obfuscated")


def _is_bad_text(text: str) -> bool:
    """Undecodable bytes show up as U+FFFD (read_pairs decodes with errors=replace) or as lone
    surrogates (which the tokenizer cannot encode)."""
    if "\ufffd" in text or "\\ufffd" in text.lower():  # raw or JSON-escaped replacement char
        return True
    if "\\ud" in text.lower():  # JSON-escaped surrogates decode to lone surrogates
        try:
            json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return True
        except ValueError:  # not JSON: a literal backslash sequence, judged as plain text below
            pass
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def tokenize_pair(row: Mapping, tokenizer: Any, max_length: int, min_prompt_tokens: int = 16,
                  overflow_length: int = 0) -> dict:
    """One pair row -> {status, detail, chosen_ids, rejected_ids, truncated, n_tokens, *meta}."""
    out = {c: row.get(c) for c in META_COLUMNS}
    out.update(status=STATUS_OK, detail="", chosen_ids=[], rejected_ids=[], truncated=False, n_tokens=0)

    def bad(status: str, detail: str = "") -> dict:
        out.update(status=status, detail=detail)
        return out

    chosen, rejected = row.get("chosen_output"), row.get("rejected_output")
    for name, text in (("chosen_output", chosen), ("rejected_output", rejected)):
        if not isinstance(text, str) or not text.strip() or text.strip() in ("[]", "{}", "null"):
            return bad("empty_call", name)
    for name in ("tools", "conversation", "chosen_output", "rejected_output"):
        if isinstance(row.get(name), str) and _is_bad_text(row[name]):
            return bad("non_utf8", name)
    try:
        rc = render(tokenizer, row["tools"], row["conversation"], chosen)
        rr = render(tokenizer, row["tools"], row["conversation"], rejected)
    except Exception as e:  # a row the renderer cannot handle is quarantined, never a crash mid-epoch
        return bad("render_error", f"{type(e).__name__}: {e}"[:300])
    if rc.text == rr.text:
        # e.g. an `incorrect_output_format` rejection that parses to the same calls: canonical
        # rendering removes the only difference, so the pair teaches nothing.
        return bad("identical_rendering")
    c_ids, c_trunc = encode_for_reward(tokenizer, rc.prompt, rc.completion, max_length, min_prompt_tokens, overflow_length)
    r_ids, r_trunc = encode_for_reward(tokenizer, rr.prompt, rr.completion, max_length, min_prompt_tokens, overflow_length)
    if c_ids is None or r_ids is None:
        return bad("over_long", "chosen" if c_ids is None else "rejected")
    out.update(chosen_ids=c_ids, rejected_ids=r_ids, truncated=bool(c_trunc or r_trunc),
               n_tokens=len(c_ids) + len(r_ids))
    return out


def tokenize_batch(batch, tokenizer_path: str, max_length: int, min_prompt_tokens: int = 16,
                   trust_remote_code: bool = False, overflow_length: int = 0):
    """Ray Data `map_batches` function (batch_format="pyarrow")."""
    tok = load_tokenizer(tokenizer_path, trust_remote_code)
    rows = [tokenize_pair(r, tok, max_length, min_prompt_tokens, overflow_length) for r in batch.to_pylist()]
    return pa.Table.from_pylist(rows, schema=tokenized_schema())


def tokenized_schema():
    fields = [(c, pa.bool_() if c == "obfuscated" else pa.string()) for c in META_COLUMNS]
    fields += [("status", pa.string()), ("detail", pa.string()), ("chosen_ids", pa.list_(pa.int32())),
               ("rejected_ids", pa.list_(pa.int32())), ("truncated", pa.bool_()), ("n_tokens", pa.int64())]
    return pa.schema(fields)


# --- which training rows ---------------------------------------------------------------------

def balanced_subset(rows: Sequence[Mapping], cap: int, by: Sequence[str] = (), power: float = 1.0) -> list:
    """A stable subset of at most `cap` rows (`cap` 0 = all) that flattens the mix of strata: a
    stratum (the rows sharing the values of the `by` columns, e.g. error_type and generator)
    holding n rows gets a quota proportional to n ** power. power 1 keeps the natural mix; power 0
    gives every stratum the same quota (a rare mutation kind is as present as a common one); 0.5
    is in between. A stratum smaller than its quota gives all its rows and the rest is shared
    among the others (water-filling); inside a stratum the rows with the smallest id hashes are
    taken, so reruns and resumed runs see the same rows. Returned in hash order (the caller
    shuffles per epoch)."""
    rows = list(rows)
    if not cap or len(rows) <= cap:
        return rows
    strata: dict[tuple, list] = {}
    for r in sorted(rows, key=lambda r: stable_hash(r["id"])):
        strata.setdefault(tuple(r.get(c) for c in by), []).append(r)
    share = {k: len(m) ** power for k, m in strata.items()}
    quota, left, active = {}, cap, set(strata)
    while active:  # water-filling: strata smaller than their share give everything they have
        total = sum(share[k] for k in active)
        full = {k for k in active if len(strata[k]) <= left * share[k] / total}
        if not full:
            exact = {k: left * share[k] / total for k in active}
            quota.update({k: int(v) for k, v in exact.items()})
            rest = left - sum(int(v) for v in exact.values())  # largest remainders get one more
            for k in sorted(active, key=lambda k: (int(exact[k]) - exact[k], str(k)))[:rest]:
                quota[k] += 1
            break
        for k in full:
            quota[k] = len(strata[k])
            left -= len(strata[k])
        active -= full
    picked = [r for k, members in strata.items() for r in members[:quota.get(k, 0)]]
    return sorted(picked, key=lambda r: stable_hash(r["id"]))


def weighted_subset(rows: Sequence[Mapping], cap: int, weights: Mapping[str, float], by: Sequence[str] = (),
                    power: float = 1.0, column: str = "source") -> list:
    """At most `cap` rows, shared among the values of `column` by `weights` (normalised; values
    not named get nothing), each share a `balanced_subset`. A value with fewer rows than its share
    gives all it has and the remainder goes to the others in proportion."""
    groups: dict[str, list] = {}
    for r in rows:
        if weights.get(r.get(column), 0) > 0:
            groups.setdefault(r.get(column), []).append(r)
    quota, left, active = {}, cap, set(groups)
    while active:
        total = sum(weights[k] for k in active)
        short = {k for k in active if len(groups[k]) <= left * weights[k] / total}
        if not short:
            for k in sorted(active):
                quota[k] = int(round(left * weights[k] / total))
            break
        for k in short:
            quota[k] = len(groups[k])
            left -= len(groups[k])
        active -= short
    picked = [r for k, g in groups.items() if quota.get(k, 0) > 0 for r in balanced_subset(g, quota[k], by, power)]
    return sorted(picked, key=lambda r: stable_hash(r["id"]))


# --- batching ----------------------------------------------------------------------------------

def length_grouped_batches(lengths: Sequence[int], batch_size: int, group_size: int, seed: int,
                           drop_last: bool = True) -> list[list[int]]:
    """Indices into `lengths` as micro-batches: shuffle, sort by length inside windows of
    `batch_size * group_size`, cut into batches, shuffle the batches (deterministic in `seed`)."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = batch_size * group_size
    batches = []
    for start in range(0, len(idx), window):
        chunk = sorted(idx[start:start + window], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    rng.shuffle(batches)
    return batches


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Deterministic length-sorted batches over all rows (no drops) for evaluation."""
    idx = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]


def collate_pairs(examples: Sequence[Mapping], pad_id: int) -> dict:
    """[chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}] right-padded into one batch."""
    seqs = [np.asarray(e["chosen_ids"]) for e in examples] + [np.asarray(e["rejected_ids"]) for e in examples]
    ids, mask = pad_right(seqs, pad_id)
    return {"input_ids": ids, "attention_mask": mask, "num_pairs": len(examples)}


def pad_right(seqs: Sequence[Any], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id sequences as one right-padded [len(seqs), longest] batch and its attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def cycle_epochs(n_rows_lengths: Sequence[int], batch_size: int, group_size: int, seed: int,
                 start_epoch: int = 0) -> Iterator[tuple[int, list[int]]]:
    """(epoch, batch indices) forever, one fresh length-grouped shuffle per epoch."""
    epoch = start_epoch
    while True:
        batches = length_grouped_batches(n_rows_lengths, batch_size, group_size, seed + 1000 * epoch)
        if not batches:
            raise ValueError(f"fewer training pairs on this worker ({len(n_rows_lengths)}) than one micro-batch ({batch_size})")
        for b in batches:
            yield epoch, b
        epoch += 1
