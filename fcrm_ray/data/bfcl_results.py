"""BFCL result folders as a source of REAL model outputs: preference pairs and Best-of-N pools.

`bfcl generate` / `bfcl evaluate` write one `result/<model>/` and one `score/<model>/` folder per
run; public repositories collect them for dozens of models (e.g. `HuanzhiMao/BFCL-Result`, BFCL v2,
Aug 2024: `git clone https://github.com/HuanzhiMao/BFCL-Result` and point `sources.bfcl_results`
at `BFCL-Result/2024-08-11`). Layouts read here:

- BFCL v2 (2024): `result/<model>/gorilla_openfunctions_v1_test_<cat>_result.json`,
  `score/<model>/<cat>_score.json`; categories `simple`, `multiple_function`, `parallel_function`,
  `parallel_multiple_function`, `java`, `javascript` and the executable four
  (`executable_simple`, ... -> the wheel's `exec_*`) (ids `<cat>_<n>`).
- BFCL v3 / v4: `result/<model>/[<group>/]BFCL_v3_<cat>_result.json` (or `BFCL_v4_...`) and the
  same names with `_score` in `score/<model>/`.

What happens to each output (one JSON line `{id, result}` of a result file):

1. Its question is matched by id to the installed `bfcl-eval` wheel (v2/v3 category and id names
   are mapped to the wheel's: `simple_12` -> `simple_python_12`, `java_3` -> `simple_java_3`, ...).
   BFCL edited some questions between versions, so the question text and the function names and
   parameter names that the score file recorded for that id (any model's) must equal the wheel's;
   otherwise every output of the question is dropped (`question_changed`). An id no score file
   mentions (no model failed it) cannot be checked and is kept (`question_unchecked`).
2. The output is decoded with OUR parser (`toolcall.parse`; never eval). BFCL's function-calling
   ("FC") result format, a list of `{name: "<JSON arguments>"}`, is rewritten to plain JSON calls
   first; FC models saw dots in function names replaced by underscores, so a name that matches a
   catalog function only with `.` -> `_` is mapped back.
3. OUR verifier judges it against the wheel's possible answers. BFCL's own verdict (failed iff
   the id is listed in the model's score file) is a cross-check: outputs on which the two disagree
   are dropped and counted (`disagree_*`), so no label rests on one checker alone.

Licences: outputs of a model are used for training only if its licence allows it
(`MODEL_LICENCES`, the table in docs/bfcl_results.md); evaluation (pairs and pools of the held-out
categories) may use every model. `train_models: permissive` applies that table.

Accounting: `outputs_read == kept + dropped` per reason, checked in `ResultsStats.check()`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from fcrm_ray.data.pairs import canonical_chosen, pair_row
from fcrm_ray.toolcall.schema import Example, ToolCall, calls_to_text, reference_to_bfcl

# BFCL v2 / v3 category names -> the wheel's (v4) names; live categories are named alike.
CATEGORY_TO_WHEEL = {
    "simple": "simple_python", "simple_python": "simple_python",
    "multiple_function": "multiple", "multiple": "multiple",
    "parallel_function": "parallel", "parallel": "parallel",
    "parallel_multiple_function": "parallel_multiple", "parallel_multiple": "parallel_multiple",
    "java": "simple_java", "simple_java": "simple_java",
    "javascript": "simple_javascript", "simple_javascript": "simple_javascript",
    **{c: c for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")},
    # the executable categories (v2 `executable_*`, v3 `exec_*`): Python questions outside the four
    # AST ones, in the wheel's data/unused_datasets/ (BFCL judged them by running the calls)
    "executable_simple": "exec_simple", "executable_multiple_function": "exec_multiple",
    "executable_parallel_function": "exec_parallel", "executable_parallel_multiple_function": "exec_parallel_multiple",
    **{c: c for c in ("exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple")},
}

_RESULT_FILE = re.compile(r"^(?:gorilla_openfunctions_v1_test_|BFCL_v[34]_)(?P<cat>[a-z_]+?)_result\.json$")
_SCORE_FILE = re.compile(r"^(?:BFCL_v[34]_)?(?P<cat>[a-z_]+?)_score\.json$")

# Model folder (HuanzhiMao/BFCL-Result 2024-08-11 names, `-FC*` suffixes stripped) -> (licence of
# the weights / terms of the service, outputs usable for training). Training needs a licence that
# puts no restriction on using outputs to train other models: Apache-2.0, MIT, the NVIDIA Open Model
# Licence (allows synthetic data) and Llama 3.1 (allows it with attribution). Everything else -
# API-only models under their provider's terms, non-commercial (CC-BY-NC, Mistral Research),
# Llama 2/3 and Gemma terms, custom licences - is evaluation only.
MODEL_LICENCES: dict[str, tuple[str, bool]] = {
    "gorilla-openfunctions-v2": ("Apache-2.0", True),
    "ibm-granite_granite-20b-functioncalling": ("Apache-2.0", True),
    "NousResearch_Hermes-2-Pro-Mistral-7B": ("Apache-2.0", True),
    "open-mistral-nemo-2407": ("Apache-2.0 (Mistral NeMo weights)", True),
    "open-mixtral-8x22b": ("Apache-2.0 (Mixtral 8x22B weights)", True),
    "open-mixtral-8x7b": ("Apache-2.0 (Mixtral 8x7B weights)", True),
    "mistral-tiny-2312": ("Apache-2.0 (Mistral 7B Instruct v0.2 weights)", True),
    "snowflake_arctic": ("Apache-2.0", True),
    "firefunction-v1": ("Apache-2.0 (Mixtral fine-tune)", True),
    "meetkai_functionary-small-v3.1": ("MIT + Llama 3.1 Community", True),
    "meetkai_functionary-small-v3.2": ("MIT + Llama 3.1 Community", True),
    "meetkai_functionary-medium-v3.1": ("MIT + Llama 3.1 Community", True),
    "nvidia_nemotron-4-340b-instruct": ("NVIDIA Open Model License", True),
    "Salesforce_xLAM-1b-fc-r": ("CC-BY-NC-4.0", False),
    "Salesforce_xLAM-7b-fc-r": ("CC-BY-NC-4.0", False),
    "NousResearch_Hermes-2-Pro-Llama-3-70B": ("Llama 3 Community", False),
    "NousResearch_Hermes-2-Pro-Llama-3-8B": ("Llama 3 Community", False),
    "NousResearch_Hermes-2-Theta-Llama-3-70B": ("Llama 3 Community", False),
    "NousResearch_Hermes-2-Theta-Llama-3-8B": ("Llama 3 Community", False),
    "meta-llama_Meta-Llama-3-70B-Instruct": ("Llama 3 Community", False),
    "meta-llama_Meta-Llama-3-8B-Instruct": ("Llama 3 Community", False),
    "firefunction-v2": ("Llama 3 Community", False),
    "Nexusflow-Raven-v2": ("Nexusflow community licence", False),
    "THUDM_glm-4-9b-chat": ("GLM-4 licence", False),
    "deepseek-ai_deepseek-coder-6.7b-instruct": ("DeepSeek licence", False),
    "google_gemma-7b-it": ("Gemma terms", False),
    "databricks-dbrx-instruct": ("Databricks Open Model Licence", False),
    "command-r-plus": ("CC-BY-NC-4.0", False),
    "mistral-large-2407": ("Mistral Research Licence", False),
    # open-weight models of later public result sets (e.g. bbrowning/bfcl-vllm-results, BFCL v4)
    "openai_gpt-oss-20b": ("Apache-2.0", True),
    "openai_gpt-oss-120b": ("Apache-2.0", True),
    # aaronwu901225main/gorilla (BFCL v3, 8B-class models, 2025); `-FC` runs share the entry
    "Qwen_Qwen3-8B": ("Apache-2.0", True),
    "meta-llama_Llama-3.1-8B-Instruct": ("Llama 3.1 Community", True),
    "watt-ai_watt-tool-8B": ("Apache-2.0 (Llama 3.1 fine-tune)", True),
    "Salesforce_Llama-xLAM-2-8b-fc-r": ("CC-BY-NC-4.0", False),
    "mistralai_Ministral-8B-Instruct-2410": ("Mistral Research Licence", False),
    # licence not verified here: evaluation only until someone checks it
    "BitAgent_BitAgent-8B": ("unverified", False),
    "Team-ACE_ToolACE-2-8B": ("unverified", False),
    "uiuc-convai_CoALM-8B": ("unverified", False),
}
# API-only model families: provider terms, evaluation only
_API_PREFIXES = ("gpt-", "claude-", "gemini-", "mistral-medium", "mistral-small", "yi-large")


def model_licence(model: str) -> tuple[str, bool]:
    """(licence, usable for training) of a result folder's model; unknown models are not trained on."""
    base = re.sub(r"-FC(-Any|-Auto)?$", "", model)
    if base in MODEL_LICENCES:
        return MODEL_LICENCES[base]
    if model.startswith(_API_PREFIXES) or base.startswith(_API_PREFIXES):
        return "proprietary API terms", False
    return "unknown", False


_FAMILIES = (("gpt-oss", "openai-gpt-oss"), ("qwen", "qwen"), ("watt-tool", "watt-tool"), ("toolace", "toolace"),
             ("bitagent", "bitagent"), ("coalm", "coalm"), ("ministral", "mistral"), ("gpt-", "openai-gpt"),
             ("claude", "anthropic-claude"), ("gemini", "google-gemini"),
             ("gemma", "google-gemma"), ("xlam", "salesforce-xlam"), ("functionary", "meetkai-functionary"),
             ("granite", "ibm-granite"), ("command-r", "cohere-command-r"), ("llama-3", "llama-3"),
             ("mistral", "mistral"), ("mixtral", "mistral"), ("firefunction", "fireworks-firefunction"),
             ("glm", "thudm-glm"), ("deepseek", "deepseek"), ("nemotron", "nvidia-nemotron"),
             ("arctic", "snowflake-arctic"), ("dbrx", "databricks-dbrx"), ("gorilla", "gorilla"),
             ("raven", "nexusflow-raven"), ("yi-", "01ai-yi"))


def model_family(generator: str) -> str:
    """`bfcl:<model>` -> a model family (`mutation` for programmatic negatives), for reports."""
    if not generator.startswith("bfcl:"):
        return generator.split(":", 1)[0] if ":" in generator else generator
    name = generator[5:].lower()
    return next((fam for key, fam in _FAMILIES if key in name), name)


def wheel_id(result_id: str, raw_category: str) -> str:
    """`simple_12` (v2/v3) -> `simple_python_12`; ids already in wheel form are unchanged."""
    wheel_cat = CATEGORY_TO_WHEEL[raw_category]
    m = re.match(rf"^{re.escape(raw_category)}_(\d+)$", result_id)
    return f"{wheel_cat}_{m.group(1)}" if m else result_id


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


@dataclass
class ResultFile:
    model: str
    category: str  # the wheel's name
    raw_category: str
    result: Path
    score: Path | None


def find_result_files(root: str | Path) -> list[ResultFile]:
    """Every (model, category) result file under `root` (a folder holding `result/` and `score/`,
    or any folder above such pairs), with its score file when there is one."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"bfcl_results: {root} is not a folder")
    out = []
    for result_dir in sorted(p for p in root.rglob("result") if p.is_dir()):
        score_dir = result_dir.parent / "score"
        for model_dir in sorted(p for p in result_dir.iterdir() if p.is_dir()):
            scores = {}
            if (score_dir / model_dir.name).is_dir():
                for f in (score_dir / model_dir.name).rglob("*.json"):
                    m = _SCORE_FILE.match(f.name)
                    if m:
                        scores[m.group("cat")] = f
            for f in sorted(model_dir.rglob("*.json")):
                m = _RESULT_FILE.match(f.name)
                if not m or m.group("cat") not in CATEGORY_TO_WHEEL:
                    continue
                cat = m.group("cat")
                out.append(ResultFile(model_dir.name, CATEGORY_TO_WHEEL[cat], cat, f, scores.get(cat)))
    if not out:
        raise FileNotFoundError(f"bfcl_results: no BFCL result files under {root} "
                                "(expected result/<model>/gorilla_openfunctions_v1_test_<cat>_result.json "
                                "or result/<model>/BFCL_v3_<cat>_result.json)")
    return out


def _json_lines(path: Path) -> Iterator[Any]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield None


def read_score_file(path: Path, raw_category: str) -> tuple[set[str], dict[str, Mapping]]:
    """(wheel ids BFCL failed, wheel id -> the prompt BFCL recorded) from one score file."""
    failed, prompts = set(), {}
    for row in _json_lines(path):
        if not isinstance(row, Mapping) or "accuracy" in row and "id" not in row:
            continue
        prompt = row.get("prompt") if isinstance(row.get("prompt"), Mapping) else {}
        rid = prompt.get("id") if isinstance(prompt.get("id"), str) else row.get("id")
        if not isinstance(rid, str):
            continue
        wid = wheel_id(rid, raw_category)
        if row.get("valid") is False:
            failed.add(wid)
        if prompt:
            prompts[wid] = prompt
    return failed, prompts


# ----------------------------------------------------------------------------------------------
# Question check and decoding
# ----------------------------------------------------------------------------------------------


def _norm_text(s: str) -> str:
    return " ".join(str(s).split()).lower()


def _prompt_user_text(question: Any) -> str:
    """v2: a string; v3+: [[{role, content}, ...]] or [{role, content}]."""
    if isinstance(question, str):
        return question
    msgs = question
    while isinstance(msgs, list) and msgs and isinstance(msgs[0], list):
        msgs = msgs[0]
    if isinstance(msgs, list):
        return " ".join(str(m.get("content", "")) for m in msgs if isinstance(m, Mapping) and m.get("role") == "user")
    return ""


def _doc_signature(functions: Any) -> list[tuple[str, tuple[str, ...]]]:
    funcs = functions if isinstance(functions, list) else [functions]
    sig = []
    for f in funcs:
        if isinstance(f, Mapping):
            props = (f.get("parameters") or {}).get("properties") or {}
            sig.append((str(f.get("name")), tuple(sorted(props))))
    return sorted(sig)


# BFCL reworded questions between versions without changing the task ("How can I generate ..." ->
# "Help me generate ..." in most Java/JavaScript ones); a changed number or name drops the ratio
# of a short question below this, and the function names and parameter names must match exactly.
QUESTION_SIMILARITY = 0.85


def same_question(prompt: Mapping, example: Example) -> bool:
    """Whether the question and function docs BFCL recorded are (up to rewording) the wheel example's."""
    import difflib

    wheel_sig = sorted((t.name, tuple(sorted(t.properties))) for t in example.tools)
    if _doc_signature(prompt.get("function")) != wheel_sig:
        return False
    text = _norm_text(_prompt_user_text(prompt.get("question")))
    wheel_text = _norm_text(" ".join(str(m.get("content", "")) for m in example.conversation if m.get("role") == "user"))
    return text == wheel_text or difflib.SequenceMatcher(None, text, wheel_text).ratio() >= QUESTION_SIMILARITY


def _unsanitize(name: str, catalog: Iterable[str]) -> str:
    """FC models saw `a.b` as `a_b`: map such a name back when it identifies one catalog function."""
    names = list(catalog)
    if name in names:
        return name
    hits = [n for n in names if n.replace(".", "_") == name]
    return hits[0] if len(hits) == 1 else name


def output_text(result: Any, example: Example) -> str | None:
    """A result line's `result` as output text for our parser; None = nothing usable (empty).

    BFCL's FC format (a list of `{name: "<JSON args>"}` objects) becomes JSON calls
    `[{"name": ..., "arguments": {...}}]` with FC-sanitized names mapped back; a string is kept as
    the model wrote it (its surface is part of what an RM must judge)."""
    names = [t.name for t in example.tools]
    if isinstance(result, str):
        text = result.strip()
        return text or None
    if isinstance(result, list) and result and all(isinstance(d, Mapping) and len(d) == 1 for d in result):
        calls = []
        for d in result:
            (name, args), = d.items()
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    return json.dumps(result, ensure_ascii=False)  # leave it to the parser to reject
            if not isinstance(args, Mapping):
                return json.dumps(result, ensure_ascii=False)
            calls.append(ToolCall(_unsanitize(str(name), names), dict(args)))
        return calls_to_text(calls)
    if result in (None, "", []):
        return None
    return json.dumps(result, ensure_ascii=False)


def _map_names_in_text(text: str, example: Example) -> str:
    """Prompting models mostly write dotted names; some FC-style ones write `a_b` in plain text."""
    from fcrm_ray.toolcall.parse import parse_calls

    parsed = parse_calls(text, example.tools)
    if not parsed.ok:
        return text
    names = [t.name for t in example.tools]
    fixed = [ToolCall(_unsanitize(c.name, names), c.arguments) for c in parsed.calls]
    if all(a.name == b.name for a, b in zip(fixed, parsed.calls)):
        return text
    return calls_to_text(fixed)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


@dataclass
class ModelOutput:
    """One model's judged output on one question."""
    example_id: str
    category: str
    model: str
    output: str
    correct: bool
    error_type: str | None
    reason: str
    bfcl_correct: bool | None


@dataclass
class ResultsStats:
    outputs_read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    info: Counter = field(default_factory=Counter)
    models: dict = field(default_factory=dict)

    def check(self) -> None:
        if self.outputs_read != self.kept + sum(self.dropped.values()):
            raise AssertionError(f"bfcl_results accounting: read {self.outputs_read} != kept {self.kept} "
                                 f"+ dropped {dict(self.dropped)}")

    def to_dict(self) -> dict:
        return {"outputs_read": self.outputs_read, "kept": self.kept, "dropped": dict(self.dropped),
                "info": dict(self.info), "models": self.models}


def read_results(roots: Iterable[str | Path], categories: Iterable[str], examples: Mapping[str, Example],
                 models: Iterable[str] = (), quarantine=None) -> tuple[list[ModelOutput], ResultsStats]:
    """Judged outputs of every result file under `roots` whose category (wheel name) is in
    `categories` and whose model is in `models` (empty = all). `examples`: wheel id -> Example."""
    from fcrm_ray.toolcall.verify import verify

    categories, allow = set(categories), set(models)
    files = [f for root in roots for f in find_result_files(root)
             if f.category in categories and (not allow or f.model in allow)]
    stats = ResultsStats()
    failed_by: dict[Path, set[str]] = {}  # per result file: several runs of one model may sit side by side
    prompts: dict[str, Mapping] = {}
    for f in files:
        if f.score is not None:
            failed, p = read_score_file(f.score, f.raw_category)
            failed_by[f.result] = failed
            for k, v in p.items():
                prompts.setdefault(k, v)
    question_ok: dict[str, bool] = {}
    outputs = []
    for f in files:
        failed = failed_by.get(f.result)
        lic, trainable = model_licence(f.model)
        stats.models.setdefault(f.model, {"licence": lic, "train": trainable, "outputs": 0})
        for row in _json_lines(f.result):
            stats.outputs_read += 1

            def drop(reason: str, raw=row):
                stats.dropped[reason] += 1
                if quarantine is not None:
                    quarantine.add(raw, reason, source=f"bfcl_results/{f.model}/{f.category}")

            if not isinstance(row, Mapping) or not isinstance(row.get("id"), str) or "result" not in row:
                drop("malformed result row")
                continue
            wid = wheel_id(row["id"], f.raw_category)
            ex = examples.get(wid)
            if ex is None:
                drop("question not in the bfcl-eval wheel")
                continue
            if wid not in question_ok:
                question_ok[wid] = same_question(prompts[wid], ex) if wid in prompts else True
                stats.info["questions_checked" if wid in prompts else "questions_unchecked"] += 1
            if not question_ok[wid]:
                drop("question_changed (text or function docs differ from the wheel's)")
                continue
            text = output_text(row["result"], ex)
            if text is None:
                drop("empty output")
                continue
            text = _map_names_in_text(text, ex)
            v = verify(text, ex.reference, ex.tools)
            bfcl_ok = None if failed is None else wid not in failed
            if bfcl_ok is not None and bfcl_ok != v.correct:
                drop(f"disagree_{'ours_correct' if v.correct else 'ours_wrong'}_with_bfcl")
                continue
            if bfcl_ok is None:
                stats.info["no_score_file"] += 1
            stats.kept += 1
            stats.models[f.model]["outputs"] += 1
            outputs.append(ModelOutput(wid, f.category, f.model, text, v.correct,
                                       None if v.correct else v.error_type, v.detail, bfcl_ok))
    stats.check()
    return outputs, stats


# ----------------------------------------------------------------------------------------------
# Pairs and pools
# ----------------------------------------------------------------------------------------------


def _by_example(outputs: Iterable[ModelOutput]) -> dict[str, list[ModelOutput]]:
    groups: dict[str, list[ModelOutput]] = defaultdict(list)
    for o in outputs:
        groups[o.example_id].append(o)
    return groups


def real_pairs(outputs: Iterable[ModelOutput], examples: Mapping[str, Example], split_of: Mapping[str, str | None],
               trainable: Mapping[str, bool], seed: int = 0, max_rejected_per_model: int = 3,
               counters: Counter | None = None) -> list[dict]:
    """FC-RewardBench pairs from real outputs: rejected = a model's wrong output; chosen = another
    model's correct output on the same question (seeded choice; real surfaces), else the reference
    in canonical JSON. Train pairs use only models whose licence allows training (both sides);
    validation_real/test_real pairs are evaluation only and use every model. `generator` =
    `bfcl:<model>`."""
    counters = counters if counters is not None else Counter()
    rows = []
    for ex_id, outs in sorted(_by_example(outputs).items()):
        split = split_of.get(ex_id)
        if split is None:
            counters["real_unassigned"] += len(outs)
            continue
        if split == "train":
            usable = [o for o in outs if trainable.get(o.model, False)]
            counters["real_not_trainable_licence"] += len(outs) - len(usable)
            outs = usable
        ex = examples[ex_id]
        rng = random.Random(f"fcrm-real:{seed}:{ex_id}")
        correct = sorted({o.output for o in outs if o.correct})
        per_model: Counter = Counter()
        seen: set[tuple[str, str]] = set()
        for o in sorted((o for o in outs if not o.correct), key=lambda o: (o.model, o.output)):  # order-free
            if (o.model, o.output) in seen:  # several runs of one model often write the same answer
                counters["real_duplicate_output"] += 1
                continue
            seen.add((o.model, o.output))
            if per_model[o.model] >= max_rejected_per_model:
                counters["real_over_model_cap"] += 1
                continue
            per_model[o.model] += 1
            chosen = rng.choice(correct) if correct else canonical_chosen(ex)
            counters["real_chosen_other_model" if correct else "real_chosen_reference"] += 1
            rows.append(dict(pair_row(ex, split, chosen, o.output, o.error_type or "incorrect_output_format",
                                  f"bfcl:{o.model}", False), source="bfcl_results"))
    return rows


def bon_pools(outputs: Iterable[ModelOutput], examples: Mapping[str, Example], pool_size: int = 16,
              seed: int = 0, min_models: int = 2) -> list[dict]:
    """One Best-of-N pool per question: up to `pool_size` models' outputs in a seeded model order
    (`fcrm eval bon --candidates` rows; `models` and `correct` columns say who wrote what). The
    order is a function of the SET of outputs (sorted by model and text before the seeded
    shuffle), not of the order the result folders were given or listed in: a model with several
    runs has several outputs per question, and with more than `pool_size` outputs the read order
    decided which ones a pool kept."""
    pools = []
    for ex_id, outs in sorted(_by_example(outputs).items()):
        if len(outs) < min_models:
            continue
        rng = random.Random(f"fcrm-pool:{seed}:{ex_id}")
        outs = sorted(outs, key=lambda o: (o.model, o.output))
        rng.shuffle(outs)
        outs = outs[:pool_size] if pool_size else outs
        ex = examples[ex_id]
        pools.append({
            "example_id": ex_id, "category": ex.category,
            "tools": json.dumps([t.to_dict() for t in ex.tools], ensure_ascii=False),
            "conversation": json.dumps(ex.conversation, ensure_ascii=False),
            "reference": json.dumps(reference_to_bfcl(ex.reference), ensure_ascii=False),
            "candidates": [o.output for o in outs],
            "models": [o.model for o in outs],
            "correct": [o.correct for o in outs],
        })
    return pools


__all__ = ["CATEGORY_TO_WHEEL", "MODEL_LICENCES", "ModelOutput", "ResultsStats", "ResultFile", "bon_pools",
           "find_result_files", "model_family", "model_licence", "output_text", "read_results", "read_score_file", "real_pairs",
           "same_question", "wheel_id"]
