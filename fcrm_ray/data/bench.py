"""`fcrm bench build`: an FC-RewardBench-format pair set from BFCL with mutation negatives.

    fcrm bench build --config configs/bench/default.yaml --out DIR [key=value ...]

(Without `--config` the dataclass defaults apply: the same, but `compose_parallel: 0`.)

Steps, all deterministic given `seed` (each example gets its own RNG seeded by (seed, example id),
so a pair does not depend on which other examples or categories are in the build):

1. Read the BFCL single-turn categories (`sources.read_bfcl`); unusable rows -> `quarantine.jsonl`.
2. Assign each example a split (`splits.assign_split`; default: the paper's out-of-domain
   protocol, train/validation = live categories, test = non-live ones).
3. Per example, `negatives_per_type[error_type]` rejected calls of each error type
   (`mutate.mutate`, verifier-checked to be wrong with exactly that type), at most
   `max_negatives_per_example` of them (a seeded random subset of the types).
   With `compose_parallel: N`, up to N extra train examples join two train-split single-call
   requests into one two-call task (`data/compose.py`), mutated the same way.
4. A chosen call per pair: for splits listed in `chosen_variants_splits` (default train and
   validation) an alternative acceptable form (`mutate.chosen_variants`: other acceptable values,
   output surfaces, argument orders) so the RM cannot key on one canonical surface; elsewhere the
   reference's canonical form as a JSON list (FC-RewardBench's chosen = BFCL ground truth; with
   `chosen_surface=match_rejected` written in the rejected call's surface instead). Every
   chosen is re-verified correct; a pair whose chosen fails is dropped and counted.
5. Caps: at most `max_pairs_per_type` pairs per (split, error type), a seeded random subset.
6. Obfuscation: `obfuscate_train` extra copies of every train pair with random function/parameter
   names (augmentation against memorisation), and with `obfuscate_test` one obfuscated copy of
   every test pair under split `test_obfuscated` (the held-out-with-obfuscated-names number).
   Obfuscated pairs are re-verified (chosen correct, rejected wrong with the same type).
7. Write `pairs.parquet` (+ `pairs.jsonl`) via `pairs.write_pairs` — one set, all splits, `split`
   column — plus `stats.json` (config, counts, timings) and print count tables.

Accounting (in `stats.json`, checked before writing):
examples_read = examples_used + examples_without_negative + examples_unassigned
                + examples_not_sampled, and rows_read = examples_read + quarantined.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fcrm_ray.config import ConfigError, config_arg_parser, parse_config_args, to_dict
from fcrm_ray.data.pairs import canonical_chosen, pair_row, write_pairs
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.data.sources import ReadStats, read_bfcl
from fcrm_ray.data.splits import SplitConfig, assign_split, unit_hash
from fcrm_ray.paths import BFCL_EXEC, BFCL_SINGLE_TURN
from fcrm_ray.toolcall.schema import ERROR_TYPES, Example
from fcrm_ray.toolcall.surface import detect_style, format_calls

TEST_OBFUSCATED = "test_obfuscated"
# splits of the pairs made from real model outputs (sources.bfcl_results): train pairs join `train`
REAL_SPLITS = {"train": "train", "validation": "validation_real", "test": "test_real"}
# Best-of-N pools of real outputs, per split of their question
# (train: outputs of licence-permissive models only, as the train pairs; for `train.listwise_weight`)
POOL_FILES = {"train": "pools_real_train.jsonl", "validation": "pools_real_validation.jsonl", "test": "pools_real.jsonl"}


@dataclass
class BenchSources:
    bfcl_results: list[str] = field(default_factory=list)  # BFCL result folders (each holds result/ and score/)


@dataclass
class BfclResultsConfig:
    """What to take from `sources.bfcl_results`. Splits follow `splits` like every other example:
    the held-out categories' real pairs go to `test_real` and their pools to `pools_real.jsonl`;
    the others' to train / `validation_real`."""
    # wheel category names; the default trains on Java/JavaScript, the executable four (Python,
    # outside the held-out AST four) and the live four (where a result folder has them: BFCL v3/v4
    # runs), and holds out the Python non-live four
    categories: list[str] = field(default_factory=lambda: ["simple_java", "simple_javascript", *BFCL_EXEC, *BFCL_SINGLE_TURN])
    models: list[str] = field(default_factory=list)  # empty = every model in the folders
    # train pairs only from models whose licence allows it (`bfcl_results.MODEL_LICENCES`); evaluation splits use every model;
    # `all` = every model (only if you have checked the licences yourself)
    train_models: str = "permissive"
    max_rejected_per_model: int = 3  # per (question, model), as the paper
    pool_size: int = 16  # candidates per Best-of-N pool (seeded model order); 0 = every model
    pool_splits: list[str] = field(default_factory=lambda: ["train", "validation", "test"])

    def validate(self) -> None:
        from fcrm_ray.data.bfcl_results import CATEGORY_TO_WHEEL

        unknown = sorted(set(self.categories) - set(CATEGORY_TO_WHEEL.values()))
        if unknown:
            raise ConfigError(f"config key `bfcl_results.categories`: unknown {unknown}; "
                              f"expected wheel names {sorted(set(CATEGORY_TO_WHEEL.values()))}")
        if self.train_models not in ("permissive", "all"):
            raise ConfigError(f"config key `bfcl_results.train_models`: expected permissive|all, got {self.train_models!r}")
        bad = sorted(set(self.pool_splits) - set(POOL_FILES))
        if bad:
            raise ConfigError(f"config key `bfcl_results.pool_splits`: unknown {bad}; expected a subset of {sorted(POOL_FILES)}")
        if self.max_rejected_per_model < 1 or self.pool_size < 0:
            raise ConfigError("config keys `bfcl_results.max_rejected_per_model` >= 1, `bfcl_results.pool_size` >= 0")


@dataclass
class BenchConfig:
    out: str = ""  # output dir (also `--out`)
    categories: list[str] = field(default_factory=lambda: list(BFCL_SINGLE_TURN))
    data_dir: str = ""  # BFCL data folder; empty = the installed bfcl-eval wheel's
    max_examples_per_category: int = 0  # 0 = all; else a seeded random subset per category
    seed: int = 0
    # rejected calls per example per error type (types missing here get 0)
    negatives_per_type: dict[str, int] = field(default_factory=lambda: {t: 1 for t in ERROR_TYPES})
    max_negatives_per_example: int = 0  # 0 = no cap
    max_pairs_per_type: int = 0  # per (split, error type); 0 = no cap
    splits: SplitConfig = field(default_factory=SplitConfig)
    chosen_variants_splits: list[str] = field(default_factory=lambda: ["train", "validation"])
    # chosen in the other splits: `canonical_json` (FC-RewardBench: BFCL ground truth as a JSON list)
    # or `match_rejected` (the same canonical calls written in the rejected call's surface, so a
    # scorer that sees raw text cannot tell the sides apart by format)
    chosen_surface: str = "canonical_json"
    # composite two-call examples made from pairs of train-split single-call examples
    # (`data/compose.py`): the live training categories have almost no parallel tasks
    compose_parallel: int = 0
    # real model outputs from BFCL result folders (`data/bfcl_results.py`); options below
    sources: BenchSources = field(default_factory=lambda: BenchSources())
    bfcl_results: BfclResultsConfig = field(default_factory=lambda: BfclResultsConfig())
    # drop train/validation examples whose (normalised question, tool-name set) equals a test
    # example's: BFCL repeats some questions across categories (multiple_26 ~ live_multiple_190-84-0)
    drop_near_duplicates: bool = True
    obfuscate_train: int = 1  # extra obfuscated copies of every train pair (0 = none)
    obfuscate_test: bool = True  # add split `test_obfuscated`
    jsonl: bool = True  # also write pairs.jsonl next to pairs.parquet

    def validate(self) -> None:
        unknown = sorted(set(self.negatives_per_type) - set(ERROR_TYPES))
        if unknown:
            raise ConfigError(f"config key `negatives_per_type`: unknown error types {unknown}; expected {list(ERROR_TYPES)}")
        bad = [k for k, v in self.negatives_per_type.items() if v < 0]
        if bad:
            raise ConfigError(f"config key `negatives_per_type.{bad[0]}` must be >= 0")
        if not self.categories:
            raise ConfigError("config key `categories` must list at least one BFCL category")
        for key in ("max_examples_per_category", "max_negatives_per_example", "max_pairs_per_type", "obfuscate_train",
                    "compose_parallel"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key `{key}` must be >= 0")
        if self.chosen_surface not in ("canonical_json", "match_rejected"):
            raise ConfigError(f"config key `chosen_surface`: expected canonical_json|match_rejected, got {self.chosen_surface!r}")
        bad_splits = sorted(set(self.chosen_variants_splits) - {"train", "validation", "test"})
        if bad_splits:
            raise ConfigError(f"config key `chosen_variants_splits`: unknown splits {bad_splits}")


# ----------------------------------------------------------------------------------------------
# Pair construction
# ----------------------------------------------------------------------------------------------


def example_pairs(example: Example, split: str, cfg: BenchConfig, counters: Counter) -> list[dict]:
    """Plain (not obfuscated) pairs of one example; counters get drop reasons."""
    from fcrm_ray.toolcall.mutate import chosen_variants, mutate
    from fcrm_ray.toolcall.verify import verify

    rng = random.Random(f"fcrm-bench:{cfg.seed}:{example.id}")
    muts = []
    for et in ERROR_TYPES:
        n = cfg.negatives_per_type.get(et, 0)
        if n:
            muts.extend(mutate(example, et, rng, n))
    if cfg.max_negatives_per_example and len(muts) > cfg.max_negatives_per_example:
        counters["negatives_over_example_cap"] += len(muts) - cfg.max_negatives_per_example
        muts.sort(key=lambda m: unit_hash(cfg.seed, f"{example.id}\x00{m.error_type}\x00{m.text}"))
        muts = muts[: cfg.max_negatives_per_example]
    if not muts:
        return []
    canonical = canonical_chosen(example)
    chosen = [canonical] * len(muts)
    if split in cfg.chosen_variants_splits:
        variants = chosen_variants(example, rng, len(muts))
        if variants:
            chosen = [variants[i % len(variants)] for i in range(len(muts))]
            counters["chosen_from_variants"] += len(muts)
        else:
            counters["chosen_canonical_no_variant"] += len(muts)
    elif cfg.chosen_surface == "match_rejected":
        calls = [r.canonical_call() for r in example.reference]
        chosen = [format_calls(calls, detect_style(m.text) or "json") for m in muts]
        counters["chosen_canonical_matched_surface"] += len(muts)
    else:
        counters["chosen_canonical"] += len(muts)
    rows = []
    ok_cache: dict[str, bool] = {}
    for m, c in zip(muts, chosen):
        if c not in ok_cache:
            ok_cache[c] = verify(c, example.reference, example.tools).correct
        if not ok_cache[c]:
            counters["dropped_chosen_not_verified"] += 1
            continue
        rows.append(pair_row(example, split, c, m.text, m.error_type, f"mutation:{m.kind}", False))
    return rows


def obfuscated_copies(example: Example, rows: list[dict], copies: int, split: str, tag: str,
                      seed: int, counters: Counter) -> list[dict]:
    """`copies` obfuscated versions of the pairs of one example (one naming per copy, shared by all
    pairs of the copy, as a benchmark item has one catalog). Labels are re-verified."""
    from fcrm_ray.toolcall.obfuscate import obfuscate_example, obfuscate_output
    from fcrm_ray.toolcall.verify import verify

    out = []
    for k in range(copies):
        obf, mapping = obfuscate_example(example, f"{seed}:{example.id}:{tag}{k}")
        for r in rows:
            chosen = obfuscate_output(r["chosen_output"], mapping)
            rejected = obfuscate_output(r["rejected_output"], mapping)
            vc = verify(chosen, obf.reference, obf.tools)
            vr = verify(rejected, obf.reference, obf.tools)
            if not vc.correct or vr.correct or vr.error_type != r["error_type"]:
                counters["dropped_obfuscation_changed_label"] += 1
                continue
            out.append(pair_row(obf, split, chosen, rejected, r["error_type"], r["generator"], True,
                            id_salt=f"#obf:{tag}{k}"))
    return out


def _cap(rows: list[dict], cap: int, seed: int, counters: Counter) -> list[dict]:
    """At most `cap` rows per (split, error type): the ones with the smallest seeded hash."""
    if not cap:
        return rows
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["split"], r["error_type"])].append(r)
    keep: set[str] = set()
    for key, grp in groups.items():
        grp.sort(key=lambda r: unit_hash(seed, r["id"]))
        keep.update(r["id"] for r in grp[:cap])
        counters["pairs_over_type_cap"] += max(0, len(grp) - cap)
    return [r for r in rows if r["id"] in keep]


# ----------------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------------


def build(cfg: BenchConfig) -> dict:
    """Build the pair set into `cfg.out`; returns the stats dict (also written to stats.json)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    qpath = out / "quarantine.jsonl"
    qpath.unlink(missing_ok=True)  # Quarantine appends; a rebuild starts afresh
    rstats = ReadStats()
    counters: Counter = Counter()
    per_cat_examples: dict[str, Counter] = defaultdict(Counter)
    examples_by_cat: dict[str, list[Example]] = defaultdict(list)
    with Quarantine(qpath) as q:
        for ex in read_bfcl(cfg.categories, data_dir=cfg.data_dir or None, quarantine=q, stats=rstats):
            examples_by_cat[ex.category].append(ex)
        quarantine_counts = dict(q.counts)
    qpath.touch()  # always present (empty = nothing quarantined), so consumers need not guess
    rstats.check()
    t_read = time.perf_counter()

    near_dup = near_duplicate_keys(examples_by_cat, cfg) if cfg.drop_near_duplicates else set()
    plain: list[dict] = []
    used: list[tuple[Example, str, list[dict]]] = []
    for cat in cfg.categories:
        exs = examples_by_cat.get(cat, [])
        if cfg.max_examples_per_category and len(exs) > cfg.max_examples_per_category:
            ranked = sorted(exs, key=lambda e: unit_hash(cfg.seed, f"sample\x00{e.id}"))
            chosen_ids = {e.id for e in ranked[: cfg.max_examples_per_category]}
            per_cat_examples[cat]["not_sampled"] += len(exs) - len(chosen_ids)
            exs = [e for e in exs if e.id in chosen_ids]  # keep file order
        for ex in exs:
            split = assign_split(ex.id, ex.category, cfg.splits)
            if split is None:
                per_cat_examples[cat]["unassigned"] += 1
                continue
            if split != "test" and question_key(ex) in near_dup:
                per_cat_examples[cat]["near_duplicate_of_test"] += 1
                continue
            rows = example_pairs(ex, split, cfg, counters)
            if not rows:
                per_cat_examples[cat]["without_negative"] += 1
                continue
            per_cat_examples[cat]["used"] += 1
            plain.extend(rows)
            used.append((ex, split, rows))
    if cfg.compose_parallel:
        from fcrm_ray.data.compose import compose_parallel

        train_examples = [ex for ex, split, _ in used if split == "train"]
        for ex in compose_parallel(train_examples, cfg.compose_parallel, cfg.seed):
            rows = example_pairs(ex, "train", cfg, counters)
            counters["composed_examples"] += 1
            if not rows:
                counters["composed_without_negative"] += 1
                continue
            plain.extend(rows)
            used.append((ex, "train", rows))
    real_stats = None
    if cfg.sources.bfcl_results:
        real_rows, real_stats = real_output_pairs(cfg, near_dup, out, counters)
        plain.extend(real_rows)
    t_pairs = time.perf_counter()

    real = [r for r in plain if r["source"] == "bfcl_results"]  # not capped: every real error counts
    plain = _cap([r for r in plain if r["source"] != "bfcl_results"], cfg.max_pairs_per_type, cfg.seed, counters) + real
    kept_ids = {r["id"] for r in plain}
    extra: list[dict] = []
    for ex, split, rows in used:
        rows = [r for r in rows if r["id"] in kept_ids]
        if not rows:
            continue
        if split == "train" and cfg.obfuscate_train:
            extra.extend(obfuscated_copies(ex, rows, cfg.obfuscate_train, "train", "train", cfg.seed, counters))
        if split == "test" and cfg.obfuscate_test:
            extra.extend(obfuscated_copies(ex, rows, 1, TEST_OBFUSCATED, "test", cfg.seed, counters))
    t_obf = time.perf_counter()

    all_rows, seen = [], set()
    for r in plain + extra:
        if r["id"] in seen:  # identical rejected text for one example and generator: keep one
            counters["dropped_duplicate_id"] += 1
            continue
        seen.add(r["id"])
        all_rows.append(r)
    path = write_pairs(all_rows, out, "pairs", jsonl=cfg.jsonl)
    t_write = time.perf_counter()

    stats = _stats(cfg, rstats, quarantine_counts, per_cat_examples, counters, all_rows)
    if real_stats is not None:
        stats["bfcl_results"] = real_stats
    stats["seconds"] = {"read": round(t_read - t0, 3), "pairs": round(t_pairs - t_read, 3),
                        "obfuscate": round(t_obf - t_pairs, 3), "write": round(t_write - t_obf, 3),
                        "total": round(t_write - t0, 3)}
    stats["files"] = {"pairs": str(path), "quarantine": str(qpath)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=False) + "\n")
    return stats


def question_key(ex: Example) -> tuple[str, frozenset]:
    """Normalised user text + tool-name set: two examples with the same key are the same task."""
    text = " ".join(" ".join(str(m.get("content", "")) for m in ex.conversation if m.get("role") == "user").lower().split())
    return text, frozenset(t.name for t in ex.tools)


def near_duplicate_keys(examples_by_cat: dict[str, list[Example]], cfg: BenchConfig) -> set:
    """Question keys of the test-split examples (train/validation examples with one are dropped)."""
    return {question_key(ex) for exs in examples_by_cat.values() for ex in exs
            if assign_split(ex.id, ex.category, cfg.splits) == "test"}


def real_output_pairs(cfg: BenchConfig, near_dup: set, out: Path,
                      counters: Counter) -> tuple[list[dict], dict]:
    """Pairs (splits train / validation_real / test_real) and Best-of-N pools (`pools_real.jsonl`)
    from the real model outputs in `sources.bfcl_results`."""
    from fcrm_ray.data import bfcl_results as br

    rc = cfg.bfcl_results
    with Quarantine(out / "quarantine.jsonl") as q:  # every question of these categories, even when sampled above
        examples = {ex.id: ex for ex in read_bfcl(rc.categories, data_dir=cfg.data_dir or None, quarantine=q)}
        outputs, rstats = br.read_results(cfg.sources.bfcl_results, rc.categories, examples, rc.models, quarantine=q)
    split_of = {}
    for ex_id in {o.example_id for o in outputs}:
        ex = examples[ex_id]
        split = assign_split(ex.id, ex.category, cfg.splits)
        if split is not None and split != "test" and question_key(ex) in near_dup:
            counters["real_near_duplicate_of_test"] += 1
            split = None
        split_of[ex_id] = REAL_SPLITS.get(split) if split else None
    trainable = {m: (rc.train_models == "all" or info["train"]) for m, info in rstats.models.items()}
    rows = br.real_pairs(outputs, examples, split_of, trainable, cfg.seed, rc.max_rejected_per_model, counters)
    pool_counts = {}
    for split in rc.pool_splits:  # one pool file per split: test -> pools_real.jsonl (report),
        # validation -> pools_real_validation.jsonl (choose reranking settings there),
        # train -> pools_real_train.jsonl (the listwise objective; trainable models' outputs only)
        pool_ids = {e for e, s in split_of.items() if s == REAL_SPLITS[split]}
        members = [o for o in outputs if o.example_id in pool_ids and (split != "train" or trainable.get(o.model, False))]
        pools = br.bon_pools(members, examples, rc.pool_size, cfg.seed)
        with open(out / POOL_FILES[split], "w", encoding="utf-8") as fh:
            for p in pools:
                fh.write(json.dumps(p, ensure_ascii=False) + "\n")
        pool_counts[split] = len(pools)
    stats = rstats.to_dict()
    stats["pairs"] = dict(Counter(r["split"] for r in rows))
    stats["pools"] = pool_counts
    return rows, stats


def _stats(cfg, rstats: ReadStats, qcounts, per_cat_examples, counters, rows) -> dict:
    ex_counts = Counter()
    for c in per_cat_examples.values():
        ex_counts.update(c)
    examples = {
        "rows_read": rstats.rows,
        "quarantined": rstats.quarantined,
        "examples_read": rstats.kept,
        "examples_used": ex_counts["used"],
        "examples_without_negative": ex_counts["without_negative"],
        "examples_unassigned": ex_counts["unassigned"],
        "examples_not_sampled": ex_counts["not_sampled"],
        "examples_near_duplicate_of_test": ex_counts["near_duplicate_of_test"],
    }
    if examples["examples_read"] != (examples["examples_used"] + examples["examples_without_negative"]
                                     + examples["examples_unassigned"] + examples["examples_not_sampled"]
                                     + examples["examples_near_duplicate_of_test"]):
        raise AssertionError(f"bench accounting broken: {examples}")
    by_split_type: dict[str, Counter] = defaultdict(Counter)
    by_cat_type: dict[str, Counter] = defaultdict(Counter)
    examples_by_split: dict[str, set] = defaultdict(set)
    for r in rows:
        by_split_type[r["split"]][r["error_type"]] += 1
        examples_by_split[r["split"]].add(r["example_id"])
        if not r["obfuscated"]:
            by_cat_type[r["category"]][r["error_type"]] += 1
    return {
        "config": to_dict(cfg),
        "examples": examples,
        "examples_by_category": {c: dict(v) for c, v in per_cat_examples.items()},
        "read": rstats.to_dict(),
        "quarantine_reasons": qcounts,
        "pairs_total": len(rows),
        "pairs_by_split": {s: sum(c.values()) for s, c in by_split_type.items()},
        "examples_by_split": {s: len(v) for s, v in examples_by_split.items()},
        "pairs_by_split_and_error_type": {s: dict(c) for s, c in by_split_type.items()},
        "pairs_by_category_and_error_type": {c: dict(v) for c, v in by_cat_type.items()},
        "counters": dict(counters),
    }


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------

_SHORT = {
    "incorrect_parameter_value": "param_value",
    "incorrect_function_name": "func_name",
    "incorrect_number_of_functions": "n_funcs",
    "missing_optional_parameter": "miss_opt",
    "missing_required_parameter": "miss_req",
    "incorrect_parameter_type": "param_type",
    "unexpected_parameter": "unexpected",
    "incorrect_output_format": "format",
}


def print_tables(stats: dict, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=160)
    for title, data, first in (("pairs by category x error type (plain pairs)", stats["pairs_by_category_and_error_type"], "category"),
                               ("pairs by split x error type", stats["pairs_by_split_and_error_type"], "split")):
        t = Table(title=title)
        t.add_column(first)
        for et in ERROR_TYPES:
            t.add_column(_SHORT[et], justify="right")
        t.add_column("total", justify="right", style="bold")
        totals = Counter()
        for key, c in data.items():
            t.add_row(key, *[str(c.get(et, 0)) for et in ERROR_TYPES], str(sum(c.values())))
            totals.update(c)
        t.add_row("total", *[str(totals.get(et, 0)) for et in ERROR_TYPES], str(sum(totals.values())), style="bold")
        console.print(t)
    ex = stats["examples"]
    console.print(
        f"rows read {ex['rows_read']} = examples {ex['examples_read']} + quarantined {ex['quarantined']}; examples: "
        f"used {ex['examples_used']}, without negative {ex['examples_without_negative']}, unassigned "
        f"{ex['examples_unassigned']}, not sampled {ex['examples_not_sampled']}")
    console.print(f"pairs {stats['pairs_total']} -> {stats['files']['pairs']} in {stats['seconds']['total']:.1f}s; "
                  f"dropped/capped: { {k: v for k, v in stats['counters'].items() if k.startswith(('dropped', 'pairs_over', 'negatives_over'))}}")


def main(argv: list[str] | None = None, prog: str = "fcrm bench build") -> int:
    parser = config_arg_parser(prog, "Build an FC-RewardBench-format pair set from BFCL with mutation negatives.", out=True)
    cfg, _ = parse_config_args(BenchConfig, argv, prog, parser=parser)
    if not cfg.out:
        raise ConfigError("config key `out` is required (or pass --out DIR)")
    stats = build(cfg)
    print_tables(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
