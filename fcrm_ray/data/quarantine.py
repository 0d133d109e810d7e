"""Rows that cannot be used go to a quarantine JSONL with a reason, and are counted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


class Quarantine:
    """Append-only JSONL sink of `{source, reason, row}`; `counts` tallies reasons.

    With `path=None` rows are only counted (useful in tests and dry runs)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.counts: Counter[str] = Counter()
        self._fh = None

    def add(self, row: Any, reason: str, source: str = "") -> None:
        self.counts[reason.split(":")[0]] += 1
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        rec = {"source": source, "reason": reason, "row": _jsonable(row)}
        self._fh.write(json.dumps(rec, ensure_ascii=False, default=repr) + "\n")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Quarantine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _jsonable(row: Any) -> Any:
    if isinstance(row, (bytes, bytearray)):
        return row.decode("utf-8", errors="replace")
    return row
