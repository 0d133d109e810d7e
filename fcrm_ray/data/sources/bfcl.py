"""BFCL single-turn categories as shipped in the bfcl-eval wheel (`read_bfcl`): question rows
`BFCL_v4_<cat>.json` joined by id with `possible_answer/BFCL_v4_<cat>.json`; the retired
executable categories (`exec_*`) from `unused_datasets/`, their call-string ground truth read as
a possible answer (`reference_from_exec`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from fcrm_ray.data.sources.fields import _check_reference, _json_field, _messages
from fcrm_ray.data.sources.files import ReadStats, _Bad, _emit, iter_rows
from fcrm_ray.paths import BFCL_EXEC, BFCL_SINGLE_TURN, bfcl_data_dir
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import Example, ReferenceCall, SchemaError, normalize_tools, reference_from_bfcl


def bfcl_example(q: Any, answer: Any, category: str) -> Example:
    """One BFCL question row + its ground truth -> Example (SchemaError if unusable)."""
    if not isinstance(q, Mapping):
        raise SchemaError("malformed row: not a JSON object")
    qid = q.get("id")
    if not isinstance(qid, str) or not qid:
        raise SchemaError("missing field: `id`")
    question = _json_field(q, "question", (list,))
    if question and all(isinstance(m, Mapping) for m in question):
        question = [question]  # older dumps: a flat message list
    if len(question) != 1:
        raise SchemaError(f"multi-turn question: {len(question)} turns in a single-turn category")
    conv = _messages(question[0], "question[0]")
    if not any(m["role"] == "user" for m in conv):
        raise SchemaError("no user message: question[0] has no user turn")
    tools = normalize_tools(_json_field(q, "function", (list,)))
    if answer is None:
        raise SchemaError("missing answer: no possible_answer row with this id")
    is_exec = isinstance(answer, list) and bool(answer) and all(isinstance(a, str) for a in answer)
    ref = reference_from_exec(answer, tools) if is_exec else reference_from_bfcl(answer)
    _check_reference(ref, tools)
    return Example(id=qid, tools=tools, conversation=conv, reference=ref, source="bfcl", category=category)



def _bfcl_row(row: Any, index: int) -> Example:
    """A BFCL question row with its answer inline (`ground_truth`), as some dumps ship it."""
    gt = row.get("ground_truth") if isinstance(row, Mapping) else None
    return bfcl_example(row, gt, str(row.get("category") or "bfcl") if isinstance(row, Mapping) else "bfcl")


def reference_from_exec(ground_truth: list[str], tools) -> list[ReferenceCall]:
    """The executable categories' ground truth (`["f(a=1, b=[2, 3])", ...]`, one Python call string
    per expected call; decoded by our parser, never eval) as a possible answer: each given argument
    accepts its value, and also absence when the value is the schema's default; an optional schema
    parameter the ground truth leaves out accepts absence or its default (BFCL judged these by
    executing the call, where both are the same call)."""
    specs = {t.name: t for t in tools}
    out = []
    for i, text in enumerate(ground_truth):
        parsed = parse_calls(text)
        if not parsed.ok or len(parsed.calls) != 1:
            raise SchemaError(f"ground_truth[{i}] is not one Python call: {text[:80]!r}")
        call = parsed.calls[0]
        spec = specs.get(call.name)
        params: dict[str, list] = {}
        for name, value in call.arguments.items():
            schema = spec.properties.get(name, {}) if spec is not None else {}
            alts = [value]
            if isinstance(schema, Mapping) and "default" in schema and schema["default"] == value:
                alts.append("")
            params[name] = alts
        if spec is not None:
            for name, schema in spec.properties.items():
                if name in params or name in spec.required:
                    continue
                default = schema.get("default") if isinstance(schema, Mapping) else None
                params[name] = ["", default] if default not in (None, "") else [""]
        out.append(ReferenceCall(call.name, params))
    return out


def _bfcl_answers(path: Path, category: str, quarantine, stats: ReadStats) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if not path.is_file():
        return answers  # every question of the category is then quarantined as "missing answer"
    for _, raw in iter_rows(path):
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) and "ground_truth" in raw:
            answers[raw["id"]] = raw["ground_truth"]
            continue
        stats.aux_quarantined += 1
        if quarantine is None:
            raise SchemaError(f"{path.name}: malformed answer row")
        quarantine.add(raw, "malformed answer row: needs `id` and `ground_truth`", source=f"bfcl/answers/{category}")
    return answers


def read_bfcl(categories: Iterable[str] = BFCL_SINGLE_TURN, data_dir: str | Path | None = None,
              quarantine=None, stats: ReadStats | None = None) -> Iterator[Example]:
    """Examples of the given BFCL single-turn categories, in file order, category by category.
    A question without an answer or a malformed row goes to `quarantine` (or raises if None)."""
    if isinstance(categories, str):
        categories = [categories]
    root = Path(data_dir) if data_dir else bfcl_data_dir()
    stats = stats if stats is not None else ReadStats()
    for cat in categories:
        name = f"BFCL_v4_{cat}.json"
        if cat in BFCL_EXEC:  # retired categories: question/ and possible_answer/ under unused_datasets/
            qpath, apath = root / "unused_datasets" / "question" / name, root / "unused_datasets" / "possible_answer" / name
        else:
            qpath, apath = root / name, root / "possible_answer" / name
        if not qpath.is_file():
            raise FileNotFoundError(f"BFCL category {cat!r}: no file {qpath}")
        answers = _bfcl_answers(apath, cat, quarantine, stats)

        def items(qpath=qpath, answers=answers, cat=cat):
            for _, raw in iter_rows(qpath):
                stats.rows += 1
                try:
                    qid = raw.get("id") if isinstance(raw, Mapping) else None
                    yield bfcl_example(raw, answers.get(qid) if isinstance(qid, str) else None, cat)
                except SchemaError as e:
                    yield _Bad(raw, str(e))

        yield from _emit(items(), stats, quarantine, f"bfcl/{cat}")
