import json
from collections import Counter
from pathlib import Path

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.data.bench import TEST_OBFUSCATED, BenchConfig, build, main
from fcrm_ray.data.pairs import read_pairs
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.toolcall.schema import ERROR_TYPES, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.verify import verify

REPO = Path(__file__).resolve().parents[1]
SMALL = ["categories=[simple_python,parallel_multiple,live_simple,live_multiple]", "max_examples_per_category=5",
         "obfuscate_train=1", "obfuscate_test=true"]


def _cfg(out, *overrides) -> BenchConfig:
    return load_config(BenchConfig, REPO / "configs/bench/default.yaml", [f"out={out}", *SMALL, *overrides])


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    stats = build(_cfg(out))
    return out, stats


def test_small_build_loads_back_and_every_label_verifies(small_build):
    out, stats = small_build
    q = Quarantine()
    rows = read_pairs(out, quarantine=q)
    assert q.total == 0 and len(rows) == stats["pairs_total"] > 0
    assert (out / "pairs.jsonl").is_file() and (out / "quarantine.jsonl").is_file() and (out / "stats.json").is_file()
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        tools = normalize_tools(json.loads(r["tools"]))
        ref = reference_from_bfcl(json.loads(r["reference"]))
        vc = verify(r["chosen_output"], ref, tools)
        assert vc.correct, (r["id"], r["chosen_output"], vc.detail)
        vr = verify(r["rejected_output"], ref, tools)
        assert not vr.correct and vr.error_type == r["error_type"], (r["id"], r["rejected_output"], vr)
        assert r["generator"].startswith("mutation:") and r["source"] == "bfcl"
    assert {r["error_type"] for r in rows} <= set(ERROR_TYPES)
    assert len({r["error_type"] for r in rows}) >= 6  # stratified: most types present


def test_splits_and_obfuscation_of_small_build(small_build):
    out, stats = small_build
    rows = read_pairs(out)
    by_split = Counter(r["split"] for r in rows)
    assert set(by_split) <= {"train", "validation", "test", TEST_OBFUSCATED}
    assert by_split["test"] > 0 and by_split[TEST_OBFUSCATED] > 0
    # out-of-domain: test from non-live, train/validation from live categories
    for r in rows:  # (composites of two live train examples are train pairs too)
        live = r["category"].startswith("live_") or r["category"] == "composed_parallel"
        assert live == (r["split"] in ("train", "validation")), r
    # an example never sits in two of train/validation/test
    splits_of = {}
    for r in rows:
        s = "test" if r["split"] == TEST_OBFUSCATED else r["split"]
        assert splits_of.setdefault(r["example_id"], s) == s
    # obfuscated copies: test_obfuscated mirrors test; train has one extra copy per plain pair
    assert by_split[TEST_OBFUSCATED] <= by_split["test"]
    train = [r for r in rows if r["split"] == "train"]
    assert sum(r["obfuscated"] for r in train) == sum(not r["obfuscated"] for r in train) > 0
    assert all(r["obfuscated"] for r in rows if r["split"] == TEST_OBFUSCATED)
    obf = next(r for r in rows if r["obfuscated"])
    plain_names = {t["name"] for r in rows if not r["obfuscated"] for t in json.loads(r["tools"])}
    assert all(t["name"] not in plain_names for t in json.loads(obf["tools"]))
    # chosen for test = canonical JSON of the reference; train draws variants
    for r in rows:
        if r["split"] == "test":
            assert isinstance(json.loads(r["chosen_output"]), list)
    assert stats["counters"].get("chosen_from_variants", 0) > 0


def test_accounting_adds_up(small_build):
    _, stats = small_build
    ex = stats["examples"]
    assert ex["rows_read"] == ex["examples_read"] + ex["quarantined"]
    assert ex["examples_read"] == (ex["examples_used"] + ex["examples_without_negative"] + ex["examples_unassigned"]
                                   + ex["examples_not_sampled"])
    assert ex["examples_used"] + ex["examples_without_negative"] == 4 * 5  # 4 categories x cap 5
    assert sum(stats["pairs_by_split"].values()) == stats["pairs_total"]
    assert sum(sum(c.values()) for c in stats["pairs_by_split_and_error_type"].values()) == stats["pairs_total"]


def test_build_is_deterministic_and_subset_stable(tmp_path, small_build):
    out, _ = small_build
    a = {r["id"]: r for r in read_pairs(out)}
    build(_cfg(tmp_path / "again"))
    b = {r["id"]: r for r in read_pairs(tmp_path / "again")}
    assert a == b
    # a pair depends only on its own example: a build of one category reproduces its pairs
    # (composites depend on which examples are there to pair, so they are left out here)
    build(_cfg(tmp_path / "one", "categories=[live_simple]", "obfuscate_train=0", "obfuscate_test=false"))
    one = {r["id"]: r for r in read_pairs(tmp_path / "one") if r["category"] != "composed_parallel"}
    assert one and all(a[i] == r for i, r in one.items())
    other_seed = build(_cfg(tmp_path / "seed", "seed=1"))
    assert {r["id"] for r in read_pairs(tmp_path / "seed")} != set(a) and other_seed["pairs_total"] > 0


def test_caps_and_per_type_counts(tmp_path):
    # the YAML dict merges with overrides: other types are switched off by setting them to 0
    zeros = [f"negatives_per_type.{t}=0" for t in ERROR_TYPES if t not in ("incorrect_parameter_value", "incorrect_function_name")]
    stats = build(_cfg(tmp_path / "cap", "max_pairs_per_type=2", "obfuscate_train=0", "obfuscate_test=false",
                       "negatives_per_type.incorrect_parameter_value=2", *zeros))
    for split, c in stats["pairs_by_split_and_error_type"].items():
        assert set(c) <= {"incorrect_parameter_value", "incorrect_function_name"}
        assert all(v <= 2 for v in c.values())
    assert stats["counters"]["pairs_over_type_cap"] > 0
    per_ex = build(_cfg(tmp_path / "perex", "max_negatives_per_example=2", "obfuscate_train=0", "obfuscate_test=false"))
    rows = read_pairs(tmp_path / "perex")
    assert max(Counter(r["example_id"] for r in rows).values()) == 2
    assert per_ex["counters"]["negatives_over_example_cap"] > 0


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="negatives_per_type"):
        _cfg(tmp_path, "negatives_per_type={made_up_error: 1}")
    with pytest.raises(ConfigError, match="chosen_variants_splits"):
        _cfg(tmp_path, "chosen_variants_splits=[dev]")
    with pytest.raises(ConfigError, match="out"):
        main(["--config", str(REPO / "configs/bench/default.yaml")])


@pytest.mark.slow
def test_cli_prints_tables(tmp_path, capsys):
    rc = main(["--out", str(tmp_path / "cli"), "--config", str(REPO / "configs/bench/default.yaml"),
               "categories=[multiple,live_parallel]", "max_examples_per_category=3"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "pairs by split x error type" in text and "live_parallel" in text and "test_obfuscated" in text
    ex = json.loads((tmp_path / "cli" / "stats.json").read_text())["examples"]
    assert ex["examples_read"] == 200 + 16 and ex["examples_not_sampled"] == 197 + 13


def test_chosen_surface_match_rejected(tmp_path):
    from fcrm_ray.toolcall.surface import detect_style

    stats = build(_cfg(tmp_path / "m", "categories=[multiple]", "chosen_surface=match_rejected", "obfuscate_test=false"))
    rows = read_pairs(tmp_path / "m")
    assert rows and stats["counters"]["chosen_canonical_matched_surface"] == len(rows)
    for r in rows:
        want = detect_style(r["rejected_output"]) or "json"
        got = detect_style(r["chosen_output"])
        assert got == want or (want == "json_object" and got == "json")  # several calls cannot be one object
        ref = reference_from_bfcl(json.loads(r["reference"]))
        assert verify(r["chosen_output"], ref, normalize_tools(json.loads(r["tools"]))).correct


def test_composed_parallel_examples_are_train_only_and_verified(tmp_path):
    stats = build(_cfg(tmp_path / "c", "categories=[simple_python,live_simple]", "max_examples_per_category=12",
                       "compose_parallel=3"))
    rows = read_pairs(tmp_path / "c")
    composed = [r for r in rows if r["category"] == "composed_parallel"]
    assert composed and stats["counters"]["composed_examples"] == 3
    assert {r["split"] for r in composed} == {"train"}  # never validation or test
    assert any(r["obfuscated"] for r in composed)  # augmented like any train pair
    for r in composed:
        ref = reference_from_bfcl(json.loads(r["reference"]))
        tools = normalize_tools(json.loads(r["tools"]))
        assert len(ref) == 2 and verify(r["chosen_output"], ref, tools).correct
        vr = verify(r["rejected_output"], ref, tools)
        assert not vr.correct and vr.error_type == r["error_type"]
    # the composites' parts are train examples
    train_ids = {r["example_id"] for r in rows if r["split"] == "train" and r["category"] == "live_simple"}
    parts = {p for r in composed if not r["obfuscated"] for p in r["example_id"].removeprefix("compose:").split("+")}
    assert parts <= train_ids
