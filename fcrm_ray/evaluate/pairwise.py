"""`fcrm eval pairwise`: FC-RewardBench-style pairwise accuracy of one or more reward models.

    fcrm eval pairwise --model runs/rm-minilm --data data/pairs --out runs/eval/pairwise [--split test]
    fcrm eval pairwise --model rm-a --model rm-b --data pairs.parquet --out DIR backend=ray actors.num_actors=2
    fcrm eval pairwise --model /models/judge-8b --data fc_rewardbench.jsonl --out DIR scorer=vllm_judge

Pairs come from `data.pairs.read_pairs` (FC-RewardBench rows or our generation pipeline's output);
rows that do not fit the pair schema go to `<out>/quarantine.jsonl` with a reason, and the counts
add up: read = evaluated + quarantined + other split (+ capped by `max_rows`). A model folder that
is not a `*ForSequenceClassification` RM with num_labels=1 is rejected before any row is scored.

Scorers (`scorer=`; the backends are in `scorers.py`):
- `rm` (default): `fcrm_ray.scoring.RewardScorer` — chosen and rejected share the prompt, so each
  pair is one shared-prefix group (`scoring.score_pairs`). `backend=local` runs in this process
  (CPU default); `backend=ray` renders the pairs in Ray Data tasks and scores them with an actor
  pool of `scoring.RewardScoringActor` (`map_batches` + `ActorPoolStrategy`), one pool per model.
- `vllm_judge` (`judge.py`; a GPU, or vLLM's CPU build): an LLM-as-judge through vLLM, as the paper compares judges
  with RMs. The judge sees the tools, the conversation and ONE candidate and answers yes/no; the
  score is P(yes) / (P(yes) + P(no)) from the first generated token's log-probs, or the parsed
  verdict (1 / 0, 0.5 if neither) when the top log-probs hold neither word. Chosen and rejected are
  judged independently, so equal verdicts are ties (counted half). Tested on the real engine
  with vLLM's CPU build (tests/test_vllm_engine.py).

Artifacts per model (in `--out`, or `--out/<model name>/` when several models are given):
`metrics.json` (top-level `accuracy`, `n`, `ci95`, `per_error_type`, `per_category`, `per_source`,
`per_generator`, `per_question` (the mean over questions, and the pair accuracy's CI with
questions resampled: real pairs come many to a question), `model`, `data`, counts),
`scores.parquet` (one row per pair), `metrics.md`, and PNG bar charts with bootstrap 95% error bars (`accuracy_per_error_type.png`, `..._per_generator.png`,
...). With several models, `--out/summary.json` and `--out/summary.md` compare them side by side
(the writers are in `report.py`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

from fcrm_ray.config import ConfigError, config_arg_parser, load_config, to_dict
from fcrm_ray.data.bfcl_results import model_family
from fcrm_ray.data.pairs import read_pairs, stable_hash
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate.config import PairwiseConfig
from fcrm_ray.evaluate.report import (json_default, model_name, pairwise_summary_markdown, save_group_bars,
                                      write_pairwise_outputs)
from fcrm_ray.evaluate.scorers import score_rows
from fcrm_ray.models import RewardModelError, check_reward_model_dir
from fcrm_ray.paths import resolve_model_path

# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def check_models(cfg: PairwiseConfig) -> list[str]:
    """Resolved paths of `model.path` and `compare`; every RM is checked to be a SeqCls RM before
    anything is scored."""
    if not cfg.model.path:
        raise ConfigError("config key `model.path` is required (--model PATH, repeatable)")
    paths = []
    for key, m in [("model.path", cfg.model.path), *((f"compare[{i}]", c) for i, c in enumerate(cfg.compare))]:
        p = resolve_model_path(str(m))
        if "://" not in p and not Path(p).exists():
            raise ConfigError(f"config key `{key}`: path does not exist: {m}")
        if cfg.scorer == "rm":
            try:
                check_reward_model_dir(p)
            except RewardModelError as e:
                raise ConfigError(f"config key `{key}`: {e}") from None
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
# The recipe
# ----------------------------------------------------------------------------------------------


def evaluate_model(rows: Sequence[Mapping], model_path: str, cfg: PairwiseConfig, out: Path | None,
                   quarantine=None, counts: Mapping | None = None, extra: Mapping | None = None) -> tuple[dict, list, list]:
    """Score, compute metrics, and (if `out`) write the artifacts. Returns (metrics, chosen, rejected)."""
    chosen, rejected, stats = score_rows(rows, model_path, cfg, quarantine)
    m = M.pairwise_metrics(rows, chosen, rejected, n_boot=cfg.n_boot, seed=cfg.seed)
    # per model family of the rejected side (`bfcl:<model>` generators of real outputs; `mutation`)
    m["per_model_family"] = M.group_breakdown(M.pair_outcomes(chosen, rejected),
                                              [model_family(str(r.get("generator") or "")) for r in rows],
                                              cfg.n_boot, cfg.seed)
    m = {"accuracy": m.pop("accuracy"), "n": m.pop("n"), "ci95": m.pop("ci95"), **m,
         "model": model_name(model_path), "model_path": str(model_path), "data": str(cfg.data), "split": cfg.split,
         "scorer": cfg.scorer, "backend": cfg.backend, "counts": dict(counts or {}), "scorer_stats": stats,
         "config": to_dict(cfg), **dict(extra or {})}
    if out is not None:
        write_pairwise_outputs(out, rows, chosen, rejected, m, plots=cfg.plots)
    return m, chosen, rejected


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
            (target / "metrics.json").write_text(json.dumps(m, indent=2, default=json_default))
            results.append(m)
            print(f"[fcrm eval pairwise] {m['model']}: accuracy {m['accuracy']:.4f} "
                  f"(95% CI {m['ci95'][0]:.4f}-{m['ci95'][1]:.4f}) on {m['n']} pairs -> {target}", flush=True)
        print(f"[fcrm eval pairwise] rows: {json.dumps(counts)}; quarantine: {dict(q.counts)}", flush=True)
    if len(results) > 1:
        (out / "summary.json").write_text(json.dumps(
            {"models": [{k: r[k] for k in ("model", "model_path", "accuracy", "n", "ci95", "per_error_type")} for r in results]},
            indent=2, default=json_default))
        (out / "summary.md").write_text(pairwise_summary_markdown(results))
        if cfg.plots:
            save_group_bars({r["model"]: r["per_error_type"] for r in results}, out / "accuracy_per_error_type.png",
                            title="pairwise accuracy per error type")
    return results


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def build_parser(prog: str):
    p = config_arg_parser(prog, "Pairwise accuracy (chosen scored above rejected) of reward models.", out=True)
    p.add_argument("--model", action="append", default=None, help="reward model folder (repeat for several)")
    p.add_argument("--data", help="pair file or folder (Parquet/JSONL; FC-RewardBench or pipeline output)")
    p.add_argument("--split", default=None, help="split to evaluate (default: test; '' = all rows)")
    return p


def flag_overrides(args) -> list[str]:
    """Flags -> dotlist overrides (flags win over the YAML, explicit overrides win over flags)."""
    ov = []
    if args.model:
        ov.append(f"model.path={json.dumps(args.model[0])}")
        if args.model[1:]:
            ov.append("compare=[" + ",".join(json.dumps(m) for m in args.model[1:]) + "]")
    for key in ("data", "out", "split"):
        v = getattr(args, key, None)
        if v is not None:
            ov.append(f"{key}={json.dumps(v)}")
    return ov


def main(argv: list[str] | None = None, prog: str = "fcrm eval pairwise") -> int:
    args = build_parser(prog).parse_intermixed_args(argv)  # flags may follow key=value overrides
    cfg = load_config(PairwiseConfig, args.config, flag_overrides(args) + list(args.overrides))
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
