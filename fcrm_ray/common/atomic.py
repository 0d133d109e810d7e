"""Atomic file writes for resumable run directories (`fcrm generate`, `fcrm filter`): a file is
written under a temporary name and renamed into place, so a reader or a resumed run never sees a
half-written shard, manifest or stats file."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.feather as feather
import pyarrow.parquet as pq


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = _tmp(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_table(path: Path, table, fmt: str = "parquet") -> None:
    """A pyarrow Table as Parquet (or Feather, `fmt="feather"`)."""
    tmp = _tmp(path)
    if fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        feather.write_feather(table, tmp)
    os.replace(tmp, path)
