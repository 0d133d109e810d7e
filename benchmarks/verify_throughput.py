"""Throughput of `fcrm verify` over all BFCL single-turn rows.

    python benchmarks/verify_throughput.py [--repeat 1] [--keep DIR]

Builds an input JSONL with two rows per BFCL single-turn example — the reference's first
acceptable calls as a JSON list, and a perturbed candidate (every other row a wrong value, else a
wrong function name) written as Python-syntax calls — then runs `fcrm verify` once in a fresh
process and prints its rows/s (verification only, as `fcrm verify` reports it) and the wall time
of the whole command (interpreter start-up and imports included). `--repeat N` repeats the
input N times for a longer, steadier measurement.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fcrm_ray.paths import BFCL_SINGLE_TURN, bfcl_data_dir
from fcrm_ray.toolcall.schema import ToolCall, reference_from_bfcl
from fcrm_ray.toolcall.verify import first_acceptable_calls


def _py(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {_py(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_py(x) for x in v) + "]"
    return repr(v)


def _as_text(calls: list[ToolCall], python: bool) -> str:
    if python and all(re.fullmatch(r"[A-Za-z_][\w.]*", c.name) and all(k.isidentifier() for k in c.arguments) for c in calls):
        return "[" + ", ".join(f"{c.name}(" + ", ".join(f"{k}={_py(v)}" for k, v in c.arguments.items()) + ")" for c in calls) + "]"
    return json.dumps([c.to_dict() for c in calls], ensure_ascii=False)


def _perturb(calls: list[ToolCall], k: int) -> list[ToolCall]:
    c = calls[0]
    if k % 2 == 0 and c.arguments:
        p = next(iter(c.arguments))
        v = c.arguments[p]
        new = v + 1 if isinstance(v, (int, float)) and not isinstance(v, bool) else (f"{v} x" if isinstance(v, str) else "x")
        return [ToolCall(c.name, {**c.arguments, p: new})] + calls[1:]
    return [ToolCall(c.name + "_v2", c.arguments)] + calls[1:]


def build_rows() -> list[dict]:
    d = bfcl_data_dir()
    rows = []
    for cat in BFCL_SINGLE_TURN:
        funcs = {}
        for line in open(d / f"BFCL_v4_{cat}.json", encoding="utf-8"):
            if line.strip():
                q = json.loads(line)
                funcs[q["id"]] = q["function"]
        for k, line in enumerate(open(d / "possible_answer" / f"BFCL_v4_{cat}.json", encoding="utf-8")):
            if not line.strip():
                continue
            a = json.loads(line)
            calls = first_acceptable_calls(reference_from_bfcl(a["ground_truth"]))
            base = {"tools": funcs[a["id"]], "reference": a["ground_truth"]}
            rows.append({"id": a["id"] + ":ref", **base, "candidate": _as_text(calls, python=False)})
            rows.append({"id": a["id"] + ":bad", **base, "candidate": _as_text(_perturb(calls, k), python=True)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", default="", help="keep the input/output files in this folder")
    args = ap.parse_args(argv)
    rows = build_rows() * args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data, out = folder / "verify_input.jsonl", folder / "verify_output.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        cmd = [sys.executable, "-m", "fcrm_ray.cli", "verify", "--data", str(data), "--out", str(out)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        verdicts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    print(r.stdout.strip())
    m = re.search(r"rows/s=(\d+)", r.stdout)
    n_ref_ok = sum(v["correct"] for v in verdicts if v["id"].endswith(":ref"))
    n_bad_ok = sum(v["correct"] for v in verdicts if v["id"].endswith(":bad"))
    print(f"rows={len(rows)} verify rows/s={m.group(1) if m else '?'} "
          f"end-to-end rows/s (with start-up)={len(rows) / wall:.0f} wall={wall:.2f}s")
    print(f"reference candidates correct: {n_ref_ok}/{len(rows) // 2}; perturbed candidates correct: {n_bad_ok}/{len(rows) // 2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
