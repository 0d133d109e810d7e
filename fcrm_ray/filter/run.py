"""`fcrm filter`: reward-guided filtering of a tool-calling SFT corpus with Ray Data.

    fcrm filter --config configs/filter.yaml input.path=corpus/ --out runs/filter-1 [key=value ...]

Phases (each resumable; re-running the same command after a kill continues where it stopped):

1. plan: the input (Parquet/JSONL files, sorted) is cut into deterministic shards of
   `input.shard_rows` rows (file, row range). The plan's fingerprint (files, sizes, shard size,
   scoring model) is kept in `manifest.json`; a different input or model in the same `out`
   is an error rather than a silent mix of two runs.
2. score (Ray Data): pending shards -> `flat_map(extract_shard)` (read rows, `extract.extract_row`
   per row, unusable rows become quarantine records, units rendered with `toolcall.render`) ->
   `map_batches(ScoreUnits, compute=ActorPoolStrategy)` (`scoring.RewardScoringActor`: the model
   lives in an actor pool; `scoring.backend=serve` calls a running
   `fcrm serve` instead: HTTP with `scoring.serve_url`, else a DeploymentHandle of the model
   deployment) -> the driver collects each shard and, once all of its rows are back, writes
   `scored/<shard>.parquet` and `quarantine/<shard>.parquet` atomically (tmp + rename) and only
   then records the shard in the manifest. A kill loses at most the shards in flight; they are
   redone and their files replaced, so there are no duplicates and no gaps. Memory is bounded by
   shard size x shards in flight (Ray Data's streaming backpressure), never by corpus size.
3. policy: one streaming pass over the reward/source columns of the scored shards feeds a
   `policy.QuantileSketch` per source; the policy (`threshold`, `top_fraction`,
   `per_source_top_fraction`) is fitted and every scored shard is split into `kept/<shard>.parquet`
   and `dropped/<shard>.parquet` (cheap, no model; always recomputed, so changing the policy and
   re-running re-splits without re-scoring).
4. report: `stats.json` (rows_in, units, kept, dropped, quarantined by reason and by source; the
   run fails if `units_in != kept + dropped + quarantined`), `reward_hist.png`, `manifest.json`.

Accounting (items, as in `fcrm_ray.data.sources`): a row yields one unit per assistant tool-call
turn, or bad items (an unusable row is one bad item; a malformed turn of a chat row is one);
bad items and units the model cannot score (`unscorable`, e.g. longer than max_length) are
quarantined. So `units_in = units_extracted + quarantined_items = kept + dropped + quarantined`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from fcrm_ray.common.atomic import atomic_write_table, atomic_write_text
from fcrm_ray.common.ray_cluster import ray_init
from fcrm_ray.common.scorer import ScorerConfig
from fcrm_ray.config import ConfigError, config_arg_parser, from_dict, parse_config_args, require_path, to_dict
from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.filter.config import FilterConfig, ScoringConfig
from fcrm_ray.filter.extract import UNIT_COLUMNS, extract_row
from fcrm_ray.filter.policy import QuantileSketch, fit_policy, needs_distribution
from fcrm_ray.models import load_tokenizer
from fcrm_ray.scoring import RewardScoringActor, finite_or_none
from fcrm_ray.serve.client import RewardClient
from fcrm_ray.toolcall.render import render
from fcrm_ray.toolcall.schema import SchemaError

# Every record flowing through the Ray Data pipeline has these columns (one schema for all blocks).
RECORD_COLUMNS = ("kind", "shard", *UNIT_COLUMNS, "prompt", "completion", "reason", "raw", "n_items")
QUARANTINE_COLUMNS = ("shard", "source", "row_id", "unit_id", "reason", "raw")
MANIFEST_VERSION = 1


# --- phase 1: plan ------------------------------------------------------------------------------

def input_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"input.path: no such file or directory: {path}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".parquet", ".jsonl", ".json"))
    if not files:
        raise FileNotFoundError(f"input.path: no .parquet/.jsonl files under {path}")
    return files


def _count_rows(f: Path) -> int:
    if f.suffix == ".parquet":
        return pq.ParquetFile(f).metadata.num_rows
    with open(f, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def plan_shards(path: str, shard_rows: int, limit: int = 0) -> list[dict]:
    """Deterministic shards: (file, [start, stop)) in file order, `shard_rows` rows each."""
    shards, total = [], 0
    for fi, f in enumerate(input_files(path)):
        n = _count_rows(f)
        if limit:
            n = min(n, limit - total)
        for start in range(0, n, shard_rows):
            shards.append({"shard": f"{fi:04d}-{start:09d}", "file": str(f), "start": start,
                           "stop": min(n, start + shard_rows)})
        total += n
        if limit and total >= limit:
            break
    return shards


def read_shard(shard: dict) -> Iterator[tuple[int, Any]]:
    """(row index in file, row) for the shard's rows; a JSONL line that is not JSON comes back as
    the raw string (quarantined as bad_json). Reads batch by batch, never the whole file."""
    f, start, stop = Path(shard["file"]), shard["start"], shard["stop"]
    if f.suffix == ".parquet":
        pf = pq.ParquetFile(f)
        offset = 0
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if offset + n > start and offset < stop:
                rows = pf.read_row_group(rg).to_pylist()
                for i, r in enumerate(rows, start=offset):
                    if start <= i < stop:
                        yield i, r
            offset += n
            if offset >= stop:
                break
        return
    i = 0
    with open(f, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            if start <= i < stop:
                text = line.decode("utf-8", errors="replace").strip()
                try:
                    yield i, json.loads(text)
                except json.JSONDecodeError:
                    yield i, text
            i += 1
            if i >= stop:
                break


def _record(kind: str, shard: str, **kw) -> dict:
    rec = {c: "" for c in RECORD_COLUMNS}
    rec.update(kind=kind, shard=shard, turn=-1, n_items=0)
    rec.update(kw)
    return rec


def extract_shard(shard: dict, fmt: str = "auto", default_source: str = "", render_with: str = "") -> list[dict]:
    """All records of one shard: units, quarantined items, and a final `end` record whose
    `n_items` tells the driver how many records to wait for. With `render_with` (a model path)
    units are also rendered to the model's (prompt, completion) here, in the parallel extract
    tasks, so the scoring actors only tokenize and run the model."""
    fname = Path(shard["file"]).name
    tok = load_tokenizer(render_with) if render_with else None
    out = []
    for i, row in read_shard(shard):
        rid = f"{fname}:{i}"
        if isinstance(row, str):
            units, bad = [], [(row, "malformed row: line is not valid JSON")]
        else:
            units, bad = extract_row(row, fmt, default_source, row_id=rid, index=i)
        for u in units:
            if tok is not None:
                try:
                    r = render(tok, u["tools"], u["conversation"], u["candidate"])
                    u["prompt"], u["completion"] = r.prompt, r.completion
                except (SchemaError, ValueError, TypeError):
                    pass  # left empty: the scorer returns NaN and the unit is quarantined as unscorable
            out.append(_record("unit", shard["shard"], **u))
        src = (row.get("source") if isinstance(row, dict) else None) or default_source or fname
        out.extend(_record("quarantine", shard["shard"], source=str(src), row_id=rid, reason=reason,
                           raw=json.dumps(raw, ensure_ascii=False, default=str)) for raw, reason in bad)
    out.append(_record("end", shard["shard"], n_items=len(out)))
    return out


def fingerprint(cfg: FilterConfig, shards: list[dict]) -> str:
    files = sorted({s["file"] for s in shards})
    stats = [(f, os.path.getsize(f)) for f in files]
    s = cfg.scoring
    model = cfg.model.path if s.backend == "actor" else f"serve:{s.serve_url or s.serve_app}/{s.serve_model}"
    return stable_hash(stats, [(x["shard"], x["start"], x["stop"]) for x in shards], cfg.input.format,
                       cfg.input.source, model, cfg.model.max_length, n=24)


# --- phase 2: score -----------------------------------------------------------------------------

class UnitScorer:
    """scoring.backend=serve: units (tools, conversation, candidate) -> rewards (None = could not
    be scored) from a running `fcrm serve`: over HTTP (`serve_url`, `fcrm_ray.serve.client`) or,
    inside the same Ray cluster, through a DeploymentHandle of the model deployment. The service
    renders and batches itself."""

    def __init__(self, scoring: dict | ScoringConfig):
        self.cfg = scoring if isinstance(scoring, ScoringConfig) else from_dict(ScoringConfig, scoring)
        c = self.cfg
        self._client = self._handle = None
        if c.serve_url:
            self._client = RewardClient(c.serve_url, token=os.environ.get(c.serve_token_env) or None)
        else:
            # local: only this path uses Ray Serve, and every filter worker imports this module
            from ray import serve

            name = c.serve_model or "fcrm-rm"
            self._handle = serve.get_deployment_handle(f"RewardModel_{name}", app_name=c.serve_app)

    def score(self, tools: list[str], conversations: list[str], candidates: list[str]) -> list[float | None]:
        if not candidates:
            return []
        if self._client is not None:
            return self._score_http(tools, conversations, candidates)
        resp = [self._handle.score_group.remote(json.loads(t), json.loads(m), [c])
                for t, m, c in zip(tools, conversations, candidates)]
        return [finite_or_none(r.result()[0]) for r in resp]

    def _score_http(self, tools, conversations, candidates) -> list[float | None]:
        out: list[float | None] = []
        step = 64  # the service's default limits.max_items_per_request
        for i in range(0, len(candidates), step):
            items = [{"tools": json.loads(t), "messages": json.loads(m), "candidates": [c]}
                     for t, m, c in zip(tools[i:i + step], conversations[i:i + step], candidates[i:i + step])]
            res = self._client.rewards_batch(items, model=self.cfg.serve_model or None)
            # the service gives unscorable candidates a floor reward and flags them: here they stay
            # unscored (None), so the filter quarantines them as before
            out.extend(None if (r.get("unscorable") or [False])[0] or r.get("rewards") is None
                       else finite_or_none(r["rewards"][0]) for r in res["results"])
        return out



class ScoreUnits:
    """map_batches callable (one per actor of the pool): adds `reward` (NaN where unscored) to
    unit records; quarantine/end records pass through.

    actor backend: `fcrm_ray.scoring.RewardScoringActor` (the shared scorer) over the rendered
    prompt/completion columns; serve backend: `UnitScorer`."""

    def __init__(self, model: dict, scoring: dict):
        c = from_dict(ScoringConfig, scoring)
        self.actor = self.remote = None
        if c.backend == "actor":
            m = from_dict(ScorerConfig, model)
            self.actor = RewardScoringActor(m.path, **m.scorer_kwargs())
        else:
            self.remote = UnitScorer(c)

    def __call__(self, batch):
        # Arrow in, Arrow out: only kind/prompt/completion (or the unit columns for serve) are read
        # into Python; the wide JSON columns pass through without conversion.
        kinds = batch.column("kind").to_pylist()
        idx = [i for i, k in enumerate(kinds) if k == "unit"]
        rewards: list[float | None] = [None] * len(kinds)
        if idx:
            take = pa.array(idx, pa.int64())
            col = lambda name: batch.column(name).take(take).to_pylist()  # noqa: E731
            if self.actor is not None:
                got = self.actor({"prompt": col("prompt"), "completion": col("completion")})["reward"]
            else:
                got = self.remote.score(col("tools"), col("conversation"), col("candidate"))
            for i, r in zip(idx, got):
                rewards[i] = finite_or_none(r)
        # prompt/completion are not needed downstream: do not ship them to the driver
        batch = batch.drop_columns([c for c in ("prompt", "completion") if c in batch.column_names])
        return batch.append_column("reward", pa.array(rewards, pa.float64()))


# --- output: atomic files and the manifest --------------------------------------------------------

def _write_parquet_atomic(rows: list[dict], columns: tuple, path: Path, reward: bool = False) -> None:
    fields = [(c, pa.int64() if c == "turn" else pa.string()) for c in columns]
    if reward:
        fields.append(("reward", pa.float64()))
    schema = pa.schema(fields)
    atomic_write_table(path, pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema))


def _write_json_atomic(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def load_manifest(out: Path, fp: str, n_shards: int) -> dict:
    path = out / "manifest.json"
    if path.is_file():
        m = json.loads(path.read_text())
        if m.get("fingerprint") != fp:
            raise ConfigError(f"config key `out`: {out} holds a run over a different input or model "
                              f"(fingerprint {m.get('fingerprint')} != {fp}); use a new `out`")
        return m
    return {"version": MANIFEST_VERSION, "fingerprint": fp, "n_shards": n_shards, "scored": {}}


def _finish_shard(out: Path, shard: str, records: list[dict], manifest: dict) -> None:
    units = [r for r in records if r["kind"] == "unit"]
    scored = [r for r in units if r["reward"] is not None]
    quarantined = [r for r in records if r["kind"] == "quarantine"]
    unscorable = [dict(r, reason="unscorable: the model returned no score (e.g. candidate longer than max_length)",
                       raw=json.dumps({c: r[c] for c in UNIT_COLUMNS}, ensure_ascii=False))
                  for r in units if r["reward"] is None]
    _write_parquet_atomic(scored, UNIT_COLUMNS, out / "scored" / f"{shard}.parquet", reward=True)
    _write_parquet_atomic(quarantined + unscorable, QUARANTINE_COLUMNS, out / "quarantine" / f"{shard}.parquet")
    manifest["scored"][shard] = {
        "units": len(units), "scored": len(scored), "quarantined_items": len(quarantined),
        "unscorable": len(unscorable),
        "reasons": dict(Counter(r["reason"].split(":")[0] for r in quarantined + unscorable)),
    }
    _write_json_atomic(manifest, out / "manifest.json")


def run_scoring(cfg: FilterConfig, shards: list[dict], out: Path, manifest: dict, progress=None) -> None:
    """Phase 2 over the shards not yet in the manifest."""
    pending = [s for s in shards if s["shard"] not in manifest["scored"]]
    if not pending:
        return
    sc = cfg.scoring
    ds = ray.data.from_items(pending, override_num_blocks=len(pending))
    ds = ds.flat_map(extract_shard, fn_kwargs={"fmt": cfg.input.format, "default_source": cfg.input.source,
                                               "render_with": "" if sc.backend == "serve" else cfg.model.path})
    remote = sc.backend == "serve"
    pool = cfg.actors
    ds = ds.map_batches(
        ScoreUnits, fn_constructor_kwargs={"model": to_dict(cfg.model), "scoring": to_dict(sc)},
        batch_size=pool.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=sc.serve_concurrency if remote else pool.num_actors),
        # a crashed scoring actor is restarted and its batch resubmitted (Ray Data's defaults:
        # max_restarts=-1, max_task_retries=-1); rows are keyed by unit id and collected per shard,
        # so a retried batch neither duplicates nor loses a unit
        num_cpus=0.1 if remote else pool.num_cpus_per_actor, num_gpus=0 if remote else pool.num_gpus_per_actor)
    buffers: dict[str, list[dict]] = defaultdict(list)
    expected: dict[str, int] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for rec in batch.to_pylist():
            shard = rec["shard"]
            if rec["kind"] == "end":
                expected[shard] = int(rec["n_items"])
            else:
                buffers[shard].append(rec)
            if shard in expected and len(buffers[shard]) == expected[shard]:
                _finish_shard(out, shard, buffers.pop(shard), manifest)
                del expected[shard]
                if progress:
                    progress(len(manifest["scored"]), len(shards))
    missing = [s["shard"] for s in pending if s["shard"] not in manifest["scored"]]
    if missing:
        raise RuntimeError(f"scoring finished with {len(missing)} incomplete shards: {missing[:3]}")


# --- phase 3 + 4: policy and report ----------------------------------------------------------------

def apply_policy(cfg: FilterConfig, shards: list[dict], out: Path, manifest: dict) -> dict:
    pol = cfg.policy
    sketches: dict[str, QuantileSketch] = {}
    if needs_distribution(pol.kind) or cfg.output.histogram:
        sketches["*"] = QuantileSketch(pol.sketch_size, seed=0)
        for s in shards:  # first streaming pass: two columns of one shard at a time
            t = pq.read_table(out / "scored" / f"{s['shard']}.parquet", columns=["source", "reward"])
            for src, r in zip(t.column("source").to_pylist(), t.column("reward").to_pylist()):
                sketches["*"].add(r)
                sketches.setdefault(src, QuantileSketch(pol.sketch_size, seed=len(sketches))).add(r)
    policy = fit_policy(pol.kind, pol.threshold, pol.fraction, sketches)
    kept_n, dropped_n = Counter(), Counter()
    for s in shards:
        rows = pq.read_table(out / "scored" / f"{s['shard']}.parquet").to_pylist()
        keep = [policy.keep(r["reward"], r["source"]) for r in rows]
        _write_parquet_atomic([r for r, k in zip(rows, keep) if k], UNIT_COLUMNS,
                              out / "kept" / f"{s['shard']}.parquet", reward=True)
        _write_parquet_atomic([r for r, k in zip(rows, keep) if not k], UNIT_COLUMNS,
                              out / "dropped" / f"{s['shard']}.parquet", reward=True)
        for r, k in zip(rows, keep):
            (kept_n if k else dropped_n)[r["source"]] += 1
    if cfg.output.histogram and sketches.get("*") and sketches["*"].count:
        _histogram(sketches["*"], policy, out / "reward_hist.png")
    return {"policy": policy.describe(), "kept_by_source": dict(kept_n), "dropped_by_source": dict(dropped_n)}


def _histogram(sketch: QuantileSketch, policy, path: Path) -> None:
    # local: Agg is chosen only when a chart is drawn (importing this module leaves the process's
    # backend alone), and pyplot must be imported after it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vals = sketch._values[:min(sketch.count, sketch.capacity)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(vals, bins=50, color="#4477aa")
    cut = policy.threshold if policy.kind == "threshold" else policy.thresholds.get("*")
    if cut is not None and math.isfinite(cut):
        ax.axvline(cut, color="#cc3311", linestyle="--", label=f"keep >= {cut:.3f}")
        ax.legend()
    ax.set_xlabel("reward")
    ax.set_ylabel("units")
    ax.set_title(f"reward distribution ({sketch.count} units{'' if sketch.exact else ', reservoir sample'})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_stats(shards: list[dict], manifest: dict, split: dict) -> dict:
    per = [manifest["scored"][s["shard"]] for s in shards]
    units = sum(p["units"] for p in per)
    q_items = sum(p["quarantined_items"] for p in per)
    unscorable = sum(p["unscorable"] for p in per)
    kept = sum(split["kept_by_source"].values())
    dropped = sum(split["dropped_by_source"].values())
    reasons: Counter = Counter()
    for p in per:
        reasons.update(p["reasons"])
    stats = {
        "rows_in": sum(s["stop"] - s["start"] for s in shards), "units_extracted": units,
        "quarantined_items": q_items, "units_in": units + q_items, "kept": kept, "dropped": dropped,
        "quarantined": q_items + unscorable, "unscorable_units": unscorable,
        "quarantine_reasons": dict(reasons), **split, "shards": len(shards),
    }
    if stats["units_in"] != kept + dropped + stats["quarantined"]:
        raise RuntimeError(f"accounting mismatch: units_in={stats['units_in']} != kept {kept} + dropped {dropped} "
                           f"+ quarantined {stats['quarantined']}")
    return stats


def run(cfg: FilterConfig, progress=None) -> dict:
    """The whole job (Ray must be initialised by the caller or is started locally)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(cfg.input.path, cfg.input.shard_rows, cfg.input.limit)
    manifest = load_manifest(out, fingerprint(cfg, shards), len(shards))
    ray_init(cfg.ray, dashboard=None)
    t0 = time.time()
    run_scoring(cfg, shards, out, manifest, progress)
    t_score = time.time() - t0
    split = apply_policy(cfg, shards, out, manifest)
    stats = build_stats(shards, manifest, split)
    stats["score_seconds"] = round(t_score, 3)
    stats["total_seconds"] = round(time.time() - t0, 3)
    manifest["complete"] = True
    manifest["config"] = to_dict(cfg)
    _write_json_atomic(manifest, out / "manifest.json")
    _write_json_atomic(stats, out / "stats.json")
    return stats


def main(argv: list[str] | None = None, prog: str = "fcrm filter") -> int:
    parser = config_arg_parser(prog, "Score every tool-call turn of an SFT corpus and keep the best", out=True)
    cfg, _ = parse_config_args(FilterConfig, argv, prog, parser=parser)
    if cfg.scoring.backend == "actor":
        if not cfg.model.path.startswith("pkg:"):
            require_path(cfg.model.path, "model.path", "dir")
    if not Path(cfg.input.path).exists():
        raise ConfigError(f"config key `input.path`: path does not exist: {cfg.input.path}")
    stats = run(cfg, progress=lambda done, total: print(f"scored shards {done}/{total}", flush=True))
    print(json.dumps({k: stats[k] for k in ("rows_in", "units_in", "kept", "dropped", "quarantined")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
