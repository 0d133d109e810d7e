"""A labelled sample SFT corpus for demos, tests and benchmarks of `fcrm filter`.

Each BFCL example contributes its reference call (correct) and verified mutations of it (wrong,
`toolcall.mutate.mutate_all`), written round-robin in the three row formats the filter reads:
OpenAI `messages` + `tools`, xLAM (`query`/`tools`/`answers`) and ShareGPT (`conversations` with a
`function_call` turn). Because every row's truth is known, a filter run on it can be scored: how
many correct rows it keeps vs wrong ones (`labels.jsonl`, keyed like the filter's `row_id`).
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow.parquet as pq

from fcrm_ray.config import ConfigError
from fcrm_ray.data.sources import read_bfcl
from fcrm_ray.data.splits import SplitConfig, assign_split, unit_hash
from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.mutate import mutate_all
from fcrm_ray.toolcall.schema import Example, ToolCall

FORMATS = ("openai", "xlam", "sharegpt")


def _openai_tool_call(c: ToolCall) -> dict:
    return {"type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}


def _last_user(ex: Example) -> str:
    return next((str(m.get("content") or "") for m in reversed(ex.conversation) if m.get("role") == "user"), "")


def corpus_row(ex: Example, calls: list[ToolCall], fmt: str, row_id: str) -> dict:
    """One SFT row in format `fmt` whose (last) assistant turn makes `calls`."""
    if fmt == "openai":
        return {"id": row_id, "source": "sample-openai", "tools": [t.to_openai() for t in ex.tools],
                "messages": ex.conversation + [{"role": "assistant", "content": "",
                                                "tool_calls": [_openai_tool_call(c) for c in calls]}]}
    payload = json.dumps([c.to_dict() for c in calls])
    tools = json.dumps([t.to_dict() for t in ex.tools])
    if fmt == "xlam":
        return {"id": row_id, "source": "sample-xlam", "query": _last_user(ex), "tools": tools, "answers": payload}
    if fmt == "sharegpt":
        return {"id": row_id, "source": "sample-sharegpt", "tools": tools,
                "conversations": [{"from": "human", "value": _last_user(ex)}, {"from": "function_call", "value": payload}]}
    raise ValueError(f"unknown corpus format {fmt!r}; expected one of {FORMATS}")


def labelled_rows(examples: Iterable[Example], seed: int = 0, wrong_per_example: int = 2
                  ) -> Iterator[tuple[dict, str]]:
    """(row, label) pairs: label `correct` or the error type of the mutation the row carries.
    Formats rotate over rows so every format gets correct and wrong calls."""
    rng = random.Random(seed)
    k = 0
    for ex in examples:
        variants = [([r.canonical_call() for r in ex.reference], "correct")]
        muts = [m for m in mutate_all(ex, rng) if m.calls]
        rng.shuffle(muts)
        variants += [(m.calls, m.error_type) for m in muts[:wrong_per_example]]
        for j, (calls, label) in enumerate(variants):
            yield corpus_row(ex, calls, FORMATS[k % len(FORMATS)], f"{ex.id}-{j}"), label
            k += 1


def write_sample_corpus(out_dir: str | Path, examples: Iterable[Example], seed: int = 0,
                        wrong_per_example: int = 2, labels_path: str | Path | None = None) -> dict:
    """Write `out_dir/corpus.jsonl` and the labels (default `out_dir/../<name>-labels.jsonl`, kept
    out of the corpus folder so the filter does not read it as data). Returns counts and paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = Path(labels_path) if labels_path else out_dir.parent / f"{out_dir.name}-labels.jsonl"
    counts = {"rows": 0, "correct": 0, "wrong": 0}
    with open(out_dir / "corpus.jsonl", "w") as data, open(labels_path, "w") as labels:
        for i, (row, label) in enumerate(labelled_rows(examples, seed, wrong_per_example)):
            data.write(json.dumps(row, ensure_ascii=False) + "\n")
            # `corpus.jsonl:<line>` is the filter's row_id for this row
            labels.write(json.dumps({"row_id": f"corpus.jsonl:{i}", "id": row["id"], "label": label}) + "\n")
            counts["rows"] += 1
            counts["correct" if label == "correct" else "wrong"] += 1
    return {**counts, "corpus": str(out_dir / "corpus.jsonl"), "labels": str(labels_path)}


def filter_precision(filter_dir: str | Path, labels_path: str | Path) -> dict:
    """How a finished `fcrm filter` run treated the labelled rows: kept/dropped counts of correct
    and wrong rows, the kept set's precision (share correct) vs the corpus base rate."""
    labels = {}
    with open(labels_path) as fh:
        for line in fh:
            r = json.loads(line)
            labels[r["row_id"]] = r["label"] == "correct"
    out = {}
    for part in ("kept", "dropped"):
        ids = [rid for f in sorted((Path(filter_dir) / part).glob("*.parquet"))
               for rid in pq.read_table(f, columns=["row_id"]).column("row_id").to_pylist()]
        known = [labels[r] for r in ids if r in labels]
        out[part] = {"rows": len(ids), "correct": sum(known), "wrong": len(known) - sum(known)}
    kept = out["kept"]
    base = sum(labels.values()) / len(labels) if labels else float("nan")
    out["kept_precision"] = kept["correct"] / kept["rows"] if kept["rows"] else float("nan")
    out["base_rate"] = base
    return out


def bfcl_sample(categories: Iterable[str], n_examples: int, data_dir: str | None = None) -> list[Example]:
    """The first `n_examples` examples spread evenly over `categories` (deterministic). Mind the
    split: for a corpus scored by a trained RM use `heldout_sample`, which keeps to the test split."""
    categories = list(categories)
    per = max(1, -(-n_examples // len(categories)))
    return [ex for c in categories for ex in itertools.islice(read_bfcl([c], data_dir=data_dir), per)][:n_examples]


def heldout_sample(n_examples: int, splits: SplitConfig | None = None, categories: Iterable[str] = (),
                   data_dir: str | None = None, seed: int = 0) -> list[Example]:
    """Up to `n_examples` BFCL examples of the TEST split only (`data.splits.assign_split` with
    `splits`, default the bench's), so an RM trained on the train split is never judged on its
    own training examples. Drawn evenly over the categories that hold test examples (`categories`,
    default all single-turn ones), each in a seeded hash order of example ids: deterministic, and
    independent of file order. Fewer when the test split holds fewer (the caller records it)."""
    splits = splits or SplitConfig()
    categories = list(categories) or list(BFCL_SINGLE_TURN)
    by_cat: dict[str, list[Example]] = {}
    for ex in read_bfcl(categories, data_dir=data_dir):
        if assign_split(ex.id, ex.category, splits) == "test":
            by_cat.setdefault(ex.category, []).append(ex)
    if not by_cat:
        raise ConfigError(f"config key `filter.corpus_categories`: no held-out (test split) example in {categories}; "
                          f"the test categories are {list(splits.test_categories)}")
    queues = [sorted(exs, key=lambda e: unit_hash(seed, f"corpus\x00{e.id}")) for c, exs in sorted(by_cat.items())]
    out: list[Example] = []
    for i in itertools.count():  # round-robin over categories: an even spread, all of a small one
        row = [q[i] for q in queues if i < len(q)]
        if not row or len(out) >= n_examples:
            break
        out.extend(row[:n_examples - len(out)])
    return out
