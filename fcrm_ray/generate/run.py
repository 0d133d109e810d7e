"""`fcrm generate`: synthesise preference pairs with a streaming Ray Data pipeline.

    fcrm generate --config configs/generate/cpu.yaml [key=value ...]

Phases:
1. *Plan* (driver, streaming): read the sources (`data.sources`), quarantine rows whose tools or
   reference do not parse, decide each example's split (`data.splits`, before any generation so
   no example leaks across splits), obfuscate a configured fraction, and write the examples as
   deterministic input shards of `output.shard_size` (`_work/inputs/*.pq`). `_work/plan.json` is
   written last; a plan is reused only if the config fingerprint matches.
2. *Generate* (Ray Data): one branch per generator, `pending shards -> load -> backend ->
   judge (parse + verify + emit pairs) -> spill`, the branches unioned. Workers spill judged pairs
   to `_work/parts/shard-N/` (atomic, named by batch content) and return small tallies; the
   driver counts work units per shard and, when a shard is complete, *flushes* it: dedup + caps
   over all its generators, `pairs/shard-N.parquet` written via tmp + rename, then
   `_work/done/shard-N.json` (its stats).
3. *Stats*: summed over all done shards (`stats.json` + a rich table).

Resume: a manifest of finished input shards (`_work/done/`), not Ray Data's checkpointing. Ray
2.60's `DataContext.checkpoint_config` filters *input* rows by an id column that must survive to
the write; here one example fans out into 0..N pairs from several generators and is deduped
across them, so an example with no pair would never be checkpointed, ids are not unique per
row, and per-shard stats (needed so a resumed run's counts still add up) have no place to live.
On restart, shards with a done file are skipped, half-done ones are recomputed (their spilled
parts dropped; outputs are deterministic: seeded per example, deduped in a fixed order), so the
final pair set has no duplicate and no missing row.

Faults: generator errors on a batch are retried and then recorded per row (`backends`); a
killed actor is restarted and its batch resubmitted (Ray Data's defaults, `backends`).
On a multi-node cluster `out` must be on storage every node sees (e.g. /mnt/cluster_storage).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data import DataContext
from rich.console import Console
from rich.table import Table

from fcrm_ray.common.atomic import atomic_write_table, atomic_write_text
from fcrm_ray.common.ray_cluster import ray_init
from fcrm_ray.config import ConfigError, config_arg_parser, parse_config_args, to_dict
from fcrm_ray.data.sources import read_bfcl, read_examples
from fcrm_ray.data.pairs import PAIR_COLUMNS, pair_arrow_schema, stable_hash
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.data.splits import assign_split
from fcrm_ray.generate.backends import make_backend
from fcrm_ray.generate.config import GenerateConfig
from fcrm_ray.generate.stages import dedup_stage, judge_stage, obfuscate_stage, work_row
from fcrm_ray.paths import BFCL_SINGLE_TURN
from fcrm_ray.toolcall.schema import Example

log = logging.getLogger(__name__)

# Generator keys that change throughput, not output: a resumed run may change them.
_RESOURCE_KEYS = ("batch_size", "min_actors", "max_actors", "compute", "num_cpus", "num_gpus", "retries",
                  "device", "dtype")


# --- run layout ------------------------------------------------------------------------------

class RunLayout:
    """Where everything of one run lives under `out`. Only `pairs/` holds Parquet, so
    `read_pairs(out)` reads exactly the pair set."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.pairs = self.root / "pairs"
        self.quarantine = self.root / "quarantine" / "quarantine.jsonl"
        self.stats = self.root / "stats.json"
        self.work = self.root / "_work"
        self.inputs = self.work / "inputs"
        self.parts = self.work / "parts"
        self.done = self.work / "done"
        self.plan = self.work / "plan.json"

    def shard_name(self, shard: int) -> str:
        return f"shard-{shard:05d}"

    def input_file(self, shard: int) -> Path:
        # Parquet under a `.pq` suffix: pair readers glob the output dir for `*.parquet`.
        return self.inputs / f"{self.shard_name(shard)}.pq"

    def pairs_file(self, shard: int) -> Path:
        return self.pairs / f"{self.shard_name(shard)}.parquet"

    def parts_dir(self, shard: int) -> Path:
        return self.parts / self.shard_name(shard)

    def done_file(self, shard: int) -> Path:
        return self.done / f"{self.shard_name(shard)}.json"

    def wipe(self) -> None:
        for p in (self.pairs, self.quarantine.parent, self.work):
            shutil.rmtree(p, ignore_errors=True)
        self.stats.unlink(missing_ok=True)


def fingerprint(cfg: GenerateConfig) -> str:
    """Hash of everything that decides the output rows (not throughput knobs)."""
    d = to_dict(cfg)
    gens = [{k: v for k, v in g.items() if k not in _RESOURCE_KEYS} for g in d["generators"] if g["enabled"]]
    for g in gens:
        g.get("vllm", {}).pop("replicas", None)
    return stable_hash(d["sources"], d["splits"], d["obfuscation"], gens, d["chosen"], d["dedup"],
                       d["output"]["shard_size"], n=20)


# --- phase 1: plan ---------------------------------------------------------------------------

def iter_source_examples(cfg: GenerateConfig, quarantine: Quarantine) -> Iterator[tuple[str, Example]]:
    """(source name, example) over all configured sources, in config order; bad rows -> quarantine."""
    for s in cfg.sources:
        if s.kind == "bfcl":
            it = read_bfcl(categories=tuple(s.categories) or BFCL_SINGLE_TURN, data_dir=s.data_dir or None,
                               quarantine=quarantine)
        else:
            it = read_examples(s.path, fmt=s.format, quarantine=quarantine)
        for i, ex in enumerate(it):
            if s.limit and i >= s.limit:
                break
            if s.name:
                ex.source = s.name
            yield ex.source or s.kind, ex


def split_of(example: Example, cfg: GenerateConfig) -> str | None:
    """The example's split: `data.splits.assign_split` with `cfg.splits`, the same function and
    config section as `fcrm bench build`, so both stages put every example in the same split."""
    return assign_split(example.id, example.category, cfg.splits)


def plan_inputs(cfg: GenerateConfig, layout: RunLayout) -> dict:
    """Phase 1: stream the sources into input shards; returns the plan (also `_work/plan.json`)."""
    layout.inputs.mkdir(parents=True, exist_ok=True)
    layout.quarantine.unlink(missing_ok=True)  # a replanned run rewrites it from scratch
    shards, buf = [], []
    by_source, by_split = Counter(), Counter()
    seen_ids: set[str] = set()
    t0 = time.time()
    q = Quarantine(layout.quarantine)

    def flush_shard():
        idx = len(shards)
        atomic_write_table(layout.input_file(idx), pa.Table.from_pylist(buf))
        shards.append({"shard": idx, "examples": len(buf),
                       "splits": dict(Counter(r["split"] for r in buf)),
                       "sources": dict(Counter(r["source"] for r in buf))})
        buf.clear()

    with q:
        for source, ex in iter_source_examples(cfg, q):
            if ex.id in seen_ids:  # ids key pairs, dedup and resume: a repeated id is unusable
                q.add(ex.to_dict(), f"duplicate_example_id: {ex.id}", source=source)
                continue
            seen_ids.add(ex.id)
            try:
                split = split_of(ex, cfg)
                ex2, obf = obfuscate_stage(ex, cfg.obfuscation.fraction, cfg.obfuscation.seed)
            except Exception as e:  # noqa: BLE001 - one odd example must not stop the plan
                q.add(ex.to_dict(), f"prepare_failed: {type(e).__name__}: {e}", source=source)
                continue
            if split is None:  # a category the split config places nowhere: counted, not generated
                q.add(ex.to_dict(), f"no_split: category {ex.category!r} is in no split", source=source)
                continue
            ex2.source = ex2.source or source
            by_source[ex2.source] += 1
            by_split[split] += 1
            buf.append(work_row(ex2, len(shards), split, obf))
            if len(buf) >= cfg.output.shard_size:
                flush_shard()
        if buf:
            flush_shard()
    examples = sum(s["examples"] for s in shards)
    plan = {"fingerprint": fingerprint(cfg), "shards": shards, "examples": examples,
            "quarantined": dict(q.counts), "rows_in": examples + q.total,
            "by_source": dict(by_source), "by_split": dict(by_split), "plan_s": round(time.time() - t0, 3)}
    atomic_write_text(layout.plan, json.dumps(plan, indent=1))
    return plan


def load_or_plan(cfg: GenerateConfig, layout: RunLayout) -> tuple[dict, bool]:
    """The run's plan: reused when resuming the same config, else (re)made. Returns (plan, reused)."""
    fp = fingerprint(cfg)
    if not cfg.output.resume:
        layout.wipe()
    elif layout.plan.is_file():
        plan = json.loads(layout.plan.read_text())
        if plan.get("fingerprint") == fp:
            return plan, True
        if any(layout.done.glob("*.json")):
            raise ConfigError(f"config key `out`: {layout.root} holds a run made with a different config; "
                              "set output.resume=false to overwrite it or choose another `out`")
    # No finished shard to protect: (re)plan from scratch.
    shutil.rmtree(layout.work, ignore_errors=True)
    shutil.rmtree(layout.pairs, ignore_errors=True)
    return plan_inputs(cfg, layout), False


# --- phase 2: generate -----------------------------------------------------------------------

def judge_and_spill(batch, parts_root: str, gen_index: int, chosen_variants: int):
    """Ray Data stage after a generator: judge each work row's candidates (stages.judge_stage),
    spill the pairs to the shard's parts dir, return the per-row tallies the driver counts."""
    rows = batch.to_pylist()
    pairs, tallies = judge_stage(rows, gen_index, chosen_variants)
    by_shard: dict[int, list[dict]] = defaultdict(list)
    for p in pairs:
        by_shard[p["shard"]].append(p)
    for shard, ps in by_shard.items():
        # Named by content: a resubmitted batch rewrites the same file instead of adding one.
        units = sorted((r["example_id"], int(r.get("unit") or 0)) for r in rows if int(r["shard"]) == shard)
        name = f"g{gen_index:02d}-{stable_hash(units, n=16)}.arrow"
        atomic_write_table(Path(parts_root) / f"shard-{shard:05d}" / name, pa.Table.from_pylist(ps), fmt="feather")
    return pa.Table.from_pylist(tallies, schema=_tally_schema())


def _tally_schema():
    return pa.schema([("shard", pa.int64()), ("generator", pa.string()), ("units", pa.int64()),
                      ("candidates", pa.int64()), ("correct", pa.int64()), ("gen_errors", pa.int64()),
                      ("error", pa.string())])


def load_input_shards(batch):
    """Ray Data stage: input-shard paths -> the shard's work rows."""
    return pa.concat_tables([pq.read_table(p) for p in batch.column("path").to_pylist()])


def build_dataset(cfg: GenerateConfig, layout: RunLayout, shards: list[int]):
    """The streaming plan: one branch per generator over the pending input shards, unioned."""
    paths = [{"path": str(layout.input_file(s))} for s in shards]
    branches = []
    for i, g in enumerate(cfg.active_generators()):
        # One block per input shard, loaded inside the task: `read_parquet` would first fetch every
        # shard's footer with extra worker processes, a cost that grows with the number of shards.
        ds = ray.data.from_items(paths, override_num_blocks=len(paths))
        ds = ds.map_batches(load_input_shards, batch_size=1, batch_format="pyarrow")
        ds = make_backend(g, i, layout.work).apply(ds)
        ds = ds.map_batches(judge_and_spill, fn_kwargs={"parts_root": str(layout.parts), "gen_index": i,
                                                        "chosen_variants": cfg.chosen.variants},
                            batch_format="pyarrow", batch_size=64)
        branches.append(ds)
    return branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]


def flush_shard(cfg: GenerateConfig, layout: RunLayout, shard_info: dict, tallies: dict,
                errors: list[str] | None = None) -> dict:
    """All work units of a shard are in: dedup + cap its pairs, write them, mark the shard done."""
    shard = shard_info["shard"]
    gens = [g.tag() for g in cfg.active_generators()]
    pairs = []
    pdir = layout.parts_dir(shard)
    for f in sorted(pdir.glob("*.arrow")) if pdir.is_dir() else []:
        pairs.extend(feather.read_table(f).to_pylist())
    d = cfg.dedup
    kept, dropped = dedup_stage(pairs, exact=d.exact, max_per_example=d.max_per_example,
                                max_per_error_type=d.max_per_error_type)
    rows = [{c: p[c] for c in PAIR_COLUMNS} for p in kept]
    atomic_write_table(layout.pairs_file(shard), pa.Table.from_pylist(rows, schema=pair_arrow_schema()))
    if cfg.output.jsonl:
        atomic_write_text(layout.pairs_file(shard).with_suffix(".jsonl"),
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    per_gen: dict[str, Counter] = {t: Counter() for t in gens}
    for tag, t in tallies.items():
        per_gen[tag].update(t)
    spilled = Counter(gens[p["gen_index"]] for p in pairs)
    for (reason, gi), n in dropped.items():
        per_gen[gens[gi]][reason] += n
    for p in kept:
        per_gen[gens[p["gen_index"]]]["pairs"] += 1
    for tag in gens:
        c = per_gen[tag]
        c["rejected"] = spilled[tag] - c["replayed"]
        # rejected candidates whose spill is missing: should be 0; a non-zero count is reported, not hidden
        c["lost"] = c["candidates"] - c["correct"] - c["rejected"]
    stats = {
        "shard": shard, "examples": shard_info["examples"], "pairs": len(rows),
        "generators": {t: dict(per_gen[t]) for t in gens},
        "error_types": dict(Counter(r["error_type"] for r in rows)),
        "sources": dict(Counter(r["source"] for r in rows)),
        "splits": dict(Counter(r["split"] for r in rows)),
        "pair_generators": dict(Counter(r["generator"] for r in rows)),
        # every rejected output of each generator, before dedup and caps: what the model got wrong
        "generator_error_types": {t: dict(Counter(p["error_type"] for p in pairs if gens[p["gen_index"]] == t))
                                  for t in gens},
        "gen_error_samples": list(errors or [])[:5],
    }
    atomic_write_text(layout.done_file(shard), json.dumps(stats))
    shutil.rmtree(pdir, ignore_errors=True)
    return stats


def execute(cfg: GenerateConfig, layout: RunLayout, plan: dict, pending: list[int]) -> int:
    """Phase 2: run the dataset, flushing each shard as soon as all its work units are in."""
    for s in pending:  # spills of an interrupted attempt are recomputed, never trusted
        shutil.rmtree(layout.parts_dir(s), ignore_errors=True)
    info = {s["shard"]: s for s in plan["shards"]}
    per_example_units = sum(g.units_per_example() for g in cfg.active_generators())
    expected = {s: info[s]["examples"] * per_example_units for s in pending}
    got: Counter = Counter()
    tallies: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    errors: dict[int, list[str]] = defaultdict(list)
    flushed = 0
    ds = build_dataset(cfg, layout, pending)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for t in batch.to_pylist():
            s = t["shard"]
            c = tallies[s][t["generator"]]
            for k in ("units", "candidates", "correct", "gen_errors"):
                c[k] += t[k]
            if t["error"] and len(errors[s]) < 5:
                errors[s].append(f"{t['generator']}: {t['error']}")
            got[s] += t["units"]
            if got[s] == expected[s]:
                flush_shard(cfg, layout, info[s], tallies.pop(s), errors.pop(s, []))
                flushed += 1
                if cfg.output.fault_inject_after_shards and flushed == cfg.output.fault_inject_after_shards:
                    log.warning("output.fault_inject_after_shards=%d: the driver exits (test hook)", flushed)
                    os._exit(1)  # simulate a killed driver at a known point
    missing = [s for s in pending if got[s] != expected[s]]
    if missing:
        raise RuntimeError(f"shards {missing[:5]} did not receive all work units; rerun to resume them")
    return flushed


# --- phase 3: stats --------------------------------------------------------------------------

def collect_stats(cfg: GenerateConfig, layout: RunLayout, plan: dict, run_info: dict) -> dict:
    """Sum the per-shard stats of all done shards; the counts add up by construction and the
    `checks` block says so explicitly."""
    gens = [g.tag() for g in cfg.active_generators()]
    by_gen = {t: Counter() for t in gens}
    gen_err = {t: Counter() for t in gens}
    err, src, spl, pgen = Counter(), Counter(), Counter(), Counter()
    examples_done = pairs = 0
    samples: list[str] = []
    for f in sorted(layout.done.glob("*.json")):
        st = json.loads(f.read_text())
        examples_done += st["examples"]
        pairs += st["pairs"]
        for t, c in st["generators"].items():
            by_gen.setdefault(t, Counter()).update(c)
        err.update(st["error_types"])
        src.update(st["sources"])
        spl.update(st["splits"])
        pgen.update(st["pair_generators"])
        for t, c in st.get("generator_error_types", {}).items():
            gen_err.setdefault(t, Counter()).update(c)
        samples.extend(st.get("gen_error_samples", []))
    for t, c in by_gen.items():  # outputs the parser read as calls (the rest: incorrect_output_format)
        c["parsed"] = c["candidates"] - gen_err.get(t, Counter())["incorrect_output_format"]
    quarantined = sum(plan["quarantined"].values())
    drop_keys = ("duplicate", "cap_per_example", "cap_per_error_type")
    checks = {
        "rows_in == examples + quarantined": plan["rows_in"] == plan["examples"] + quarantined,
        "all shards done": examples_done == plan["examples"],
        "pairs == sum(generator pairs)": pairs == sum(c["pairs"] for c in by_gen.values()),
        "candidates == correct + rejected (per generator)": all(
            c["candidates"] == c["correct"] + c["rejected"] for c in by_gen.values()),
        "rejected == pairs + dropped (per generator)": all(
            c["rejected"] == c["pairs"] + sum(c[k] for k in drop_keys) for c in by_gen.values()),
    }
    elapsed = run_info["elapsed_s"]
    stats = {
        "output_dir": str(layout.root),
        "rows_in": plan["rows_in"],
        "examples": plan["examples"],
        "quarantined": quarantined,
        "quarantine_reasons": plan["quarantined"],
        "examples_by_source": plan["by_source"],
        "examples_by_split": plan["by_split"],
        "pairs_out": pairs,
        "by_generator": {t: dict(c) for t, c in by_gen.items()},
        "by_generator_error_type": {t: dict(c.most_common()) for t, c in gen_err.items()},
        "by_error_type": dict(err.most_common()),
        "by_source": dict(src.most_common()),
        "by_split": dict(spl.most_common()),
        "by_generator_tag": dict(pgen.most_common()),
        "shards": len(plan["shards"]),
        "shards_this_run": run_info["shards_this_run"],
        "shards_resumed": run_info["shards_resumed"],
        "gen_error_samples": samples[:10],
        "elapsed_s": round(elapsed, 3),
        "throughput": {
            "examples_per_s": round(run_info["examples_this_run"] / elapsed, 2) if elapsed else None,
            "pairs_per_s": round(run_info["pairs_this_run"] / elapsed, 2) if elapsed else None,
        },
        "checks": checks,
    }
    return stats


def print_stats(stats: dict, file=None) -> None:
    con = Console(file=file or sys.stdout, width=max(120, Console().width))  # wide enough for the generator table
    t = Table(title=f"fcrm generate -> {stats['output_dir']}")
    t.add_column("")
    t.add_column("value", justify="right")
    for k in ("rows_in", "examples", "quarantined", "pairs_out", "shards", "shards_this_run", "shards_resumed",
              "elapsed_s"):
        t.add_row(k, str(stats[k]))
    for k, v in stats["throughput"].items():
        t.add_row(k, str(v))
    con.print(t)
    g = Table(title="by generator")
    cols = ("candidates", "parsed", "correct", "rejected", "duplicate", "cap_per_example", "cap_per_error_type", "pairs", "gen_errors")
    g.add_column("generator")
    for c in cols:
        g.add_column(c, justify="right")
    for name, c in stats["by_generator"].items():
        g.add_row(name, *(str(c.get(k, 0)) for k in cols))
    con.print(g)
    e = Table(title="rejected outputs by generator and error type (before dedup)")
    e.add_column("generator")
    e.add_column("error types")
    for name, c in stats.get("by_generator_error_type", {}).items():
        e.add_row(name, ", ".join(f"{k} {v}" for k, v in c.items()) or "-")
    con.print(e)
    for title, key in (("by error type", "by_error_type"), ("by source", "by_source"), ("by split", "by_split"),
                       ("quarantined (reason)", "quarantine_reasons")):
        tb = Table(title=title)
        tb.add_column(title.split()[-1].strip("()"))
        tb.add_column("count", justify="right")
        for k, v in stats[key].items():
            tb.add_row(k, str(v))
        con.print(tb)
    bad = [k for k, ok in stats["checks"].items() if not ok]
    con.print("[green]counts add up[/green]" if not bad else f"[red]count checks failed: {bad}[/red]")


# --- entry points ----------------------------------------------------------------------------

def check_resources(cfg: GenerateConfig) -> None:
    """Actor pools hold their CPUs for the whole run; if they take every CPU of a fixed-size local
    Ray, the read, mutation and judge tasks never get scheduled and Ray Data waits forever. Fail
    early instead. (Not applied on an existing cluster: `run` skips it there.)"""
    total = ray.cluster_resources().get("CPU", 0)
    held = [(i, g.min_actors * g.num_cpus) for i, g in enumerate(cfg.active_generators())
            if g.backend == "hf" or (g.backend == "mutation" and g.compute == "actors")]
    if total and held and sum(c for _, c in held) > total - 1:
        raise ConfigError(f"config key `generators[{held[0][0]}].num_cpus`: actor pools reserve {sum(c for _, c in held)} "
                          f"of {total:g} CPUs, leaving less than 1 for the read/judge tasks; lower num_cpus or min_actors")


def run(cfg: GenerateConfig) -> dict:
    """Plan, generate (resuming), and write `stats.json`; returns the stats."""
    layout = RunLayout(cfg.out)
    t0 = time.time()
    plan, reused = load_or_plan(cfg, layout)
    done_before = {int(f.stem.split("-")[1]) for f in layout.done.glob("*.json")} if reused else set()
    pending = [s["shard"] for s in plan["shards"] if s["shard"] not in done_before]
    started = ray_init(cfg.ray)
    try:
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = cfg.ray.progress_bars
        ctx.max_errored_blocks = cfg.ray.max_errored_blocks
        if pending:
            if cfg.ray.starts_local():
                # a local Ray started here has a fixed size; an existing cluster's current CPUs are
                # not its capacity (an autoscaler adds nodes when the pools ask), so no check there
                check_resources(cfg)
            execute(cfg, layout, plan, pending)
    finally:
        if started:
            ray.shutdown()
    this_run = [json.loads(layout.done_file(s).read_text()) for s in pending]
    run_info = {"elapsed_s": time.time() - t0, "shards_this_run": len(pending), "shards_resumed": len(done_before),
                "examples_this_run": sum(s["examples"] for s in this_run),
                "pairs_this_run": sum(s["pairs"] for s in this_run)}
    stats = collect_stats(cfg, layout, plan, run_info)
    stats["config"] = to_dict(cfg)
    atomic_write_text(layout.stats, json.dumps(stats, indent=1))
    return stats


def main(argv: list[str] | None = None, prog: str = "fcrm generate") -> int:
    description = "Synthesise tool-calling preference pairs with Ray Data."
    cfg, _args = parse_config_args(GenerateConfig, argv, prog, parser=config_arg_parser(prog, description, out=True))
    stats = run(cfg)
    print_stats(stats)
    return 0 if all(stats["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
