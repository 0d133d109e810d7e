"""`fcrm eval robustness`: pairwise accuracy under meaning-preserving input perturbations.

    fcrm eval robustness --model runs/rm-minilm --data data/pairs --out runs/eval/robustness
    fcrm eval robustness --model rm-a --model rm-b --data pairs.parquet --out DIR perturbations=[obfuscate,distractors]

The pairwise benchmark (`evaluate.pairwise`: same reader, quarantine, scorers and backends) is run
on the clean pairs and again after each perturbation of `evaluate.perturb` (obfuscated names,
shuffled tool order, distractor tools from other examples, reordered JSON keys). A perturbation
never changes which side is correct, so a robust RM keeps its accuracy; the report gives, per
perturbation, the accuracy, the drop vs clean on the same pairs (clean - perturbed, with a paired
bootstrap 95% interval) and the accuracy per error type. A row a perturbation cannot be applied
to is left out of that perturbation only (counted in `skipped`), and its drop is computed on the
rows that remain.

Artifacts (in `--out`, or `--out/<model>/` per model when several are given): `robustness.json`
(`model`, `clean`, `perturbations: {name: {accuracy, ci95, n, drop, drop_ci95, skipped,
per_error_type}}`), `robustness.md`, `robustness.png` (accuracy per perturbation with 95% CIs),
`scores.parquet` (per pair and perturbation: rewards and outcome).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Mapping, Sequence

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate import pairwise as PW
from fcrm_ray.evaluate.config import RobustnessConfig
from fcrm_ray.evaluate.perturb import perturb_rows
from fcrm_ray.evaluate.report import fmt_acc, json_default, md_table, model_name, save_group_bars
from fcrm_ray.evaluate.scorers import score_rows
from fcrm_ray.toolcall.schema import SchemaError


def perturb_safely(name: str, rows: Sequence[Mapping], cfg: RobustnessConfig) -> tuple[list[dict], list[int]]:
    """(perturbed rows, indices of the input rows kept). Per-row perturbations that fail on a row
    skip that row; `distractors` needs the whole set (it borrows tools across rows)."""
    if name == "distractors":
        return perturb_rows(name, rows, seed=cfg.perturb_seed, distractors=cfg.distractors), list(range(len(rows)))
    out, kept = [], []
    for i, r in enumerate(rows):
        try:
            out.append(perturb_rows(name, [r], seed=cfg.perturb_seed)[0])
            kept.append(i)
        except (SchemaError, ValueError, TypeError, KeyError):
            continue
    return out, kept


def robustness_for_model(rows: Sequence[Mapping], model_path: str, cfg: RobustnessConfig, quarantine) -> tuple[dict, list[dict]]:
    """(robustness.json body, per-pair score records) for one model."""
    clean_m, c_chosen, c_rejected = PW.evaluate_model(rows, model_path, cfg, None, quarantine=quarantine)
    clean_o = M.pair_outcomes(c_chosen, c_rejected)
    records = [_record(r, "clean", c, j) for r, c, j in zip(rows, c_chosen, c_rejected)]
    result = {"model": clean_m["model"], "model_path": str(model_path), "data": str(cfg.data), "split": cfg.split,
              "scorer": cfg.scorer, "clean": {**{k: clean_m[k] for k in ("accuracy", "n", "ci95", "ties", "n_unscored",
                                                                         "per_error_type")},
                                              "truncated_sequences": int(clean_m["scorer_stats"].get("truncated", 0))},
              "perturbations": {}}
    for name in cfg.perturbations:
        prow, kept = perturb_safely(name, rows, cfg)
        if not prow:
            result["perturbations"][name] = {"accuracy": None, "n": 0, "skipped": len(rows)}
            continue
        chosen, rejected, stats = score_rows(prow, model_path, cfg, quarantine)
        p_o = M.pair_outcomes(chosen, rejected)
        base = [clean_o[i] for i in kept]
        summary = M.summarize(p_o, n_boot=cfg.n_boot, seed=cfg.seed)
        diffs = [b - p for b, p in zip(base, p_o)]
        result["perturbations"][name] = {
            **summary, "clean_accuracy_same_rows": sum(base) / len(base),
            "drop": sum(diffs) / len(diffs), "drop_ci95": list(M.bootstrap_ci(diffs, n_boot=cfg.n_boot, seed=cfg.seed)),
            "skipped": len(rows) - len(kept),
            # sequences whose prompt (catalog side) was cut to max_length: distractors add to it
            "truncated_sequences": int(stats.get("truncated", 0)),
            "per_error_type": M.group_breakdown(p_o, [prow[k].get("error_type") or "unknown" for k in range(len(prow))],
                                                n_boot=cfg.n_boot, seed=cfg.seed)}
        records += [_record(r, name, c, j) for r, c, j in zip(prow, chosen, rejected)]
        print(f"[fcrm eval robustness] {result['model']} {name}: accuracy {summary['accuracy']:.4f} "
              f"(drop {result['perturbations'][name]['drop']:+.4f}) on {summary['n']} pairs", flush=True)
    return result, records


def _record(row: Mapping, perturbation: str, c: float, j: float) -> dict:
    return {"id": row["id"], "perturbation": perturbation, "error_type": row.get("error_type", ""),
            "category": row.get("category", ""), "generator": row.get("generator", ""),
            "chosen_reward": None if math.isnan(c) else float(c), "rejected_reward": None if math.isnan(j) else float(j),
            "correct": M.pair_outcome(c, j)}


def robustness_markdown(r: Mapping) -> str:

    c = r["clean"]
    rows = [["clean", c["n"], fmt_acc(c["accuracy"], c["ci95"]), "", "", c.get("truncated_sequences", "")]]
    for name, p in r["perturbations"].items():
        if p.get("accuracy") is None:
            rows.append([name, 0, "–", "–", p.get("skipped", ""), ""])
            continue
        rows.append([name, p["n"], fmt_acc(p["accuracy"], p["ci95"]),
                     f"{p['drop']:+.3f} [{p['drop_ci95'][0]:+.3f}, {p['drop_ci95'][1]:+.3f}]", p["skipped"],
                     p.get("truncated_sequences", "")])
    lines = [f"# Robustness: {r['model']}", "", f"Data: `{r['data']}` (split `{r.get('split') or 'all'}`).", "",
             md_table(["perturbation", "pairs", "accuracy [95% CI]", "drop vs clean [95% CI]", "skipped",
                       "truncated sequences"], rows), ""]
    groups = list(c.get("per_error_type", {}))
    if groups:
        names = list(r["perturbations"])
        lines += ["## Accuracy per error type", "",
                  md_table(["error type", "clean"] + names,
                           [[g, fmt_acc(c["per_error_type"][g]["accuracy"])]
                            + [fmt_acc(r["perturbations"][n].get("per_error_type", {}).get(g, {}).get("accuracy")) for n in names]
                            for g in groups]), ""]
    return "\n".join(lines)


def write_outputs(out: Path, result: Mapping, records: Sequence[Mapping], plots: bool = True) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(result, indent=2, default=json_default))
    (out / "robustness.md").write_text(robustness_markdown(result))
    pq.write_table(pa.Table.from_pylist(list(records)), out / "scores.parquet")
    if plots:
        bars = {"clean": result["clean"], **{k: v for k, v in result["perturbations"].items() if v.get("accuracy") is not None}}
        save_group_bars({result["model"]: bars}, out / "robustness.png",
                        title=f"{result['model']}: pairwise accuracy under perturbations")


def run(cfg: RobustnessConfig) -> list[dict]:
    if not cfg.out:
        raise ConfigError("config key `out` is required (--out DIR)")
    models = PW.check_models(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with Quarantine(cfg.quarantine or out / "quarantine.jsonl") as q:
        rows, counts = PW.load_pairs(cfg.data, cfg.split, q, cfg.max_rows)
        names = [PW._slug(model_name(p)) for p in models]
        for i, path in enumerate(models):
            name = names[i] if names.count(names[i]) == 1 else f"{names[i]}-{i}"
            target = out if len(models) == 1 else out / name
            result, records = robustness_for_model(rows, path, cfg, q)
            result["counts"] = counts
            write_outputs(target, result, records, plots=cfg.plots)
            results.append(result)
    return results


def main(argv: list[str] | None = None, prog: str = "fcrm eval robustness") -> int:
    parser = PW.build_parser(prog)
    parser.description = "Pairwise accuracy under meaning-preserving input perturbations."
    args = parser.parse_intermixed_args(argv)
    cfg = load_config(RobustnessConfig, args.config, PW.flag_overrides(args) + list(args.overrides))
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
