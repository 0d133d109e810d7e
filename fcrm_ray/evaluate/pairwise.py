"""`fcrm eval pairwise`: FC-RewardBench-style pairwise accuracy of one or more reward models.

    fcrm eval pairwise --model runs/rm-minilm --data data/pairs --out runs/eval/pairwise [--split test]
    fcrm eval pairwise --model rm-a --model rm-b --data pairs.parquet --out DIR backend=ray ray.num_actors=2
    fcrm eval pairwise --model /models/judge-8b --data fc_rewardbench.jsonl --out DIR scorer=vllm_judge  # GPU

Pairs come from `data.pairs.read_pairs` (FC-RewardBench rows or our generation pipeline's output);
rows that do not fit the pair schema go to `<out>/quarantine.jsonl` with a reason, and the counts
add up: read = evaluated + quarantined + other split (+ capped by `max_rows`). A model folder that
is not a `*ForSequenceClassification` RM with num_labels=1 is rejected before any row is scored.

Scorers (`scorer=`):
- `rm` (default): `fcrm_ray.scoring.RewardScorer` — chosen and rejected share the prompt, so each
  pair is one shared-prefix group (`scoring.score_pairs`). `backend=local` runs in this process
  (CPU default); `backend=ray` renders the pairs in Ray Data tasks and scores them with an actor
  pool of `scoring.RewardScoringActor` (`map_batches` + `ActorPoolStrategy`), one pool per model.
- `vllm_judge` (GPU only): an LLM-as-judge through vLLM, as the paper compares judges with RMs.
  The judge sees the tools, the conversation and ONE candidate and answers yes/no; the score is
  P(yes) / (P(yes) + P(no)) from the first generated token's log-probs, or the parsed verdict
  (1 / 0, 0.5 if neither) when the top log-probs hold neither word. Chosen and rejected are judged
  independently, so equal verdicts are ties (counted half). Prompt building and verdict parsing
  are tested on CPU; the vLLM engine itself is only exercised on a GPU machine.

Artifacts per model (in `--out`, or `--out/<model name>/` when several models are given):
`metrics.json` (top-level `accuracy`, `n`, `ci95`, `per_error_type`, `per_category`, `per_source`,
`per_generator`, `model`, `data`, counts), `scores.parquet` (one row per pair), `metrics.md`, and
PNG bar charts with bootstrap 95% error bars (`accuracy_per_error_type.png`, `..._per_generator.png`,
...). With several models, `--out/summary.json` and `--out/summary.md` compare them side by side.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fcrm_ray.config import ConfigError, config_arg_parser, load_config, to_dict
from fcrm_ray.data.pairs import read_pairs, stable_hash
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate.report import fmt_acc, md_table, model_name, save_group_bars
from fcrm_ray.models import load_tokenizer

SCORERS = ("rm", "vllm_judge")
BACKENDS = ("local", "ray")


@dataclass
class RayScoringConfig:
    """`backend=ray`: one actor pool of RewardScoringActor per model."""

    num_actors: int = 1
    batch_size: int = 64  # rows (rendered candidates) per map_batches call
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0

    def validate(self) -> None:
        if self.num_actors < 1 or self.batch_size < 1:
            raise ConfigError("config key `ray.num_actors` / `ray.batch_size` must be >= 1")


@dataclass
class JudgeConfig:
    """`scorer=vllm_judge` (GPU): vLLM engine and sampling settings of the judge."""

    tensor_parallel_size: int = 1
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    top_logprobs: int = 20
    max_tokens: int = 4
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false}


@dataclass
class PairwiseConfig:
    model: list[str] = field(default_factory=list)  # RM folders (or judge models); --model may repeat
    data: str = ""  # pair file or folder (Parquet/JSONL)
    out: str = ""
    split: str = "test"  # "" = every row
    scorer: str = "rm"  # rm | vllm_judge
    backend: str = "local"  # local | ray  (rm scorer)
    batch_size: int = 16
    max_length: int | None = None  # None = the model's training max_length (its train_config.yaml)
    device: str = "cpu"
    dtype: str = "float32"
    autocast: str = "auto"  # bf16 autocast only where the device runs it natively (fcrm_ray/hardware.py)
    trust_remote_code: bool = False
    max_rows: int = 0  # 0 = all; else a stable pseudo-random subset of this size
    n_boot: int = 1000
    seed: int = 0
    quarantine: str = ""  # default <out>/quarantine.jsonl
    plots: bool = True
    ray: RayScoringConfig = field(default_factory=RayScoringConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self) -> None:
        if self.scorer not in SCORERS:
            raise ConfigError(f"config key `scorer`: expected one of {SCORERS}, got {self.scorer!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key `backend`: expected one of {BACKENDS}, got {self.backend!r}")
        if self.max_rows < 0 or self.n_boot < 0 or self.batch_size < 1:
            raise ConfigError("config keys `max_rows`/`n_boot` must be >= 0 and `batch_size` >= 1")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"config key `device`: expected cpu or cuda, got {self.device!r}")


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def check_models(cfg: PairwiseConfig) -> list[str]:
    """Resolved model paths; every RM is checked to be a SeqCls RM before anything is scored."""
    from fcrm_ray.paths import resolve_model_path

    if not cfg.model:
        raise ConfigError("config key `model` is required (--model PATH, repeatable)")
    paths = []
    for m in cfg.model:
        p = resolve_model_path(str(m))
        if "://" not in p and not Path(p).exists():
            raise ConfigError(f"config key `model`: path does not exist: {m}")
        if cfg.scorer == "rm":
            from fcrm_ray.models import RewardModelError, check_reward_model_dir

            try:
                check_reward_model_dir(p)
            except RewardModelError as e:
                raise ConfigError(f"config key `model`: {e}") from None
        paths.append(p)
    return paths


def subset(rows: list[dict], max_rows: int) -> list[dict]:
    """A stable pseudo-random subset (same rows whatever the file order), original order kept."""
    if not max_rows or len(rows) <= max_rows:
        return rows
    keep = set(sorted(range(len(rows)), key=lambda i: stable_hash(rows[i]["id"]))[:max_rows])
    return [r for i, r in enumerate(rows) if i in keep]


def load_pairs(data: str, split: str, quarantine: Quarantine, max_rows: int = 0) -> tuple[list[dict], dict]:
    """(rows to evaluate, counts). Counts add up: read = quarantined + other_split + capped + evaluated."""
    if not data:
        raise ConfigError("config key `data` is required (--data FILE_OR_DIR)")
    if not Path(data).exists():
        raise ConfigError(f"config key `data`: path does not exist: {data}")
    before = quarantine.total
    rows = read_pairs(data, quarantine=quarantine)
    quarantined = quarantine.total - before
    in_split = [r for r in rows if not split or r["split"] == split]
    kept = subset(in_split, max_rows)
    counts = {"read": len(rows) + quarantined, "quarantined": quarantined, "other_split": len(rows) - len(in_split),
              "capped": len(in_split) - len(kept), "evaluated": len(kept)}
    if not kept:
        splits = sorted({r["split"] for r in rows})
        raise ConfigError(f"config key `split`: no pair rows with split={split!r} in {data} "
                          f"(splits present: {splits}; split='' evaluates every row)")
    return kept, counts


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def score_local(rows: Sequence[Mapping], model_path: str, cfg: PairwiseConfig, quarantine=None) -> tuple[list, list, dict]:
    """(chosen, rejected, scorer stats) with a RewardScorer in this process."""
    from fcrm_ray.scoring import RewardScorer, score_pairs

    scorer = RewardScorer(model_path, batch_size=cfg.batch_size, max_length=cfg.max_length, device=cfg.device,
                          dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code, autocast=cfg.autocast)
    chosen, rejected = score_pairs(scorer, rows, quarantine=quarantine)
    return chosen, rejected, {**dict(scorer.stats), "model_info": scorer.model_info()}


def render_batch(batch: dict, model_path: str, trust_remote_code: bool = False) -> dict:
    """Ray Data task: pair-side rows (tools, conversation, candidate) -> prompt/completion texts.
    A row that cannot be rendered gets `render_error` and empty texts (scored NaN downstream)."""
    from fcrm_ray.toolcall.render import render

    tok = load_tokenizer(model_path, trust_remote_code)
    prompts, completions, errors = [], [], []
    for tools, conv, cand in zip(batch["tools"], batch["conversation"], batch["candidate"]):
        try:
            r = render(tok, tools, conv, cand)
            prompts.append(r.prompt)
            completions.append(r.completion)
            errors.append("")
        except (ValueError, TypeError) as e:  # SchemaError is a ValueError
            prompts.append("")
            completions.append("")
            errors.append(str(e) or type(e).__name__)
    return {"uid": batch["uid"], "group_id": batch["uid"] // 2, "prompt": prompts, "completion": completions,
            "render_error": errors}


def score_ray(rows: Sequence[Mapping], model_path: str, cfg: PairwiseConfig, quarantine=None) -> tuple[list, list, dict]:
    """(chosen, rejected, stats) with Ray Data: render in tasks, score in an actor pool.

    Each pair becomes two rows (uid 2i = chosen, 2i+1 = rejected) with group_id i, so the actor
    scores a pair as one shared-prefix group when both sides land in the same batch."""
    import ray
    import ray.data

    from fcrm_ray.scoring import RewardScoringActor

    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    items = []
    for i, r in enumerate(rows):
        for side, col in ((0, "chosen_output"), (1, "rejected_output")):
            items.append({"uid": 2 * i + side, "tools": r["tools"], "conversation": r["conversation"], "candidate": r[col]})
    ds = ray.data.from_items(items)
    ds = ds.map_batches(render_batch, fn_kwargs={"model_path": model_path, "trust_remote_code": cfg.trust_remote_code},
                        batch_size=cfg.ray.batch_size, batch_format="numpy")
    scorer_kwargs = dict(model_path=model_path, batch_size=cfg.batch_size, max_length=cfg.max_length,
                         device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code,
                         autocast=cfg.autocast)
    ds = ds.map_batches(RewardScoringActor, fn_constructor_kwargs=scorer_kwargs, batch_size=cfg.ray.batch_size,
                        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=cfg.ray.num_actors),
                        num_cpus=cfg.ray.num_cpus_per_actor, num_gpus=cfg.ray.num_gpus_per_actor or None)
    out = ds.select_columns(["uid", "reward", "render_error"]).take_all()
    reward = [math.nan] * len(items)
    bad: dict[int, str] = {}
    for o in out:
        uid = int(o["uid"])
        if o["render_error"]:
            bad[uid // 2] = str(o["render_error"])
        else:
            reward[uid] = float(o["reward"])
    for i, reason in sorted(bad.items()):  # same contract as score_pairs: NaN both sides, quarantined
        reward[2 * i] = reward[2 * i + 1] = math.nan
        if quarantine is not None:
            quarantine.add(dict(rows[i]), reason, source="score_ray")
    return reward[0::2], reward[1::2], {"backend": "ray", "num_actors": cfg.ray.num_actors, "render_errors": len(bad)}


def score_rows(rows: Sequence[Mapping], model_path: str, cfg: PairwiseConfig, quarantine=None) -> tuple[list, list, dict]:
    if cfg.scorer == "vllm_judge":
        return score_judge(rows, model_path, cfg.judge, trust_remote_code=cfg.trust_remote_code)
    if cfg.backend == "ray":
        return score_ray(rows, model_path, cfg, quarantine)
    return score_local(rows, model_path, cfg, quarantine)


# ----------------------------------------------------------------------------------------------
# LLM-as-judge through vLLM (GPU path)
# ----------------------------------------------------------------------------------------------

JUDGE_SYSTEM = (
    "You are an expert judge of function calls. Given the available tools, a conversation and a "
    "candidate function call for the assistant's next turn, decide whether the candidate is exactly "
    "correct: the right function(s), every required argument, correct argument names, types and values "
    "as the user asked, and nothing extra. Answer with a single word: yes or no."
)


def judge_messages(tools: Any, conversation: Any, candidate: str) -> list[dict]:
    """Chat messages asking a judge model for a yes/no verdict on one candidate call."""
    tools = json.loads(tools) if isinstance(tools, str) else tools
    conversation = json.loads(conversation) if isinstance(conversation, str) else conversation
    convo = "\n".join(f"{m.get('role', 'user')}: {m.get('content') or json.dumps(m.get('tool_calls'), ensure_ascii=False)}"
                      for m in conversation)
    user = (f"## Tools\n{json.dumps(tools, ensure_ascii=False, indent=1)}\n\n## Conversation\n{convo}\n\n"
            f"## Candidate function call\n{candidate}\n\nIs the candidate function call correct? Answer yes or no.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_VERDICT_RE = re.compile(r"\b(yes|no|correct|incorrect)\b", re.IGNORECASE)


def parse_verdict(text: str) -> float | None:
    """1.0 for yes/correct, 0.0 for no/incorrect (the first such word after any <think> block), None if absent."""
    text = re.sub(r"<think>.*?</think>", " ", text or "", flags=re.DOTALL)
    m = _VERDICT_RE.search(text)
    if not m:
        return None
    return 1.0 if m.group(1).lower() in ("yes", "correct") else 0.0


def verdict_score(top_logprobs: Mapping[str, float] | None, text: str) -> float:
    """P(yes) / (P(yes) + P(no)) over the first token's top log-probs (token strings are stripped
    and lower-cased, variants summed); else the parsed verdict; 0.5 when the judge said neither."""
    p_yes = p_no = 0.0
    for tok, lp in (top_logprobs or {}).items():
        t = str(tok).strip().lower()
        if t in ("yes", "correct"):
            p_yes += math.exp(lp)
        elif t in ("no", "incorrect"):
            p_no += math.exp(lp)
    if p_yes + p_no > 0:
        return p_yes / (p_yes + p_no)
    v = parse_verdict(text)
    return 0.5 if v is None else v


def score_judge(rows: Sequence[Mapping], model_path: str, jcfg: JudgeConfig,
                trust_remote_code: bool = False) -> tuple[list, list, dict]:
    """(chosen, rejected, stats) from a vLLM judge. GPU only: imports vllm here."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise ConfigError(f"config key `scorer`: vllm_judge needs vLLM on a GPU machine ({e})") from None
    llm = LLM(model=model_path, tensor_parallel_size=jcfg.tensor_parallel_size, max_model_len=jcfg.max_model_len,
              gpu_memory_utilization=jcfg.gpu_memory_utilization, trust_remote_code=trust_remote_code)
    tok = llm.get_tokenizer()
    prompts = []
    for r in rows:
        for col in ("chosen_output", "rejected_output"):
            prompts.append(tok.apply_chat_template(judge_messages(r["tools"], r["conversation"], r[col]),
                                                   tokenize=False, add_generation_prompt=True,
                                                   **dict(jcfg.chat_template_kwargs)))
    params = SamplingParams(temperature=0.0, max_tokens=jcfg.max_tokens, logprobs=jcfg.top_logprobs)
    outs = llm.generate(prompts, params)
    scores = []
    for o in outs:
        c = o.outputs[0]
        first = (c.logprobs or [None])[0] or {}
        top = {getattr(lp, "decoded_token", None) or str(tid): lp.logprob for tid, lp in first.items()}
        scores.append(verdict_score(top, c.text))
    return scores[0::2], scores[1::2], {"backend": "vllm_judge", "prompts": len(prompts)}


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


def write_scores(path: Path, rows: Sequence[Mapping], chosen: Sequence[float], rejected: Sequence[float]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = [{"id": r["id"], "example_id": r.get("example_id", ""), "source": r.get("source", ""),
             "error_type": r.get("error_type", ""), "category": r.get("category", ""), "generator": r.get("generator", ""),
             "chosen_reward": None if c is None or math.isnan(c) else float(c),
             "rejected_reward": None if j is None or math.isnan(j) else float(j),
             "correct": M.pair_outcome(c, j)} for r, c, j in zip(rows, chosen, rejected)]
    schema = pa.schema([("id", pa.string()), ("example_id", pa.string()), ("source", pa.string()),
                        ("error_type", pa.string()), ("category", pa.string()), ("generator", pa.string()),
                        ("chosen_reward", pa.float64()), ("rejected_reward", pa.float64()), ("correct", pa.float64())])
    pq.write_table(pa.Table.from_pylist(recs, schema=schema), path)


def metrics_markdown(m: Mapping) -> str:

    lines = [f"# Pairwise accuracy: {m['model']}", "",
             f"Data: `{m['data']}` (split `{m.get('split') or 'all'}`), scorer `{m.get('scorer', 'rm')}`.", "",
             f"**Accuracy {fmt_acc(m['accuracy'], m['ci95'])}** over {m['n']} pairs "
             f"(ties {m.get('ties', 0)}, unscored {m.get('n_unscored', 0)}; ties and unscored count half).", ""]
    counts = m.get("counts")
    if counts:
        lines += ["Rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    for key, title in (("per_error_type", "Error type"), ("per_category", "Category"), ("per_source", "Source"),
                       ("per_generator", "Generator")):
        groups = m.get(key) or {}
        if not groups:
            continue
        lines += [f"## {title}", "", md_table([title, "n", "accuracy (95% CI)"],
                                              [[g, v["n"], fmt_acc(v["accuracy"], v["ci95"])] for g, v in groups.items()]), ""]
    return "\n".join(lines)


def write_outputs(out: Path, rows: Sequence[Mapping], chosen: Sequence[float], rejected: Sequence[float],
                  m: Mapping, plots: bool = True) -> None:

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(m, indent=2, default=_json_default))
    write_scores(out / "scores.parquet", rows, chosen, rejected)
    (out / "metrics.md").write_text(metrics_markdown(m))
    if plots:
        for key in M.GROUP_KEYS:
            if m.get(key):
                save_group_bars({m["model"]: m[key]}, out / f"accuracy_{key}.png",
                                title=f"{m['model']}: pairwise accuracy {key.replace('_', ' ')}")


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def evaluate_model(rows: Sequence[Mapping], model_path: str, cfg: PairwiseConfig, out: Path | None,
                   quarantine=None, counts: Mapping | None = None, extra: Mapping | None = None) -> tuple[dict, list, list]:
    """Score, compute metrics, and (if `out`) write the artifacts. Returns (metrics, chosen, rejected)."""
    chosen, rejected, stats = score_rows(rows, model_path, cfg, quarantine)
    m = M.pairwise_metrics(rows, chosen, rejected, n_boot=cfg.n_boot, seed=cfg.seed)
    # per model family of the rejected side (`bfcl:<model>` generators of real outputs; `mutation`)
    from fcrm_ray.data.bfcl_results import model_family

    m["per_model_family"] = M.group_breakdown(M.pair_outcomes(chosen, rejected),
                                              [model_family(str(r.get("generator") or "")) for r in rows],
                                              cfg.n_boot, cfg.seed)
    m = {"accuracy": m.pop("accuracy"), "n": m.pop("n"), "ci95": m.pop("ci95"), **m,
         "model": model_name(model_path), "model_path": str(model_path), "data": str(cfg.data), "split": cfg.split,
         "scorer": cfg.scorer, "backend": cfg.backend, "counts": dict(counts or {}), "scorer_stats": stats,
         "config": to_dict(cfg), **dict(extra or {})}
    if out is not None:
        write_outputs(out, rows, chosen, rejected, m, plots=cfg.plots)
    return m, chosen, rejected


def summary_markdown(results: Sequence[Mapping]) -> str:

    names = [r["model"] for r in results]
    lines = ["# Pairwise accuracy, models side by side", "",
             md_table(["model", "n", "accuracy (95% CI)"], [[r["model"], r["n"], fmt_acc(r["accuracy"], r["ci95"])] for r in results]),
             ""]
    groups = sorted({g for r in results for g in r.get("per_error_type", {})})
    if groups:
        body = [[g] + [fmt_acc(r["per_error_type"][g]["accuracy"]) if g in r["per_error_type"] else "–" for r in results]
                for g in groups]
        lines += ["## Per error type", "", md_table(["error type"] + names, body), ""]
    return "\n".join(lines)


def run(cfg: PairwiseConfig) -> list[dict]:
    if not cfg.out:
        raise ConfigError("config key `out` is required (--out DIR)")
    models = check_models(cfg)  # before reading or scoring anything
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with Quarantine(cfg.quarantine or out / "quarantine.jsonl") as q:
        rows, counts = load_pairs(cfg.data, cfg.split, q, cfg.max_rows)
        results = []
        names = [_slug(model_name(p)) for p in models]
        for i, path in enumerate(models):
            name = names[i] if names.count(names[i]) == 1 else f"{names[i]}-{i}"
            target = out if len(models) == 1 else out / name
            before = q.total
            m, _, _ = evaluate_model(rows, path, cfg, target, quarantine=q, counts=counts)
            m["counts"]["unrenderable"] = q.total - before
            (target / "metrics.json").write_text(json.dumps(m, indent=2, default=_json_default))
            results.append(m)
            print(f"[fcrm eval pairwise] {m['model']}: accuracy {m['accuracy']:.4f} "
                  f"(95% CI {m['ci95'][0]:.4f}-{m['ci95'][1]:.4f}) on {m['n']} pairs -> {target}", flush=True)
        print(f"[fcrm eval pairwise] rows: {json.dumps(counts)}; quarantine: {dict(q.counts)}", flush=True)
    if len(results) > 1:
        (out / "summary.json").write_text(json.dumps(
            {"models": [{k: r[k] for k in ("model", "model_path", "accuracy", "n", "ci95", "per_error_type")} for r in results]},
            indent=2, default=_json_default))
        (out / "summary.md").write_text(summary_markdown(results))
        if cfg.plots:

            save_group_bars({r["model"]: r["per_error_type"] for r in results}, out / "accuracy_per_error_type.png",
                            title="pairwise accuracy per error type")
    return results


def build_parser(prog: str):
    p = config_arg_parser(prog, "Pairwise accuracy (chosen scored above rejected) of reward models.")
    p.add_argument("--model", action="append", default=None, help="reward model folder (repeat for several)")
    p.add_argument("--data", help="pair file or folder (Parquet/JSONL; FC-RewardBench or pipeline output)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--split", default=None, help="split to evaluate (default: test; '' = all rows)")
    return p


def flag_overrides(args) -> list[str]:
    """Flags -> dotlist overrides (flags win over the YAML, explicit overrides win over flags)."""
    ov = []
    if args.model:
        ov.append("model=[" + ",".join(json.dumps(m) for m in args.model) + "]")
    for key in ("data", "out", "split"):
        v = getattr(args, key, None)
        if v is not None:
            ov.append(f"{key}={json.dumps(v)}")
    return ov


def main(argv: list[str] | None = None, prog: str = "fcrm eval pairwise") -> int:
    args = build_parser(prog).parse_args(argv)
    cfg = load_config(PairwiseConfig, args.config, flag_overrides(args) + list(args.overrides))
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
