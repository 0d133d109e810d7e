"""`fcrm report`: one self-contained HTML page (and a Markdown twin) over any eval/training runs.

    fcrm report runs/eval/pairwise-a runs/eval/pairwise-b runs/eval/bon runs/eval/robust runs/rm-minilm --out runs/report

Each argument is a run folder (or a folder holding several: it is searched a few levels deep):
- pairwise runs (`metrics.json` from `fcrm eval pairwise`): models side by side, per error type /
  source / generator, with a combined bar chart;
- Best-of-N runs (`bon.json`): accuracy vs n for the RM and every baseline, per run;
- robustness runs (`robustness.json`): accuracy and drop per perturbation, models side by side;
- training runs (`eval.json` from `fcrm train`): validation/test accuracy and the learning curve.

`report.html` inlines every image as base64 (one file to mail around); `report.md` links copies of
the images under `img/`. The Markdown-table and chart helpers here are shared by the eval commands,
and a pairwise run's artifacts are written here too, next to `pairwise_sections` that reads them.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fcrm_ray.evaluate import metrics as M

# ----------------------------------------------------------------------------------------------
# Formatting helpers (used by pairwise / bon / robustness too)
# ----------------------------------------------------------------------------------------------


def fmt_acc(acc: float | None, ci: Sequence[float] | None = None) -> str:
    if acc is None or (isinstance(acc, float) and math.isnan(acc)):
        return "–"
    s = f"{acc:.3f}"
    if ci and all(c is not None and not (isinstance(c, float) and math.isnan(c)) for c in ci):
        s += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def md_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def _plt():
    # local: Agg is chosen only when a chart is drawn (importing this module leaves the process's
    # backend alone), and pyplot must be imported after it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_group_bars(series: Mapping[str, Mapping[str, Mapping]], path: Path, title: str = "",
                    ylabel: str = "pairwise accuracy", max_groups: int = 25) -> Path:
    """Grouped bar chart: groups on the x axis, one bar per series (model), bootstrap 95% CI as
    error bars. `series`: {model: {group: {accuracy, ci95, n}}}. Only the `max_groups` largest
    groups are drawn (e.g. dozens of generators); the tables keep all of them."""
    plt = _plt()
    groups: list[str] = []
    for s in series.values():
        for g in s:
            if g not in groups:
                groups.append(g)
    if len(groups) > max_groups:
        size = {g: max(s.get(g, {}).get("n", 0) or 0 for s in series.values()) for g in groups}
        keep = set(sorted(groups, key=lambda g: -size[g])[:max_groups])
        groups = [g for g in groups if g in keep]
        title = f"{title} ({max_groups} largest groups)" if title else f"{max_groups} largest groups"
    k = max(1, len(series))
    width = 0.8 / k
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, k / 2) + 2), 4.5))
    for i, (name, s) in enumerate(series.items()):
        acc = [s[g]["accuracy"] if g in s else np.nan for g in groups]
        lo = [s[g]["accuracy"] - s[g]["ci95"][0] if g in s and s[g].get("ci95") and s[g]["ci95"][0] is not None else 0
              for g in groups]
        hi = [s[g]["ci95"][1] - s[g]["accuracy"] if g in s and s[g].get("ci95") and s[g]["ci95"][1] is not None else 0
              for g in groups]
        ax.bar(x + (i - (k - 1) / 2) * width, acc, width, yerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)],
               capsize=3, label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{g}" for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if k > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_lines(xs: Sequence[float], series: Mapping[str, Sequence[float]], path: Path, title: str = "",
               xlabel: str = "n", ylabel: str = "accuracy", log2x: bool = True,
               bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, ys in series.items():
        ax.plot(xs, ys, "o-", label=name)
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(xs, lo, hi, alpha=0.15)
    if log2x:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([str(x) for x in xs])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Pairwise run artifacts (`fcrm eval pairwise`): metrics.json, scores.parquet, metrics.md, charts
# ----------------------------------------------------------------------------------------------


def json_default(x: Any) -> Any:
    """`json.dumps` fallback for metrics: NaN -> null, arrays -> lists, anything else -> str."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def write_pairwise_scores(path: Path, rows: Sequence[Mapping], chosen: Sequence[float], rejected: Sequence[float]) -> None:
    recs = [{"id": r["id"], "example_id": r.get("example_id", ""), "source": r.get("source", ""),
             "error_type": r.get("error_type", ""), "category": r.get("category", ""), "generator": r.get("generator", ""),
             "chosen_reward": None if c is None or math.isnan(c) else float(c),
             "rejected_reward": None if j is None or math.isnan(j) else float(j),
             "correct": M.pair_outcome(c, j)} for r, c, j in zip(rows, chosen, rejected)]
    schema = pa.schema([("id", pa.string()), ("example_id", pa.string()), ("source", pa.string()),
                        ("error_type", pa.string()), ("category", pa.string()), ("generator", pa.string()),
                        ("chosen_reward", pa.float64()), ("rejected_reward", pa.float64()), ("correct", pa.float64())])
    pq.write_table(pa.Table.from_pylist(recs, schema=schema), path)


def pairwise_markdown(m: Mapping) -> str:
    lines = [f"# Pairwise accuracy: {m['model']}", "",
             f"Data: `{m['data']}` (split `{m.get('split') or 'all'}`), scorer `{m.get('scorer', 'rm')}`.", "",
             f"**Accuracy {fmt_acc(m['accuracy'], m['ci95'])}** over {m['n']} pairs "
             f"(ties {m.get('ties', 0)}, unscored {m.get('n_unscored', 0)}; ties and unscored count half).", ""]
    q = m.get("per_question")
    if q and q.get("questions"):
        lines += [f"Per question: {fmt_acc(q['accuracy'], q['ci95'])} as the mean over {q['questions']} questions "
                  f"(up to {q['max_pairs']} pairs each); the pair accuracy's 95% CI with questions resampled: "
                  f"[{q['ci95_pairs'][0]:.3f}, {q['ci95_pairs'][1]:.3f}].", ""]
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


def write_pairwise_outputs(out: Path, rows: Sequence[Mapping], chosen: Sequence[float], rejected: Sequence[float],
                           m: Mapping, plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(m, indent=2, default=json_default))
    write_pairwise_scores(out / "scores.parquet", rows, chosen, rejected)
    (out / "metrics.md").write_text(pairwise_markdown(m))
    if plots:
        for key in M.GROUP_KEYS:
            if m.get(key):
                save_group_bars({m["model"]: m[key]}, out / f"accuracy_{key}.png",
                                title=f"{m['model']}: pairwise accuracy {key.replace('_', ' ')}")


def pairwise_summary_markdown(results: Sequence[Mapping]) -> str:
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


# ----------------------------------------------------------------------------------------------
# Document model: sections of paragraphs, tables and images, rendered to HTML and Markdown
# ----------------------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    blocks: list[tuple] = field(default_factory=list)  # ("p", text) | ("table", headers, rows) | ("img", path, caption)

    def p(self, text: str) -> "Section":
        self.blocks.append(("p", text))
        return self

    def table(self, headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> "Section":
        self.blocks.append(("table", list(headers), [list(r) for r in rows]))
        return self

    def img(self, path: Path, caption: str = "") -> "Section":
        if Path(path).is_file():
            self.blocks.append(("img", Path(path), caption))
        return self


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:13px;color:#555}code{background:#f3f3f3;padding:1px 4px}"""


def _inline_md(text: str) -> str:
    """The little Markdown our paragraphs use (`code`, **bold**) -> HTML."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def render_html(title: str, sections: Sequence[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if b[0] == "p":
                parts.append(f"<p>{_inline_md(b[1])}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode(b[1].read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, sections: Sequence[Section], out: Path) -> str:
    """Markdown with images copied to `out/img/` (unique names) and linked relatively."""
    img_dir = out / "img"
    lines = [f"# {title}", ""]
    used: set[str] = set()
    for s in sections:
        lines += [f"## {s.title}", ""]
        for b in s.blocks:
            if b[0] == "p":
                lines += [b[1], ""]
            elif b[0] == "table":
                lines += [md_table(b[1], b[2]), ""]
            elif b[0] == "img":
                img_dir.mkdir(parents=True, exist_ok=True)
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{b[1].parent.name}_{b[1].name}")
                while name in used:
                    name = "x" + name
                used.add(name)
                if b[1].resolve() != (img_dir / name).resolve():
                    shutil.copyfile(b[1], img_dir / name)
                lines += [f"![{b[2]}](img/{name})", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Finding and reading runs
# ----------------------------------------------------------------------------------------------

RUN_FILES = {"metrics.json": "pairwise", "bon.json": "bon", "robustness.json": "robustness", "eval.json": "train",
             "pipeline.json": "pipeline"}


def find_runs(paths: Sequence[str | Path], max_depth: int = 3) -> list[tuple[str, Path]]:
    """(kind, run folder) for every run under the given folders, in argument order, each once."""
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()

    def visit(d: Path, depth: int) -> None:
        kinds = [(k, d) for f, k in RUN_FILES.items() if (d / f).is_file()]
        if kinds:
            kind, run = kinds[0]
            if run.resolve() not in seen:
                seen.add(run.resolve())
                found.append((kind, run))
            if kind == "robustness":  # its per-perturbation sub-folders belong to it
                return
        if depth >= max_depth:
            return
        for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name not in ("img", "quarantine")):
            visit(sub, depth + 1)

    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise FileNotFoundError(f"no such run folder: {p}")
        before = len(found)
        visit(p, 0)
        if len(found) == before:
            raise FileNotFoundError(f"{p}: no eval or training run found ({', '.join(RUN_FILES)})")
    return found


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None


def _label(run: Path, m: Mapping, key: str = "model") -> str:
    return str(m.get(key) or run.name)


def pairwise_sections(runs: Sequence[Path], out: Path) -> list[Section]:
    ms = [(run, _load(run / "metrics.json")) for run in runs]
    ms = [(r, m) for r, m in ms if "accuracy" in m and "per_error_type" in m]
    if not ms:
        return []
    names, seen = [], set()
    for run, m in ms:  # the same model on several data sets: tell them apart by the run folder
        n = _label(run, m)
        n = n if n not in seen else f"{n} ({run.name})"
        seen.add(n)
        names.append(n)
    s = Section("Pairwise accuracy (FC-RewardBench style)")
    s.p("Chosen scored above rejected; ties count half; 95% bootstrap intervals in brackets.")
    s.table(["model", "data", "split", "pairs", "accuracy [95% CI]"],
            [[n, Path(str(m.get("data", ""))).name, m.get("split") or "all", m["n"], fmt_acc(m["accuracy"], m.get("ci95"))]
             for n, (_, m) in zip(names, ms)])
    sections = [s]
    for key, title in (("per_error_type", "error type"), ("per_category", "category"), ("per_source", "source"),
                       ("per_generator", "generator")):
        groups: list[str] = []
        for _, m in ms:
            groups += [g for g in m.get(key, {}) if g not in groups]
        if not groups or (key != "per_error_type" and len(groups) < 2):
            continue
        sec = Section(f"Pairwise accuracy per {title}")
        sec.table([title, "pairs"] + names,
                  [[g, max(m.get(key, {}).get(g, {}).get("n", 0) for _, m in ms)]
                   + [fmt_acc(m[key][g]["accuracy"], m[key][g].get("ci95")) if g in m.get(key, {}) else "–" for _, m in ms]
                   for g in groups])
        png = out / f"pairwise_{key}.png"
        save_group_bars({n: m.get(key, {}) for n, (_, m) in zip(names, ms)}, png, title=f"pairwise accuracy per {title}")
        sec.img(png, f"pairwise accuracy per {title} (95% CI)")
        sections.append(sec)
    return sections


def bon_sections(runs: Sequence[Path], out: Path) -> list[Section]:
    sections = []
    curves = {}
    for run in runs:
        b = _load(run / "bon.json")
        name = _label(run, b)
        s = Section(f"Best-of-N: {name} ({run.name})")
        s.p(f"{b.get('pools', '?')} pools from `{Path(str(b.get('candidates', ''))).name}`; "
            "RM pick = highest reward among the first n; weighted vote = the canonical call with the highest "
            "summed exp(reward) (sum) or best reward (max); the verifier judges the pick against the reference. "
            "95% bootstrap CIs over pools."
            + (f" {b['unscorable_candidates']} candidates were unscorable (ranked below every scorable one)."
               if b.get("unscorable_candidates") else ""))
        sels = ["rm", "vote_sum", "vote_max", "first", "random", "majority", "oracle"]
        curve = sorted(((int(k), v) for k, v in b.get("curve", {}).items()))
        rows = [[n, row.get("pools", "")] + [fmt_acc(row[sel]["accuracy"], row[sel].get("ci95")) if sel in row else "–"
                                             for sel in sels] for n, row in curve]
        s.table(["n", "pools", "RM pick", "weighted vote (sum)", "weighted vote (max)", "first sample",
                 "random (expected)", "majority vote", "oracle"], rows)
        worse = [[n] + [f"{row['worse_than_first'][sel]['fraction']:.3f}" if sel in row["worse_than_first"] else "–"
                        for sel in sels[:3]] for n, row in curve if "worse_than_first" in row]
        if worse:
            s.p("Share of pools where the pick is wrong while the first sample is right:")
            s.table(["n", "RM pick", "weighted vote (sum)", "weighted vote (max)"], worse)
        s.img(run / "accuracy_vs_n.png", f"{name}: accuracy vs n")
        sections.append(s)
        if b.get("curve"):
            curves[f"{name} ({run.name})" if name in [k.split(" (")[0] for k in curves] else name] = b["curve"]
    if len(curves) > 1:
        ns = sorted({int(n) for c in curves.values() for n in c})
        s = Section("Best-of-N: models side by side")
        s.table(["n"] + list(curves), [[n] + [fmt_acc(c[str(n)]["rm"]["accuracy"]) if str(n) in c else "–"
                                              for c in curves.values()] for n in ns])
        png = out / "bon_models.png"
        common = [n for n in ns if all(str(n) in c for c in curves.values())]
        if common:
            save_lines(common, {k: [c[str(n)]["rm"]["accuracy"] for n in common] for k, c in curves.items()}, png,
                       title="RM Best-of-N accuracy vs n")
            s.img(png, "RM Best-of-N accuracy vs n")
        sections.append(s)
    return sections


def robustness_sections(runs: Sequence[Path], out: Path) -> list[Section]:
    data = [(run, _load(run / "robustness.json")) for run in runs]
    if not data:
        return []
    names = [_label(run, r) for run, r in data]
    perts: list[str] = []
    for _, r in data:
        perts += [p for p in r.get("perturbations", {}) if p not in perts]
    s = Section("Robustness to input perturbations")
    s.p("Pairwise accuracy after each meaning-preserving perturbation; drop = clean - perturbed on the same pairs.")
    rows = [["clean"] + [fmt_acc(r.get("clean", {}).get("accuracy"), r.get("clean", {}).get("ci95")) for _, r in data]]
    for p in perts:
        cells = []
        for _, r in data:
            v = r.get("perturbations", {}).get(p)
            ok = v is not None and v.get("accuracy") is not None
            cells.append(f"{fmt_acc(v['accuracy'], v.get('ci95'))} (drop {v['drop']:+.3f})" if ok else "–")
        rows.append([p] + cells)
    s.table(["perturbation"] + names, rows)
    series = {}
    for n, (_, r) in zip(names, data):
        series[n] = {"clean": r.get("clean", {}),
                     **{p: v for p, v in r.get("perturbations", {}).items() if v.get("accuracy") is not None}}
    png = out / "robustness_models.png"
    save_group_bars(series, png, title="pairwise accuracy under perturbations")
    s.img(png, "pairwise accuracy under perturbations (95% CI)")
    return [s]


def model_name(path: str) -> str:
    """A short display name: the folder name (with its parent when the name is generic)."""
    p = Path(str(path).rstrip("/"))
    if p.name in ("model", "hf", "final", "out", "output", "checkpoint") or p.name.startswith("checkpoint"):
        return f"{p.parent.name}/{p.name}"
    return p.name or str(path)


def train_sections(runs: Sequence[Path], out: Path) -> list[Section]:
    sections = []
    for run in runs:
        e = _load(run / "eval.json")
        s = Section(f"Training run: {model_name(str(run))}")
        rows = []
        for split in ("validation", "test"):
            v = e.get(split)
            if isinstance(v, Mapping) and "accuracy" in v:
                rows.append([split, v.get("n", ""), fmt_acc(v["accuracy"], v.get("ci95"))])
        if rows:
            s.table(["split", "pairs", "accuracy"], rows)
        per = None  # `fcrm train` writes by_error_type; eval commands per_error_type
        for split in ("test", "validation"):
            v = e.get(split) or {}
            per = per or v.get("per_error_type") or v.get("by_error_type")
        if isinstance(per, Mapping) and per:
            s.table(["error type", "pairs", "accuracy"],
                    [[g, v.get("n", ""), fmt_acc(v.get("accuracy"))] if isinstance(v, Mapping) else [g, "", fmt_acc(v)]
                     for g, v in per.items()])
        s.img(run / "learning_curve.png", f"{model_name(str(run))}: learning curve")
        sections.append(s)
    return sections


def pipeline_sections(runs: Sequence[Path], out: Path) -> list[Section]:
    """`fcrm pipeline` runs: each stage's status and time, the service check, the filter's record
    on the labelled sample corpus."""
    sections = []
    for run in runs:
        p = _load(run / "pipeline.json")
        s = Section(f"Pipeline: {run}")
        s.table(["stage", "status", "seconds"],
                [[e.get("stage"), e.get("status", "running"), e.get("seconds", "")] for e in p.get("stages", [])]
                + [["total", "", p.get("total_seconds", "")]])
        by = {e.get("stage"): e.get("result") or {} for e in p.get("stages", [])}
        check = by.get("serve") or {}
        if check.get("candidates"):
            s.p(f"Reward service ({check.get('url')}), one request, {len(check['candidates'])} candidates of "
                f"{check.get('example_id')} in {check.get('latency_s')} s; correct call ranked first: "
                f"{check.get('correct_ranked_first')}.")
            s.table(["candidate", "reward"], [[c["label"], f"{c['reward']:.3f}"] for c in check["candidates"]])
        labels = (by.get("filter") or {}).get("labels")
        if labels:
            s.p(f"Filter on the labelled sample corpus: kept-set precision {labels['kept_precision']:.3f} "
                f"(share of kept rows whose call is correct) vs base rate {labels['base_rate']:.3f}.")
            s.table(["part", "rows", "correct", "wrong"],
                    [[part, labels[part]["rows"], labels[part]["correct"], labels[part]["wrong"]] for part in ("kept", "dropped")])
        sections.append(s)
    return sections


def build_report(paths: Sequence[str | Path], out: str | Path, title: str = "fcrm-ray evaluation report") -> dict:
    """Write `report.html` + `report.md` into `out`; returns {kind: [run folders]}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(paths)
    by: dict[str, list[Path]] = {}
    for kind, run in runs:
        by.setdefault(kind, []).append(run)
    sections: list[Section] = []
    overview = Section("Runs")
    overview.table(["kind", "folder"], [[k, str(r)] for k, r in runs])
    sections.append(overview)
    sections += pipeline_sections(by.get("pipeline", []), out)
    sections += pairwise_sections(by.get("pairwise", []), out)
    sections += bon_sections(by.get("bon", []), out)
    sections += robustness_sections(by.get("robustness", []), out)
    sections += train_sections(by.get("train", []), out)
    (out / "report.html").write_text(render_html(title, sections), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(title, sections, out), encoding="utf-8")
    return {k: [str(r) for r in v] for k, v in by.items()}


def main(argv: list[str] | None = None, prog: str = "fcrm report") -> int:
    p = argparse.ArgumentParser(prog=prog, description="HTML/Markdown report over eval and training runs.")
    p.add_argument("runs", nargs="+", help="run folders (pairwise / bon / robustness / training), or folders of them")
    p.add_argument("--out", required=True, help="report folder (report.html, report.md, img/)")
    p.add_argument("--title", default="fcrm-ray evaluation report")
    args = p.parse_args(argv)
    found = build_report(args.runs, args.out, title=args.title)
    print(f"[fcrm report] {sum(len(v) for v in found.values())} runs ({', '.join(f'{k}: {len(v)}' for k, v in found.items())})"
          f" -> {Path(args.out) / 'report.html'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
