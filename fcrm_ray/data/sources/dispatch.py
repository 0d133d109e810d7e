"""Format dispatch: `read_examples` picks the reader by `fmt` or by sniffing the first row's keys;
`convert_row` does the same per row; `write_examples` stores Examples as canonical rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from fcrm_ray.data.sources.bfcl import _bfcl_row
from fcrm_ray.data.sources.canonical import canonical_example
from fcrm_ray.data.sources.files import ReadStats, _Bad, _emit, iter_rows
from fcrm_ray.data.sources.openai_chat import openai_examples
from fcrm_ray.data.sources.sharegpt import sharegpt_examples
from fcrm_ray.data.sources.xlam import xlam_example
from fcrm_ray.toolcall.schema import Example, SchemaError

FORMATS = ("bfcl", "xlam", "openai", "sharegpt", "canonical")

_ONE: dict[str, Callable[[Any, int], Example]] = {"xlam": xlam_example, "canonical": canonical_example, "bfcl": _bfcl_row}
_MANY: dict[str, Callable[[Any, int], list]] = {"openai": openai_examples, "sharegpt": sharegpt_examples}


def row_items(row: Any, fmt: str, index: int = 0) -> list[Example | _Bad]:
    """The items of one raw row in format `fmt`: Examples and `_Bad(raw, reason)` entries."""
    fmt = {"examples": "canonical"}.get(fmt, fmt)
    if fmt in _MANY:
        return _MANY[fmt](row, index)
    if fmt not in _ONE:
        raise SchemaError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    try:
        return [_ONE[fmt](row, index)]
    except SchemaError as e:
        return [_Bad(row, str(e))]


def convert_row(row: Any, fmt: str = "auto", index: int = 0) -> tuple[list[Example], list[tuple[Any, str]]]:
    """Public per-row converter (for row-wise pipelines such as the SFT filter): (examples,
    [(raw, reason), ...]). Never raises for bad data; an unknown `fmt` is a usage error."""
    if fmt == "auto":
        try:
            fmt = sniff_format(row)
        except SchemaError as e:
            return [], [(row, str(e))]
    good, bad = [], []
    for it in row_items(row, fmt, index):
        (bad.append((it.raw, it.reason)) if isinstance(it, _Bad) else good.append(it))
    return good, bad


def sniff_format(row: Any) -> str:
    """The reader format a row looks like (by its keys); SchemaError if none fits."""
    if not isinstance(row, Mapping):
        raise SchemaError("cannot detect format: first row is not a JSON object")
    keys = set(row)
    if {"chosen_output", "rejected_output"} <= keys:
        raise SchemaError("this is a pair file (chosen_output/rejected_output): read it with fcrm_ray.data.pairs.read_pairs")
    if {"id", "tools", "conversation", "reference"} <= keys:
        return "canonical"
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if {"query", "answers"} <= keys:
        return "xlam"
    if {"question", "function"} <= keys:
        return "bfcl"
    raise SchemaError(f"cannot detect format from keys {sorted(keys)}; pass fmt= one of {FORMATS}")


def read_examples(path: str | Path, fmt: str = "auto", quarantine=None,
                  stats: ReadStats | None = None) -> Iterator[Example]:
    """Examples from a file/dir/URI in any supported format (`fmt="auto"` sniffs the first row)."""
    fmt = {"examples": "canonical"}.get(fmt, fmt)
    if fmt != "auto" and fmt not in FORMATS:
        raise SchemaError(f"unknown format {fmt!r}; expected auto or one of {FORMATS}")
    stats = stats if stats is not None else ReadStats()
    rows = iter_rows(path)
    src = Path(str(path)).name or str(path)

    def items():
        nonlocal fmt
        for i, (fname, raw) in enumerate(rows):
            stats.rows += 1
            if fmt == "auto":
                if not isinstance(raw, Mapping):
                    yield _Bad(raw, "malformed row: not a JSON object")
                    continue
                fmt = sniff_format(raw)  # a bad first row is a usage error, not a quarantine case
            yield from row_items(raw, fmt, i)

    yield from _emit(items(), stats, quarantine, src)


def example_row(example: Example) -> dict:
    """A canonical row with JSON-valued fields as JSON strings — the form to store Examples in
    Parquet (nested structs of heterogeneous tool schemas would be padded with nulls)."""
    d = example.to_dict()
    return {k: json.dumps(v, ensure_ascii=False) if k in ("tools", "conversation", "reference") else v for k, v in d.items()}


def write_examples(examples: Iterable[Example], path: str | Path) -> Path:
    """Write Examples as `.parquet` (JSON-string columns) or `.jsonl` (nested JSON), by suffix."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [example_row(e) for e in examples]
        schema = pa.schema([(c, pa.string()) for c in ("id", "source", "category", "tools", "conversation", "reference")])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), p)
    elif p.suffix == ".jsonl":
        with open(p, "w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"write_examples: {p} must end in .parquet or .jsonl")
    return p
