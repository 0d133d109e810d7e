from collections import Counter

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.data.sources import read_bfcl
from fcrm_ray.data.splits import SplitConfig, assign_split, assign_splits, split_counts, unit_hash
from fcrm_ray.paths import BFCL_LIVE, BFCL_NON_LIVE
from fcrm_ray.toolcall.schema import Example


def _ex(i, cat):
    return Example(id=f"{cat}_{i}", tools=[], conversation=[], reference=[], category=cat)


def test_unit_hash_is_deterministic_and_seed_dependent():
    assert unit_hash(0, "a") == unit_hash(0, "a")
    assert unit_hash(0, "a") != unit_hash(1, "a")
    assert all(0.0 <= unit_hash(3, str(i)) < 1.0 for i in range(200))


def test_by_example_fractions_and_determinism():
    cfg = SplitConfig(mode="by_example", seed=7, train_fraction=0.6, test_fraction=0.3)
    ids = [f"ex{i}" for i in range(3000)]
    a = [assign_split(i, "any", cfg) for i in ids]
    assert a == [assign_split(i, "any", cfg) for i in reversed(ids)][::-1]  # order-independent
    c = Counter(a)
    assert set(c) == {"train", "validation", "test"}
    assert abs(c["train"] / 3000 - 0.6) < 0.04 and abs(c["test"] / 3000 - 0.3) < 0.04
    other = [assign_split(i, "any", SplitConfig(mode="by_example", seed=8, train_fraction=0.6, test_fraction=0.3)) for i in ids]
    assert other != a  # the seed matters


def test_default_is_out_of_domain_by_category():
    cfg = SplitConfig()
    exs = [_ex(i, c) for c in BFCL_LIVE + BFCL_NON_LIVE for i in range(100)]
    got = assign_splits(exs, cfg)
    for e in exs:
        s = got[e.id]
        if e.category in BFCL_NON_LIVE:
            assert s == "test"
        else:
            assert s in ("train", "validation")
    c = split_counts(got)
    assert c["validation"] > 0 and c["train"] > c["validation"]
    assert assign_split("x", "simple_java", cfg) in ("train", "validation")  # empty train list = the rest
    assert split_counts({"x": None})["unassigned"] == 1


def test_every_example_in_exactly_one_split_on_real_bfcl():
    exs = list(read_bfcl())
    got = assign_splits(exs)
    assert len(got) == len(exs)  # BFCL ids are unique: one split each
    by_split = {}
    for eid, s in got.items():
        by_split.setdefault(s, set()).add(eid)
    assert set(by_split) == {"train", "validation", "test"}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["validation"])
    assert {e.category for e in exs if got[e.id] == "test"} == set(BFCL_NON_LIVE)


def test_conflicting_categories_for_one_id_is_an_error():
    with pytest.raises(ValueError, match="appears in categories"):
        assign_splits([_ex(1, "live_simple"), Example(id="live_simple_1", tools=[], conversation=[], reference=[], category="multiple")])


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="splits.mode"):
        load_config(SplitConfig, overrides=["mode=nope"])
    with pytest.raises(ConfigError, match="in both"):
        load_config(SplitConfig, overrides=["train_categories=[a,b]", "test_categories=[b]"])


def test_config_api():
    ex = _ex(3, "live_multiple")
    assert assign_split(ex) == assign_split(ex.id, "live_multiple")
    assert assign_split(_ex(3, "multiple"), cfg=SplitConfig(mode="by_category")) == "test"
    # by_category with only test categories named: everything else (even non-BFCL) is train/val
    only_multiple = SplitConfig(mode="by_category", test_categories=["multiple"])
    assert assign_split(_ex(1, "xlam"), cfg=only_multiple) in ("train", "validation")
    assert assign_split(_ex(1, "multiple"), cfg=only_multiple) == "test"
    by_example = SplitConfig(mode="by_example", train_fraction=0.5, test_fraction=0.3, seed=1)
    got = Counter(assign_split(_ex(i, "xlam"), cfg=by_example) for i in range(3000))
    assert abs(got["validation"] / 3000 - 0.2) < 0.04 and abs(got["test"] / 3000 - 0.3) < 0.04
    named = SplitConfig(train_categories=["live_simple"])
    assert assign_split(_ex(1, "live_multiple"), cfg=named) is None


@pytest.mark.parametrize("old, new", [("out_of_domain", "by_category"), ("random", "by_example")])
def test_old_mode_names_fail_naming_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"splits.mode.*use '{new}'"):
        load_config(SplitConfig, overrides=[f"mode={old}"])


# --- one split definition for every stage -----------------------------------------------------------


def test_generate_and_bench_share_one_split_config():
    from fcrm_ray.data.bench import BenchConfig
    from fcrm_ray.generate.config import GenerateConfig

    bench = load_config(BenchConfig, "configs/bench/default.yaml").splits
    assert GenerateConfig().splits == BenchConfig().splits == SplitConfig()
    for name in ("cpu.yaml", "gpu.yaml"):
        assert load_config(GenerateConfig, f"configs/generate/{name}").splits == bench, name
    assert bench.validation_fraction == 0.25


@pytest.mark.parametrize("override, new_key", [
    ("split.strategy=random", "splits.mode"),
    ("split.validation_fraction=0.05", "splits.validation_fraction"),
    ("split.test_categories=[multiple]", "splits.test_categories"),
    ("split.fixed=train", "splits.train_categories"),
])
def test_old_generate_split_keys_fail_naming_the_new_key(override, new_key):
    from fcrm_ray.generate.config import GenerateConfig

    with pytest.raises(ConfigError, match=new_key.replace(".", r"\.")) as err:
        load_config(GenerateConfig, "configs/generate/cpu.yaml", [override])
    assert f"`{override.split('=')[0]}`" in str(err.value)  # and names the old one


def test_old_generate_split_section_in_a_yaml_fails(tmp_path):
    from fcrm_ray.generate.config import GenerateConfig

    old = tmp_path / "old.yaml"
    old.write_text("split:\n  strategy: out_of_domain\n  validation_fraction: 0.05\n")
    with pytest.raises(ConfigError, match=r"`splits\.mode`"):
        load_config(GenerateConfig, old)


def test_bench_and_generate_assign_identical_splits(tmp_path):
    """The same examples through `fcrm bench build` and `fcrm generate`'s plan (its real config):
    every example lands in the same split, validation included."""
    import pyarrow.parquet as pq

    from fcrm_ray.data.bench import BenchConfig, build
    from fcrm_ray.data.pairs import read_pairs
    from fcrm_ray.generate import run as P
    from fcrm_ray.generate.config import GenerateConfig

    cats = ["simple_python", "live_simple", "live_multiple"]
    bench = load_config(BenchConfig, "configs/bench/default.yaml", [
        f"out={tmp_path / 'bench'}", f"categories={cats}", "max_examples_per_category=150", "compose_parallel=0",
        "obfuscate_train=0", "obfuscate_test=false", "jsonl=false",
        "negatives_per_type={incorrect_parameter_value: 0, incorrect_function_name: 1, "
        "incorrect_number_of_functions: 0, missing_optional_parameter: 0, missing_required_parameter: 0, "
        "incorrect_parameter_type: 0, unexpected_parameter: 0, incorrect_output_format: 0}"])
    build(bench)
    bench_split = {r["example_id"]: r["split"] for r in read_pairs(tmp_path / "bench")}

    gen = load_config(GenerateConfig, "configs/generate/cpu.yaml", [
        f"sources=[{{kind: bfcl, categories: {cats}, limit: 0}}]", f"out={tmp_path / 'gen'}"])
    layout = P.RunLayout(gen.out)
    P.load_or_plan(gen, layout)
    gen_split = {}
    for f in sorted(layout.inputs.glob("*.pq")):
        for r in pq.read_table(f, columns=["example_id", "split"]).to_pylist():
            gen_split[r["example_id"]] = r["split"]

    common = set(bench_split) & set(gen_split)
    assert len(common) >= 300
    assert {bench_split[i] for i in common} == {"train", "validation", "test"}
    assert {i: gen_split[i] for i in common} == {i: bench_split[i] for i in common}
    assert Counter(gen_split.values())["validation"] > 0.05 * Counter(gen_split.values())["train"]
