"""The one preference-pair schema shared by the benchmark, the generator, training and eval.

Columns (a superset of FC-RewardBench's; JSON-valued columns are stored as JSON strings so the
Parquet schema is stable across heterogeneous tool catalogs):

| column            | type   | meaning                                                          |
|-------------------|--------|------------------------------------------------------------------|
| id                | str    | deterministic pair id (hash of example id, rejected call, generator) |
| source            | str    | dataset the example came from (`bfcl`, `xlam`, `fc_rewardbench`) |
| example_id        | str    | id of the underlying example                                     |
| category          | str    | source category (BFCL: `simple_python`, `live_multiple`, ...)    |
| tools             | str    | JSON list of tool specs (JSON-Schema parameters)                 |
| conversation      | str    | JSON list of chat messages before the call                       |
| reference         | str    | JSON BFCL possible-answer list `[{fn: {param: [values]}}]` ("" if unknown) |
| chosen_output     | str    | a correct call (JSON list of `{name, arguments}` or raw text)    |
| rejected_output   | str    | an incorrect call (raw model text or JSON list)                  |
| error_type        | str    | FC-RewardBench error type of the rejected call                   |
| generator         | str    | what produced the rejected call (model name or `mutation:<kind>`)|
| obfuscated        | bool   | names were randomised                                            |
| split             | str    | `train` / `validation` / `test`                                  |

FC-RewardBench rows (`model_name` instead of `generator`, lists instead of JSON strings) are
normalised by `normalize_pair_row`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from fcrm_ray.toolcall.schema import Example, SchemaError, calls_to_text, reference_to_bfcl

PAIR_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "example_id",
    "category",
    "tools",
    "conversation",
    "reference",
    "chosen_output",
    "rejected_output",
    "error_type",
    "generator",
    "obfuscated",
    "split",
)
_JSON_COLUMNS = ("tools", "conversation", "reference")
_REQUIRED = ("tools", "conversation", "chosen_output", "rejected_output")


def stable_hash(*parts: Any, n: int = 16) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:n]


def pair_id(example_id: str, rejected_output: str, generator: str) -> str:
    return stable_hash(example_id, rejected_output, generator)


def _as_json_text(value: Any, col: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(_to_builtin(value), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"`{col}` is not JSON-serialisable: {e}") from None


def _to_builtin(value: Any) -> Any:
    """numpy arrays/scalars (as pandas/pyarrow hand them back) -> lists/python scalars."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    return value


def normalize_pair_row(row: Mapping) -> dict:
    """Any accepted pair row (ours or FC-RewardBench's) -> a dict with exactly PAIR_COLUMNS."""
    missing = [c for c in _REQUIRED if row.get(c) in (None, "")]
    if missing:
        raise SchemaError(f"pair row is missing {', '.join('`' + m + '`' for m in missing)}")
    out = {c: _as_json_text(row.get(c), c) for c in _JSON_COLUMNS}
    for c in ("tools", "conversation"):
        try:
            json.loads(out[c])
        except json.JSONDecodeError as e:
            raise SchemaError(f"`{c}` is not valid JSON: {e.msg}") from None
    out["chosen_output"] = _as_json_text(row["chosen_output"], "chosen_output")
    out["rejected_output"] = _as_json_text(row["rejected_output"], "rejected_output")
    out["source"] = str(row.get("source") or "fc_rewardbench")
    out["category"] = str(row.get("category") or "")
    out["error_type"] = str(row.get("error_type") or "unknown")
    out["generator"] = str(row.get("generator") or row.get("model_name") or "unknown")
    out["obfuscated"] = bool(row.get("obfuscated") or False)
    out["split"] = str(row.get("split") or "test")
    ex = row.get("example_id")
    if ex in (None, ""):
        ex = stable_hash(out["tools"], out["conversation"])
    out["example_id"] = str(ex)
    rid = row.get("id")
    out["id"] = str(rid) if rid not in (None, "") else pair_id(out["example_id"], out["rejected_output"], out["generator"])
    return {c: out[c] for c in PAIR_COLUMNS}


def canonical_chosen(example: Example) -> str:
    """The reference's first acceptable form as a canonical JSON list of calls."""
    return calls_to_text(r.canonical_call() for r in example.reference)


def pair_row(example: Example, split: str, chosen: str, rejected: str, error_type: str, generator: str,
             obfuscated: bool, id_salt: str = "") -> dict:
    """One pair in the schema above (JSON-text columns), from an example and the two outputs."""
    return {
        "id": pair_id(example.id + id_salt, rejected, generator),
        "source": example.source or "bfcl",
        "example_id": example.id,
        "category": example.category,
        "tools": json.dumps([t.to_dict() for t in example.tools], ensure_ascii=False),
        "conversation": json.dumps(example.conversation, ensure_ascii=False),
        "reference": json.dumps(reference_to_bfcl(example.reference), ensure_ascii=False),
        "chosen_output": chosen,
        "rejected_output": rejected,
        "error_type": error_type,
        "generator": generator,
        "obfuscated": obfuscated,
        "split": split,
    }


def _iter_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".jsonl", ".json") and p.is_file()
                       and "quarantine" not in p.parts)
        parquet = [p for p in files if p.suffix == ".parquet"]
        return parquet or files  # a dir holding both formats of the same set: read Parquet only
    raise FileNotFoundError(f"no such pair file or directory: {path}")


def iter_raw_rows(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(file name, raw row) for every row of a Parquet/JSONL file or directory of them.
    A JSONL line that is not JSON is yielded as the raw string so the caller can quarantine it."""
    for f in _iter_files(Path(path)):
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                for r in batch.to_pylist():
                    yield f.name, r
        else:
            with open(f, "rb") as fh:
                for line in fh:
                    text = line.decode("utf-8", errors="replace").strip()
                    if not text:
                        continue
                    try:
                        yield f.name, json.loads(text)
                    except json.JSONDecodeError:
                        yield f.name, text


def read_pairs(path: str | Path, quarantine=None, split: str | None = None) -> list[dict]:
    """Read and normalise all pair rows under `path`; bad rows go to `quarantine` (if given)."""
    rows = []
    for fname, raw in iter_raw_rows(path):
        try:
            if not isinstance(raw, Mapping):
                raise SchemaError("row is not a JSON object")
            row = normalize_pair_row(raw)
        except SchemaError as e:
            if quarantine is None:
                raise
            quarantine.add(raw, str(e), source=fname)
            continue
        if split is None or row["split"] == split:
            rows.append(row)
    return rows


def write_pairs(rows: Iterable[Mapping], out_dir: str | Path, name: str = "pairs", jsonl: bool = True) -> Path:
    """Write rows (normalised to PAIR_COLUMNS) as `<name>.parquet` (+ `<name>.jsonl`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = [normalize_pair_row(r) for r in rows]
    table = pa.Table.from_pylist(norm, schema=pair_arrow_schema())
    pq.write_table(table, out / f"{name}.parquet")
    if jsonl:
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for r in norm:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out / f"{name}.parquet"


def pair_arrow_schema():
    import pyarrow as pa

    return pa.schema([(c, pa.bool_() if c == "obfuscated" else pa.string()) for c in PAIR_COLUMNS])
