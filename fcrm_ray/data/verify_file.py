"""`fcrm verify`: verify a JSONL file of candidate calls against their references.

    fcrm verify --data rows.jsonl --out verdicts.jsonl [--quarantine bad.jsonl]
    fcrm verify --config configs/verify/default.yaml data=rows.jsonl out=verdicts.jsonl

Input rows: `{"id", "tools", "reference", "candidate"}`; `tools` is a catalog (OpenAI or BFCL
format, or a JSON string of one), `reference` BFCL's possible-answer list `[{fn: {param: [values]}}]`
(or a JSON string of it), `candidate` raw model text or structured calls (`null` = empty output).
Output rows: `{"id", "correct", "error_type", "detail"}`, in input order.

Rows that cannot be verified — not JSON, not an object, a missing field, a catalog or reference
that does not parse — go to the quarantine JSONL (default: `<out>.quarantine.jsonl` next to
`--out`) with a reason. A bad *candidate* is never quarantined: it is a verdict
(`incorrect_output_format`). Counts add up: in = verified + quarantined (blank lines are not rows).
Pure Python, single process: the verifier is fast enough that I/O dominates.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fcrm_ray.config import ConfigError, config_arg_parser, load_config, require_path
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.toolcall.schema import SchemaError, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.verify import verify

REQUIRED_FIELDS = ("id", "tools", "reference", "candidate")
SOURCE = "fcrm verify"


@dataclass
class VerifyConfig:
    """Typed config of `fcrm verify` (`--data/--out/--quarantine` flags set the same keys)."""

    data: str = ""  # input JSONL
    out: str = ""  # output JSONL of verdicts
    quarantine: str = ""  # default: <out without .jsonl>.quarantine.jsonl

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("config key `out` is required (or --out FILE)")
        if self.quarantine and Path(self.quarantine).resolve() == Path(self.out).resolve():
            raise ConfigError("config key `quarantine` must differ from `out`")

    def quarantine_path(self) -> Path:
        if self.quarantine:
            return Path(self.quarantine)
        out = Path(self.out)
        stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
        return out.with_name(stem + ".quarantine.jsonl")


@dataclass
class VerifyStats:
    rows_in: int = 0
    verified: int = 0
    quarantined: int = 0
    correct: int = 0
    seconds: float = 0.0
    error_types: Counter = None  # type: ignore[assignment]

    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else float("inf")


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield lineno, line


def verify_row(row: Any, tools_cache: dict[str, Any] | None = None) -> dict:
    """Verdict row for one input row; raises SchemaError (with the reason) for unusable rows."""
    if not isinstance(row, dict):
        raise SchemaError(f"row is a JSON {type(row).__name__}, not an object")
    missing = [k for k in REQUIRED_FIELDS if k not in row]
    if missing:
        raise SchemaError(f"missing field `{missing[0]}`" + (f" (and {missing[1:]})" if missing[1:] else ""))
    rid = row["id"]
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise SchemaError(f"field `id` must be a string or integer, got {type(rid).__name__}")
    try:
        # Many rows share a catalog (several candidates per example): normalise each once.
        key = row["tools"] if isinstance(row["tools"], str) else json.dumps(row["tools"], sort_keys=True)
        tools = tools_cache.get(key) if tools_cache is not None else None
        if tools is None:
            tools = normalize_tools(row["tools"])
            if tools_cache is not None:
                if len(tools_cache) > 10_000:
                    tools_cache.clear()
                tools_cache[key] = tools
    except SchemaError as e:
        raise SchemaError(f"bad `tools`: {e}") from None
    except (TypeError, ValueError) as e:
        raise SchemaError(f"bad `tools`: {e}") from None
    try:
        reference = reference_from_bfcl(row["reference"])
    except SchemaError as e:
        raise SchemaError(f"bad `reference`: {e}") from None
    v = verify(row["candidate"], reference, tools)
    return {"id": rid, "correct": v.correct, "error_type": v.error_type, "detail": v.detail}


def verify_file(data: str | Path, out: str | Path, quarantine: str | Path) -> VerifyStats:
    """Verify every row of `data` into `out`; unusable rows to `quarantine`. Overwrites both."""
    data, out, qpath = Path(data), Path(out), Path(quarantine)
    out.parent.mkdir(parents=True, exist_ok=True)
    if qpath.exists():
        qpath.unlink()  # Quarantine appends; a rerun must not mix with an old run
    stats = VerifyStats(error_types=Counter())
    tools_cache: dict[str, Any] = {}
    t0 = time.perf_counter()
    with open(out, "w", encoding="utf-8") as fout, Quarantine(qpath) as q:
        for lineno, line in _read_lines(data):
            stats.rows_in += 1
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                q.add(line.rstrip("\n"), f"not_json: line {lineno}: {getattr(e, 'msg', e)}", SOURCE)
                stats.quarantined += 1
                continue
            try:
                result = verify_row(row, tools_cache)
            except SchemaError as e:
                q.add(row, f"bad_row: line {lineno}: {e}", SOURCE)
                stats.quarantined += 1
                continue
            fout.write(json.dumps(result, ensure_ascii=False) + "\n")
            stats.verified += 1
            stats.correct += result["correct"]
            stats.error_types[result["error_type"] or "correct"] += 1
    stats.seconds = time.perf_counter() - t0
    assert stats.rows_in == stats.verified + stats.quarantined
    return stats


def main(argv: list[str] | None = None, prog: str = "fcrm verify") -> int:
    parser = config_arg_parser(prog, "Verify candidate tool calls against references (JSONL in, JSONL out).")
    parser.add_argument("--data", help="input JSONL with id, tools, reference, candidate")
    parser.add_argument("--out", help="output JSONL of {id, correct, error_type, detail}")
    parser.add_argument("--quarantine", help="JSONL for unusable rows (default: next to --out)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    for key in ("data", "out", "quarantine"):
        if getattr(args, key):
            overrides.append(f"{key}={getattr(args, key)}")
    cfg = load_config(VerifyConfig, args.config, overrides)
    require_path(cfg.data, "data", "file")

    stats = verify_file(cfg.data, cfg.out, cfg.quarantine_path())
    print(f"in={stats.rows_in} verified={stats.verified} quarantined={stats.quarantined} "
          f"(correct={stats.correct} incorrect={stats.verified - stats.correct}) "
          f"rows/s={stats.rows_per_s():.0f} seconds={stats.seconds:.2f}")
    if stats.verified:
        print("verdicts: " + ", ".join(f"{k}={n}" for k, n in stats.error_types.most_common()))
    print(f"out={cfg.out}" + (f" quarantine={cfg.quarantine_path()}" if stats.quarantined else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
