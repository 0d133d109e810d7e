"""How often does our verifier agree with BFCL's own AST checker (correct vs incorrect)?

    python benchmarks/bfcl_checker_agreement.py [--out benchmarks/bfcl_agreement.json] [--mutations 1]

For every BFCL single-turn example (`fcrm_ray.paths.BFCL_SINGLE_TURN`) we build candidates: the
reference's first acceptable calls, another acceptable value, and constructed near misses and
errors (wrong name, dropped required/optional parameter, wrong type, int for float, float for int,
string-normalisation variants, reordered parallel calls, extra parameters, wrong values, a dropped
or duplicated call). With `--mutations N`, also N candidates per error type from
`fcrm_ray.toolcall.mutate` (the project's realistic rejected outputs).

BFCL's checker (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`) runs in a subprocess: the module
is loaded with its one heavy import (`bfcl_eval.constants.model_config`, which pulls every API
client) replaced by a stub, so neither process imports model clients and nothing is installed.
It gets the raw BFCL function docs, the candidate as `[{name: {args}}]` (what BFCL's decoders
produce), the ground truth, `Language.PYTHON` and the category.

Prints agreement overall, per category and per candidate kind, and every disagreement grouped by
(kind, our verdict, BFCL's error type), with example ids.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from fcrm_ray.paths import BFCL_SINGLE_TURN, bfcl_data_dir
from fcrm_ray.toolcall.schema import ToolCall, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.verify import first_acceptable_calls, verify_calls

# ----------------------------------------------------------------------------------------------
# BFCL worker (runs in a subprocess)
# ----------------------------------------------------------------------------------------------


def _bfcl_worker(inp: str, out: str) -> None:
    import types

    stub = types.ModuleType("bfcl_eval.constants.model_config")

    class _Cfg:  # convert_func_name: only OpenAI-style models rewrite "." to "_"
        underscore_to_dot = False

    class _Mapping(dict):
        def __missing__(self, key):
            return _Cfg()

    stub.MODEL_CONFIG_MAPPING = _Mapping()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    with open(inp, encoding="utf-8") as fin, open(out, "w", encoding="utf-8") as fout:
        for line in fin:
            job = json.loads(line)
            try:
                res = ast_checker(job["functions"], job["output"], job["truth"], Language.PYTHON, job["category"], "bench-model")
                rec = {"valid": bool(res["valid"]), "error_type": res.get("error_type", "")}
            except Exception as e:  # BFCL crashes on some inputs; recorded as "incorrect"
                rec = {"valid": False, "error_type": f"exception:{type(e).__name__}"}
            fout.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------------------------
# Data and candidates
# ----------------------------------------------------------------------------------------------


def load_bfcl() -> list[dict]:
    d = bfcl_data_dir()
    rows = []
    for cat in BFCL_SINGLE_TURN:
        qs = {}
        for line in open(d / f"BFCL_v4_{cat}.json", encoding="utf-8"):
            if line.strip():
                q = json.loads(line)
                qs[q["id"]] = q
        for line in open(d / "possible_answer" / f"BFCL_v4_{cat}.json", encoding="utf-8"):
            if line.strip():
                a = json.loads(line)
                q = qs[a["id"]]
                rows.append({"id": a["id"], "category": cat, "functions": q["function"], "truth": a["ground_truth"],
                             "question": q["question"]})
    return rows


def _props(functions: list[dict], name: str) -> tuple[dict, list[str]]:
    for f in functions:
        if f["name"] == name:
            p = f.get("parameters", {})
            return p.get("properties", {}), p.get("required", [])
    return {}, []


def _string_variant(s: str) -> str:
    """Same string for BFCL's standardize_string: case and `,./-_*^`/space changes."""
    out = s.upper() if s.lower() == s else s.lower()
    return out.replace(", ", ",").replace(" ", "-", 1) if " " in out else out + "."


def candidates(row: dict, rng: random.Random) -> list[tuple[str, list[ToolCall]]]:
    ref = reference_from_bfcl(row["truth"])
    base = first_acceptable_calls(ref)
    funcs = row["functions"]
    out: list[tuple[str, list[ToolCall]]] = [("reference", base)]

    def with_call(i: int, args: dict, name: str | None = None) -> list[ToolCall]:
        calls = list(base)
        calls[i] = ToolCall(name or calls[i].name, args)
        return calls

    # another acceptable value per parameter (random), omitting where "" allows
    alt = []
    for r in ref:
        args = {}
        for p, vals in r.params.items():
            choice = rng.choice(vals) if vals else ""
            if choice != "":
                args[p] = first_acceptable_calls([{r.name: {p: [choice]}}])[0].arguments[p]
        alt.append(ToolCall(r.name, args))
    out.append(("other_acceptable", alt))

    if len(base) > 1:
        out.append(("reordered_calls", list(reversed(base))))
    out.append(("dropped_call", base[:-1]) if len(base) > 1 else ("extra_call", base + base))

    i = rng.randrange(len(base))
    call, r = base[i], ref[i]
    props, required = _props(funcs, call.name)
    siblings = [f["name"] for f in funcs if f["name"] != call.name]
    out.append(("wrong_name", with_call(i, call.arguments, rng.choice(siblings) if siblings else call.name + "_v2")))
    out.append(("extra_param_not_in_schema", with_call(i, {**call.arguments, "verbose_mode": True})))
    absent = [p for p in props if p not in r.params]
    if absent:
        p = absent[0]
        out.append(("extra_param_schema_only", with_call(i, {**call.arguments, p: _value_for(props[p])})))
    req_present = [p for p in required if p in call.arguments]
    if req_present:
        p = rng.choice(req_present)
        out.append(("dropped_required", with_call(i, {k: v for k, v in call.arguments.items() if k != p})))
    opt_present = [p for p in call.arguments if p not in required]
    if opt_present:
        p = rng.choice(opt_present)
        kind = "dropped_optional_needed" if "" not in r.params[p] else "dropped_optional_allowed"
        out.append((kind, with_call(i, {k: v for k, v in call.arguments.items() if k != p})))

    for p, v in call.arguments.items():
        t = props.get(p, {}).get("type")
        args = dict(call.arguments)
        if isinstance(v, bool):
            args[p] = str(v).lower()
            out.append(("bool_as_string", with_call(i, args)))
            out.append(("bool_flipped", with_call(i, {**call.arguments, p: not v})))
        elif isinstance(v, int):
            out.append(("int_as_string", with_call(i, {**args, p: str(v)})))
            out.append(("int_plus_one", with_call(i, {**args, p: v + 1})))
            out.append(("int_as_float", with_call(i, {**args, p: float(v)})))
        elif isinstance(v, float):
            if v.is_integer():
                out.append(("float_as_int", with_call(i, {**args, p: int(v)})))
            out.append(("float_scaled", with_call(i, {**args, p: v * 10 + 1})))
            out.append(("float_as_string", with_call(i, {**args, p: str(v)})))
        elif isinstance(v, str) and t == "string":
            out.append(("string_normalised", with_call(i, {**args, p: _string_variant(v)})))
            out.append(("string_wrong", with_call(i, {**args, p: v + " Street"})))
        elif isinstance(v, list) and v:
            out.append(("list_reversed", with_call(i, {**args, p: list(reversed(v))})))
            out.append(("list_as_string", with_call(i, {**args, p: ", ".join(map(str, v))})))
            if all(isinstance(x, str) for x in v):
                out.append(("list_strings_normalised", with_call(i, {**args, p: [_string_variant(x) for x in v]})))
            if all(isinstance(x, float) and x.is_integer() for x in v):
                out.append(("list_floats_as_ints", with_call(i, {**args, p: [int(x) for x in v]})))
        elif isinstance(v, dict) and v:
            k0 = next(iter(v))
            out.append(("dict_value_changed", with_call(i, {**args, p: {**v, k0: "zzz"}})))
            if isinstance(v[k0], str):
                out.append(("dict_string_normalised", with_call(i, {**args, p: {**v, k0: _string_variant(v[k0])}})))
    return out


def _value_for(schema: dict):
    return {"integer": 1, "float": 1.5, "boolean": True, "array": [], "tuple": [], "dict": {}}.get(schema.get("type"), "x")


def mutation_candidates(row: dict, rng: random.Random, per_type: int) -> list[tuple[str, list[ToolCall] | str]]:
    from fcrm_ray.toolcall.mutate import mutate_all
    from fcrm_ray.toolcall.schema import Example

    ex = Example(id=row["id"], tools=normalize_tools(row["functions"]), conversation=row["question"][0],
                 reference=reference_from_bfcl(row["truth"]), source="bfcl", category=row["category"])
    return [(f"mutation:{m.error_type}", m.calls if m.calls is not None else m.text) for m in mutate_all(ex, rng, per_type)]


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

# BFCL's error_type strings -> FC-RewardBench names (for error-type agreement when both say wrong).
# `parallel_function_checker_no_order:cannot_find_match` hides which problem it was: not compared.
_BFCL_TO_OURS = {
    "wrong_count": "incorrect_number_of_functions",
    "wrong_func_name": "incorrect_function_name",
    "missing_required": "missing_required_parameter",
    "unexpected_param": "unexpected_parameter",
    "missing_optional": "missing_optional_parameter",
    "type_error": "incorrect_parameter_type",
    "value_error": "incorrect_parameter_value",
    "dict_checker": "incorrect_parameter_value",
    "list_dict_checker": "incorrect_parameter_value",
}


def bfcl_error_as_ours(error_type: str) -> str | None:
    head, _, tail = error_type.partition(":")
    return _BFCL_TO_OURS.get(tail) or _BFCL_TO_OURS.get(head)



def run(mutations: int, seed: int) -> dict:
    rng = random.Random(seed)
    rows = load_bfcl()
    jobs, ours, meta = [], [], []
    t0 = time.perf_counter()
    for row in rows:
        tools, ref = normalize_tools(row["functions"]), reference_from_bfcl(row["truth"])
        cands = candidates(row, rng)
        if mutations:
            cands += [(k, c) for k, c in mutation_candidates(row, rng, mutations) if not isinstance(c, str)]
        for kind, calls in cands:
            v = verify_calls(calls, ref, tools)
            ours.append(v)
            meta.append((row["id"], row["category"], kind))
            jobs.append({"functions": row["functions"], "truth": row["truth"], "category": row["category"],
                         "output": [{c.name: copy.deepcopy(c.arguments)} for c in calls]})
    t_ours = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "jobs.jsonl", Path(tmp) / "bfcl.jsonl"
        inp.write_text("".join(json.dumps(j) + "\n" for j in jobs), encoding="utf-8")
        t1 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--bfcl-worker", str(inp), str(outp)], check=True)
        t_bfcl = time.perf_counter() - t1
        theirs = [json.loads(line) for line in outp.read_text(encoding="utf-8").splitlines()]

    assert len(theirs) == len(ours)
    overall = Counter()
    by_cat: dict[str, Counter] = defaultdict(Counter)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    disagreements: dict[tuple, list[str]] = defaultdict(list)
    type_agree: Counter = Counter()
    type_confusion: Counter = Counter()
    for (rid, cat, kind), v, b in zip(meta, ours, theirs):
        agree = v.correct == b["valid"]
        for c in (overall, by_cat[cat], by_kind[kind]):
            c["n"] += 1
            c["agree"] += agree
            c["ours_correct"] += v.correct
            c["bfcl_correct"] += b["valid"]
        if not v.correct and not b["valid"]:
            mapped = bfcl_error_as_ours(b["error_type"])
            if mapped is not None:
                type_agree["n"] += 1
                type_agree["agree"] += mapped == v.error_type
                if mapped != v.error_type:
                    type_confusion[(v.error_type, mapped)] += 1
        if not agree:
            disagreements[(kind, v.error_type or "correct", b["error_type"] or "valid")].append(rid)
    return {
        "rows": len(rows), "candidates": len(jobs), "seconds_ours": round(t_ours, 2), "seconds_bfcl": round(t_bfcl, 2),
        "overall": dict(overall), "by_category": {k: dict(v) for k, v in by_cat.items()},
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "error_type_agreement": dict(type_agree),
        "error_type_confusion": [{"ours": a, "bfcl": b, "count": n} for (a, b), n in type_confusion.most_common()],
        "disagreements": [{"kind": k[0], "ours": k[1], "bfcl": k[2], "count": len(ids), "ids": ids}
                          for k, ids in sorted(disagreements.items(), key=lambda kv: -len(kv[1]))],
    }


def _pct(c: dict) -> str:
    return f"{100 * c['agree'] / c['n']:.2f}% ({c['agree']}/{c['n']})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="write the full result as JSON here")
    ap.add_argument("--mutations", type=int, default=0, help="also N mutate.py candidates per error type per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bfcl-worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bfcl_worker:
        _bfcl_worker(*args.bfcl_worker)
        return 0
    res = run(args.mutations, args.seed)
    print(f"BFCL rows {res['rows']}, candidates {res['candidates']} "
          f"(ours {res['seconds_ours']}s, BFCL checker {res['seconds_bfcl']}s)")
    print(f"agreement overall: {_pct(res['overall'])}")
    print("\nper category:")
    for cat, c in res["by_category"].items():
        print(f"  {cat:<24} {_pct(c)}")
    print("\nper candidate kind:            agreement            ours-correct  bfcl-correct")
    for kind, c in res["by_kind"].items():
        print(f"  {kind:<28} {_pct(c):<22} {c['ours_correct']:>6} {c['bfcl_correct']:>12}")
    ta = res["error_type_agreement"]
    if ta.get("n"):
        print(f"\nerror type agreement where both say incorrect (BFCL type mappable): {_pct(ta)}")
        for c in res["error_type_confusion"]:
            print(f"  ours {c['ours']:<30} BFCL {c['bfcl']:<30} {c['count']}")
    print("\ndisagreements (kind | ours | BFCL error_type | count | example ids):")
    for d in res["disagreements"]:
        print(f"  {d['kind']} | {d['ours']} | {d['bfcl']} | {d['count']} | {', '.join(sorted(set(d['ids']))[:6])}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
