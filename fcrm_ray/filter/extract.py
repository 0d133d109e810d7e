"""SFT corpus rows -> scoring units: every assistant tool-call turn with its tools and context.

Pure (no Ray, no torch). Row parsing is *not* duplicated here: the per-row converters of
`fcrm_ray.data.sources` (the one reader per input format) turn a row into `Example`s - one per
assistant call turn, with the calls as the reference - or into bad items with a reason:

- OpenAI `{"messages": [... {"role": "assistant", "tool_calls": [...]} ...], "tools": [...]}`
  (`sources.openai_examples`);
- xLAM / APIGen `{"query", "tools", "answers"}` as JSON strings (`sources.xlam_example`);
- ShareGPT tool conversations `{"conversations": [{"from", "value"}], "tools"?}` with
  `function_call` / `<tool_call>` turns (`sources.sharegpt_examples`);
- also our canonical `Example.to_dict()` rows and BFCL rows with inline `ground_truth`.

This module only maps those to flat unit records (what the filter scores and writes):

    unit_id       the Example id (row id or content hash, + turn)
    row_id        `<file>:<row index>` - where the unit came from
    source        the row's `source`, else the configured source, else the reader's
    format        the row format
    turn          position of the turn in the row's conversation (= len(conversation))
    tools         JSON list of tool specs (JSON Schema)
    conversation  JSON list of the messages before the turn (OpenAI chat format)
    candidate     the turn's calls in canonical text (`schema.calls_to_text`)

A bad item (a row without tools or call turns, a malformed call, ...) comes back as
`(raw, reason)` for the quarantine; one row can yield units *and* bad items (a chat row with one
good and one malformed call turn).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fcrm_ray.data.sources import FORMATS, convert_row, sniff_format
from fcrm_ray.toolcall.schema import Example, SchemaError, calls_to_text

UNIT_COLUMNS = ("unit_id", "row_id", "source", "format", "turn", "tools", "conversation", "candidate")


def detect_format(row: Any) -> str:
    fmt = sniff_format(row)  # raises SchemaError naming the keys it saw
    if fmt not in FORMATS:
        raise SchemaError(f"unknown format: {fmt}")
    return fmt


def extract_row(row: Any, fmt: str = "auto", source: str = "", row_id: str = "",
                index: int = 0) -> tuple[list[dict], list[tuple[Any, str]]]:
    """(units, bad items) of one corpus row. Never raises for bad data: an unusable row is one
    bad item whose reason starts with a short tag (`malformed row:`, `no tools:`, ...)."""
    if not isinstance(row, Mapping):
        return [], [(row, "malformed row: not a JSON object")]
    # A Parquet file mixing formats has every column in every row; a null column is an absent field.
    row = {k: v for k, v in row.items() if v is not None}
    try:
        fmt = detect_format(row) if fmt == "auto" else fmt
    except SchemaError as e:
        return [], [(row, f"unknown format: {e}")]
    examples, bad = convert_row(row, fmt, index)
    row_source = row.get("source") if isinstance(row.get("source"), str) and row.get("source") else ""
    units = [unit_from_example(ex, fmt, row_source or source or ex.source, row_id) for ex in examples]
    return units, bad


def unit_from_example(ex: Example, fmt: str, source: str, row_id: str) -> dict:
    calls = [r.canonical_call() for r in ex.reference]
    return {
        "unit_id": ex.id,
        "row_id": row_id,
        "source": source or fmt,
        "format": fmt,
        "turn": len(ex.conversation),
        "tools": json.dumps([t.to_dict() for t in ex.tools], ensure_ascii=False),
        "conversation": json.dumps(ex.conversation, ensure_ascii=False, default=str),
        "candidate": calls_to_text(calls),
    }
