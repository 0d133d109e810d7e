"""Raw rows from data files (Parquet / JSONL / JSON, a file or a directory, local or on any
pyarrow / fsspec filesystem URI), and the item accounting every reader shares (`ReadStats`)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from fcrm_ray.toolcall.schema import Example, SchemaError

_DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


@dataclass
class ReadStats:
    """What a reader saw: `items == kept + quarantined`; `rows` counts raw rows (a chat row can
    hold several items). `reasons` tallies quarantine reasons (text before the first ':');
    `by_category` counts kept examples; `aux_quarantined` counts auxiliary rows quarantined
    that are not items themselves (malformed BFCL answer lines)."""

    rows: int = 0
    items: int = 0
    kept: int = 0
    quarantined: int = 0
    aux_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)

    def check(self) -> None:
        if self.items != self.kept + self.quarantined:
            raise AssertionError(f"read accounting broken: items={self.items} kept={self.kept} "
                                 f"quarantined={self.quarantined}")

    def to_dict(self) -> dict:
        return {"rows": self.rows, "items": self.items, "kept": self.kept, "quarantined": self.quarantined,
                "aux_quarantined": self.aux_quarantined, "reasons": dict(self.reasons),
                "by_category": dict(self.by_category)}


class _Bad:
    """An item that cannot become an Example: the raw row and a reason."""

    __slots__ = ("raw", "reason")

    def __init__(self, raw: Any, reason: str):
        self.raw, self.reason = raw, reason


def _emit(items: Iterable[Example | _Bad], stats: ReadStats, quarantine, source: str) -> Iterator[Example]:
    """Count every item; yield good ones; quarantine (or raise on) bad ones."""
    for it in items:
        stats.items += 1
        if isinstance(it, _Bad):
            if quarantine is None:
                raise SchemaError(f"{source}: {it.reason}")
            quarantine.add(it.raw, it.reason, source=source)
            stats.quarantined += 1
            stats.reasons[it.reason.split(":")[0]] += 1
        else:
            stats.kept += 1
            stats.by_category[it.category] += 1
            yield it


def _filesystem(path: str):
    """(pyarrow FileSystem, path inside it). pyarrow's own filesystems first (local, s3, gcs,
    hdfs, abfs); any other fsspec protocol (memory://, http://, ...) through FSSpecHandler."""
    import pyarrow.fs as pafs

    if "://" not in path:
        return pafs.LocalFileSystem(), str(Path(path).absolute())
    try:
        return pafs.FileSystem.from_uri(path)
    except (ValueError, OSError):  # ArrowInvalid is a ValueError: scheme unknown to pyarrow
        pass
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, inner = fsspec.core.url_to_fs(path)
    return PyFileSystem(FSSpecHandler(fs)), inner


def _list_files(fs, path: str, where: str) -> list[str]:
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such data file or directory: {where}")
    if info.type == pafs.FileType.File:
        return [path]
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(_DATA_SUFFIXES)
                   and "quarantine" not in Path(i.path).name)
    if not files:
        raise FileNotFoundError(f"no .parquet/.jsonl/.json files under {where}")
    parquet = [f for f in files if f.endswith(".parquet")]
    return parquet or files  # a dir with both formats of one set: Parquet only


def iter_rows(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(file name, raw row) for every row under `path`. Parquet rows are dicts; a JSON/JSONL
    line that does not decode is yielded as its raw string so the caller can quarantine it.
    A `.json` file holding one JSON array yields its elements."""
    where = str(path)
    fs, inner = _filesystem(where)
    for f in _list_files(fs, inner, where):
        name = f.rsplit("/", 1)[-1]
        if f.endswith(".parquet"):
            import pyarrow.parquet as pq

            with fs.open_input_file(f) as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=1024):
                    for r in batch.to_pylist():
                        yield name, r
            continue
        with fs.open_input_stream(f) as raw:
            yield from ((name, r) for r in _json_rows(raw))


def _lines(stream, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream, read a chunk at a time (no whole-file read)."""
    rest = b""
    while chunk := stream.read(chunk_size):
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest


def _json_rows(stream) -> Iterator[Any]:
    """Rows of a JSON-lines stream, streamed line by line; a line that does not decode comes
    back as its raw string. A file that is one JSON array (first byte `[`, decodes as a whole)
    yields its elements; that one case reads the file whole."""
    lines = _lines(stream)
    first = b""
    for first in lines:
        if first.strip():
            break
    if first.lstrip().startswith(b"["):
        text = b"\n".join([first, *lines])
        try:
            arr = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            arr = None
        if isinstance(arr, list):
            yield from arr
            return
        lines = iter(text.split(b"\n"))  # JSON lines whose first row happens to be a list
    else:
        lines = itertools.chain([first], lines)
    for line in lines:
        line = line.strip()
        if not line:
            continue
        text = line.decode("utf-8", errors="replace")
        try:
            yield json.loads(text)
        except json.JSONDecodeError:
            yield text
