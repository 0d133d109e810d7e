"""Readers that turn public tool-calling datasets into canonical `Example`s.

Supported inputs (all yield `fcrm_ray.toolcall.schema.Example`):

- BFCL single-turn categories as shipped in the bfcl-eval wheel (`read_bfcl`): question rows
  `BFCL_v4_<cat>.json` joined by id with `possible_answer/BFCL_v4_<cat>.json`; the retired
  executable categories (`exec_*`) from `unused_datasets/`, their call-string ground truth read as
  a possible answer (`reference_from_exec`).
- xLAM / APIGen rows (`read_examples(path, "xlam")`): `query`, `tools`, `answers` (JSON strings), tools with a flat
  parameter dict and Python-ish types (`"str, optional"`, `"List[int]"`).
- OpenAI chat rows (`"openai"`): `{messages, tools}`; every assistant turn with
  `tool_calls` is one example (the messages before it are the conversation).
- ShareGPT rows with function calls (`"sharegpt"`): `conversations: [{from, value}]`,
  Glaive/Hermes-style call turns (`<tool_call>`, `<functioncall>`, `from: function_call`), tools in
  a `tools` field or in the system prompt.
- Our own canonical rows (`Example.to_dict()`; format name `canonical`, alias `examples`).

`read_examples` dispatches by `fmt` or by sniffing the first row's keys, over Parquet / JSONL /
JSON (array or JSON lines) files or directories, local or on any pyarrow / fsspec filesystem URI.

Accounting: a reader works on *items* — one per row for one-example-per-row formats, one per
call turn for chat formats (a chat row without any call turn is one quarantined item). Every item
is either kept (yielded) or quarantined with a reason, so `items == kept + quarantined` always
(`ReadStats.check()`). With `quarantine=None` a bad item raises `SchemaError` instead of being
dropped silently.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.paths import BFCL_EXEC, BFCL_SINGLE_TURN, bfcl_data_dir
from fcrm_ray.toolcall.parse import parse_calls
from fcrm_ray.toolcall.schema import (
    Example,
    ReferenceCall,
    SchemaError,
    ToolCall,
    normalize_tool,
    normalize_tools,
    reference_from_bfcl,
    reference_from_calls,
)

FORMATS = ("bfcl", "xlam", "openai", "sharegpt", "canonical")
_DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


# ----------------------------------------------------------------------------------------------
# Accounting
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Raw rows from files (local paths or filesystem URIs)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


def _json_field(row: Mapping, key: str, kinds: tuple[type, ...]) -> Any:
    """row[key], decoding a JSON string; raises SchemaError naming the field."""
    if key not in row or row[key] is None:
        raise SchemaError(f"missing field: `{key}`")
    v = row[key]
    if isinstance(v, str) and str not in kinds:
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise SchemaError(f"bad field: `{key}` is not valid JSON ({e.msg})") from None
    if hasattr(v, "tolist"):  # numpy arrays from pandas-written Parquet
        v = v.tolist()
    if not isinstance(v, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise SchemaError(f"bad field: `{key}` must be a {names}, got {type(v).__name__}")
    return v


def _messages(raw: Any, where: str) -> list[dict]:
    if not isinstance(raw, list):
        raise SchemaError(f"bad field: `{where}` must be a list of messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise SchemaError(f"bad message: `{where}[{i}]` must be an object with a string `role`")
        out.append(dict(m))
    return out


def _check_reference(ref: list[ReferenceCall], tools) -> None:
    if not ref:
        raise SchemaError("empty reference: no reference call")
    names = {t.name for t in tools}
    unknown = sorted({r.name for r in ref} - names)
    if unknown:
        raise SchemaError(f"unknown function: reference calls {unknown} not in the tool catalog")


def _calls_from_tool_calls(raw: Any, where: str) -> list[ToolCall]:
    """OpenAI `tool_calls` (or bare `{name, arguments}` objects) -> ToolCalls."""
    if not isinstance(raw, list) or not raw:
        raise SchemaError(f"bad field: `{where}` must be a non-empty list")
    calls = []
    for i, tc in enumerate(raw):
        if not isinstance(tc, Mapping):
            raise SchemaError(f"bad call: `{where}[{i}]` is not an object")
        fn = tc.get("function") if isinstance(tc.get("function"), Mapping) else tc
        name = fn.get("name")
        args = fn.get("arguments", fn.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise SchemaError(f"bad call: `{where}[{i}].arguments` is not valid JSON ({e.msg})") from None
        if not isinstance(name, str) or not name:
            raise SchemaError(f"bad call: `{where}[{i}]` has no string `name`")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise SchemaError(f"bad call: `{where}[{i}].arguments` must be an object")
        calls.append(ToolCall(name, dict(args)))
    return calls


def _tool_calls_message(calls: list[ToolCall], content: str = "") -> dict:
    return {"role": "assistant", "content": content,
            "tool_calls": [{"type": "function", "function": c.to_dict()} for c in calls]}


# ----------------------------------------------------------------------------------------------
# BFCL
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# xLAM / APIGen
# ----------------------------------------------------------------------------------------------

_PY_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
             "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
             "set": "array", "sequence": "array", "dict": "object", "mapping": "object", "object": "object",
             "array": "array"}


def _py_type_schema(t: str) -> dict:
    """`List[int]` / `Dict[str, Any]` / `Optional[str]` / `str` -> a JSON-Schema fragment ({} = any)."""
    t = t.strip()
    m = re.fullmatch(r"(?:typing\.)?(\w+)\s*(?:\[(.*)\])?", t)
    if not m:
        return {}
    head, inner = m.group(1).lower(), m.group(2)
    if head == "optional" and inner:
        return _py_type_schema(inner)
    if head == "union" and inner:
        parts = [p for p in (s.strip() for s in _split_top(inner)) if p.lower() not in ("none", "nonetype")]
        return _py_type_schema(parts[0]) if len(parts) == 1 else {}
    mapped = _PY_TYPES.get(head)
    if mapped is None:
        return {}
    out: dict = {"type": mapped}
    if mapped == "array" and inner:
        first = _split_top(inner)[0]
        item = _py_type_schema(first)
        if item:
            out["items"] = item
    return out


def _split_top(s: str) -> list[str]:
    """Split on commas not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def xlam_tool(raw: Any):
    """An xLAM tool (flat `{param: {type: "str, optional", description, default}}`) -> ToolSpec.
    Tools already in JSON-Schema form pass through `normalize_tool`."""
    if isinstance(raw, Mapping):
        fn = raw.get("function") if isinstance(raw.get("function"), Mapping) else raw
        params = fn.get("parameters")
        if isinstance(params, Mapping) and "properties" not in params and params.get("type") not in ("object", "dict"):
            props, required = {}, []
            for p, spec in params.items():
                if not isinstance(spec, Mapping):
                    raise SchemaError(f"bad tool: parameter `{p}` of {fn.get('name')!r} is not an object")
                tstr = str(spec.get("type", ""))
                # "str, optional", "int, default=5", "List[Dict[str, Any]]": the first top-level
                # piece is the type, the others are flags
                pieces = [s.strip() for s in _split_top(tstr)]
                optional = any(s.lower() == "optional" for s in pieces[1:]) or pieces[0].lower().startswith("optional[")
                schema = _py_type_schema(pieces[0]) if pieces[0] else {}
                if spec.get("description"):
                    schema["description"] = str(spec["description"])
                if "default" in spec and spec["default"] not in (None, ""):
                    schema["default"] = spec["default"]
                props[str(p)] = schema
                if not optional:
                    required.append(str(p))
            fn = {**fn, "parameters": {"type": "object", "properties": props, "required": required}}
        raw = fn
    return normalize_tool(raw)


def xlam_example(row: Any, index: int, category: str = "xlam") -> Example:
    if not isinstance(row, Mapping):
        raise SchemaError("malformed row: not a JSON object")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SchemaError("missing field: `query`")
    tools_raw = _json_field(row, "tools", (list,))
    tools = [xlam_tool(t) for t in tools_raw]
    answers = _json_field(row, "answers", (list,))
    calls = _calls_from_tool_calls(answers, "answers")
    ref = reference_from_calls(calls)
    # An optional parameter the answer leaves out may also be passed with its default value.
    by_name = {t.name: t for t in tools}
    for r in ref:
        t = by_name.get(r.name)
        if t is None:
            continue
        for p, schema in t.properties.items():
            if p not in r.params and p not in t.required and "default" in schema:
                r.params[p] = ["", schema["default"]]
    _check_reference(ref, tools)
    rid = row.get("id")
    eid = f"xlam-{rid}" if rid not in (None, "") else f"xlam-{stable_hash(query, tools_raw)}"
    return Example(id=eid, tools=tools, conversation=[{"role": "user", "content": query}], reference=ref,
                   source="xlam", category=str(row.get("category") or category))


# ----------------------------------------------------------------------------------------------
# OpenAI chat rows
# ----------------------------------------------------------------------------------------------


def openai_examples(row: Any, index: int) -> list[Example | _Bad]:
    """Every assistant turn with `tool_calls` -> one Example (conversation = messages before)."""
    try:
        if not isinstance(row, Mapping):
            raise SchemaError("malformed row: not a JSON object")
        msgs = _messages(_json_field(row, "messages", (list,)), "messages")
        tools = normalize_tools(_json_field(row, "tools", (list,)))
    except SchemaError as e:
        return [_Bad(row, str(e))]
    base = str(row.get("id")) if row.get("id") not in (None, "") else stable_hash(msgs, row.get("tools"))
    category = str(row.get("category") or "openai")
    out: list[Example | _Bad] = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        try:
            calls = _calls_from_tool_calls(m["tool_calls"], f"messages[{i}].tool_calls")
            ref = reference_from_calls(calls)
            _check_reference(ref, tools)
            if not any(x["role"] == "user" for x in msgs[:i]):
                raise SchemaError(f"no user message: before messages[{i}]")
            out.append(Example(id=f"{base}-{i}", tools=tools, conversation=msgs[:i], reference=ref,
                               source=str(row.get("source") or "openai"), category=category))
        except SchemaError as e:
            out.append(_Bad({"row": row, "turn": i}, str(e)))
    return out or [_Bad(row, "no call turn: no assistant message with `tool_calls`")]


# ----------------------------------------------------------------------------------------------
# ShareGPT with function calls (Glaive / Hermes style)
# ----------------------------------------------------------------------------------------------

_ROLE = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "function_call": "assistant", "tool": "tool", "observation": "tool", "function_response": "tool",
         "function": "tool", "ipython": "tool"}
_TOOLS_TAG = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_CALL_MARK = re.compile(r"<tool_call>|<functioncall>|<function_call>")


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON value starting with `{` or `[` found in free text."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        starts = [j for j in (text.find("{", i), text.find("[", i)) if j >= 0]
        if not starts:
            return out
        j = min(starts)
        try:
            obj, end = dec.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        out.append(obj)
        i = end


def tools_from_system_prompt(text: str) -> list:
    """Tool specs written into a system prompt (Hermes `<tools>...</tools>` or Glaive's bare
    JSON objects after the preamble). Returns [] when there are none."""
    blocks = _TOOLS_TAG.findall(text) or [text]
    found = []
    for b in blocks:
        for obj in _json_objects(b):
            for t in obj if isinstance(obj, list) else [obj]:
                if isinstance(t, Mapping) and (isinstance(t.get("name"), str) or isinstance(t.get("function"), Mapping)):
                    found.append(t)
    return found


def sharegpt_examples(row: Any, index: int) -> list[Example | _Bad]:
    """Every function-call turn -> one Example; earlier call turns become `tool_calls` messages."""
    try:
        if not isinstance(row, Mapping):
            raise SchemaError("malformed row: not a JSON object")
        turns = _json_field(row, "conversations", (list,))
        tools_raw = None
        if row.get("tools") not in (None, "", []):
            tools_raw = _json_field(row, "tools", (list,))
        sys_idx = None
        for k, t in enumerate(turns):
            if not isinstance(t, Mapping) or not isinstance(t.get("from"), str) or not isinstance(t.get("value"), str):
                raise SchemaError(f"bad turn: `conversations[{k}]` needs string `from` and `value`")
            if t["from"] not in _ROLE:
                raise SchemaError(f"bad turn: `conversations[{k}].from` = {t['from']!r} is not a known role")
        system = row.get("system") if isinstance(row.get("system"), str) else None
        if tools_raw is None:
            for k, t in enumerate(turns):
                if t["from"] == "system":
                    found = tools_from_system_prompt(t["value"])
                    if found:
                        tools_raw, sys_idx = found, k
                        break
            if tools_raw is None and system:
                tools_raw = tools_from_system_prompt(system) or None
                system = None if tools_raw else system
        if not tools_raw:
            raise SchemaError("no tools: no `tools` field and no tool specs in the system prompt")
        tools = normalize_tools(tools_raw)
    except SchemaError as e:
        return [_Bad(row, str(e))]
    base = str(row.get("id")) if row.get("id") not in (None, "") else stable_hash(turns)
    out: list[Example | _Bad] = []
    conv: list[dict] = [{"role": "system", "content": system}] if system else []
    for k, t in enumerate(turns):
        role = _ROLE[t["from"]]
        is_call = t["from"] == "function_call" or (role == "assistant" and _CALL_MARK.search(t["value"]))
        if k == sys_idx:
            continue  # the tool list lives in `tools`; a tool-only system prompt would duplicate it
        if not is_call:
            conv.append({"role": role, "content": t["value"]})
            continue
        parsed = parse_calls(t["value"])
        if not parsed.calls:
            out.append(_Bad({"row": row, "turn": k}, f"unparseable call turn: conversations[{k}] ({parsed.error})"))
            conv.append({"role": "assistant", "content": t["value"]})
            continue
        try:
            ref = reference_from_calls(parsed.calls)
            _check_reference(ref, tools)
            if not any(m["role"] == "user" for m in conv):
                raise SchemaError(f"no user message: before conversations[{k}]")
            out.append(Example(id=f"{base}-{k}", tools=tools, conversation=[dict(m) for m in conv], reference=ref,
                               source=str(row.get("source") or "sharegpt"), category=str(row.get("category") or "sharegpt")))
        except SchemaError as e:
            out.append(_Bad({"row": row, "turn": k}, str(e)))
        conv.append(_tool_calls_message(parsed.calls))
    return out or [_Bad(row, "no call turn: no function-call turn in `conversations`")]


# ----------------------------------------------------------------------------------------------
# Canonical rows and dispatch
# ----------------------------------------------------------------------------------------------


def canonical_example(row: Any, index: int) -> Example:
    if not isinstance(row, Mapping):
        raise SchemaError("malformed row: not a JSON object")
    ex = Example.from_dict(row)
    _check_reference(ex.reference, ex.tools)
    return ex


def _bfcl_row(row: Any, index: int) -> Example:
    """A BFCL question row with its answer inline (`ground_truth`), as some dumps ship it."""
    gt = row.get("ground_truth") if isinstance(row, Mapping) else None
    return bfcl_example(row, gt, str(row.get("category") or "bfcl") if isinstance(row, Mapping) else "bfcl")


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
