"""`fcrm generate` end to end on a small BFCL subset: mutation + a tiny local transformers model,
output read back with `read_pairs`, counts that add up, quarantine accounting, resume after the
driver is SIGKILLed, and a killed generator actor that Ray restarts without losing or duplicating
rows. Heavier tests are `slow`; all keep to <= 48 examples."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fcrm_ray.config import ConfigError
from fcrm_ray.data.pairs import PAIR_COLUMNS, read_pairs
from fcrm_ray.data.splits import SplitConfig
from fcrm_ray.generate import run as P
from fcrm_ray.generate.config import (ChosenConfig, DedupConfig, GenerateConfig, GeneratorConfig, MutationConfig,
                                      ObfuscationConfig, OutputConfig, RayDataConfig, SamplingConfig, SourceConfig)

REPO = Path(__file__).resolve().parents[1]
CATS = ["simple_python", "multiple", "live_simple", "live_multiple"]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from fcrm_ray.generate.backends import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny"))


def small_cfg(out_dir, model, limit=12, shard_size=3, hf_tokens=8, hf=True, obf=0.5) -> GenerateConfig:
    gens = [GeneratorConfig(name="mutation", backend="mutation", batch_size=8,
                            mutation=MutationConfig(mix={"incorrect_parameter_value": 2, "incorrect_function_name": 1,
                                                         "missing_required_parameter": 1,
                                                         "incorrect_output_format": 1})),
            GeneratorConfig(name="mutation-b", backend="mutation", seed=1, batch_size=8, compute="actors",
                            num_cpus=0.5)]
    if hf:
        gens.append(GeneratorConfig(name="tiny", backend="hf", model=model, batch_size=4, retries=0, num_cpus=0.5,
                                    sampling=SamplingConfig(n=2, temperature=1.0, max_new_tokens=hf_tokens)))
    return GenerateConfig(
        sources=[SourceConfig(kind="bfcl", categories=[c], limit=limit // len(CATS)) for c in CATS],
        splits=SplitConfig(mode="by_category"),
        obfuscation=ObfuscationConfig(fraction=obf, seed=0),
        generators=gens, chosen=ChosenConfig(variants=1),
        dedup=DedupConfig(max_per_example=10, max_per_error_type=2),
        out=str(out_dir), output=OutputConfig(shard_size=shard_size),
        ray=RayDataConfig(progress_bars=False))


def write_yaml(cfg: GenerateConfig, path: Path) -> Path:
    from fcrm_ray.config import to_yaml

    path.write_text(to_yaml(cfg))
    return path


@pytest.fixture(scope="module")
def reference_run(ray_local, tiny_lm, tmp_path_factory):
    """One uninterrupted run; the resume and actor-kill tests must reproduce its rows exactly."""
    out = tmp_path_factory.mktemp("gen") / "ref"
    cfg = small_cfg(out, tiny_lm)
    stats = P.run(cfg)
    return cfg, stats, out


def ids(out_dir) -> list[str]:
    return [r["id"] for r in read_pairs(out_dir)]


# --- fast ------------------------------------------------------------------------------------

def test_fingerprint_ignores_throughput_knobs_only(tmp_path):
    a = small_cfg(tmp_path / "a", "m")
    b = small_cfg(tmp_path / "b", "m")
    b.generators[0].batch_size = 99
    b.generators[2].max_actors = 2
    assert P.fingerprint(a) == P.fingerprint(b)
    b.generators[0].mutation.mix["incorrect_function_name"] = 3
    assert P.fingerprint(a) != P.fingerprint(b)


def test_plan_shards_quarantines_and_splits_per_example(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = {"id": "ok-1", "tools": [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}},
                                                                "required": ["x"]}}],
            "conversation": [{"role": "user", "content": "call f with 1"}], "reference": [{"f": {"x": [1]}}]}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "id": "bad-tools", "tools": "[{"}),
             json.dumps({**good, "id": "bad-ref", "reference": 7}), json.dumps(good)]  # last: repeated id
    bad.write_text("\n".join(lines) + "\n")
    cfg = small_cfg(tmp_path / "out", "m", limit=4, shard_size=2)  # 1 example per BFCL category
    cfg.sources.append(SourceConfig(kind="file", path=str(bad), name="mine"))
    cfg.splits = SplitConfig(test_categories=[], validation_fraction=0.0)  # every example in train
    layout = P.RunLayout(cfg.out)
    plan, reused = P.load_or_plan(cfg, layout)
    assert not reused
    assert plan["examples"] == 5 and plan["rows_in"] == 5 + sum(plan["quarantined"].values())
    assert sum(plan["quarantined"].values()) == 4  # unparseable line, bad tools, bad reference, duplicate id
    assert [s["examples"] for s in plan["shards"]] == [2, 2, 1]
    qlines = layout.quarantine.read_text().splitlines()
    assert len(qlines) == 4 and all(json.loads(q)["reason"] for q in qlines)
    # the same config resumes the same plan; a different config may not silently reuse the dir
    assert P.load_or_plan(cfg, layout) == (plan, True)
    layout.done.mkdir(parents=True)
    (layout.done / "shard-00000.json").write_text("{}")
    cfg.generators[0].seed = 9
    with pytest.raises(ConfigError, match="`out`"):
        P.load_or_plan(cfg, layout)


def test_cli_rejects_bad_config_before_ray(tmp_path):
    from fcrm_ray.cli import main

    assert main(["generate", "--config", "configs/generate/cpu.yaml", "output.shard_size=0"]) == 2
    assert main(["generate", "--config", str(tmp_path / "nope.yaml")]) == 2


# --- slow: end to end ------------------------------------------------------------------------

@pytest.mark.slow
def test_end_to_end_pairs_load_and_counts_add_up(reference_run):
    cfg, stats, out = reference_run
    rows = read_pairs(out)
    assert rows and len(rows) == stats["pairs_out"] == len({r["id"] for r in rows})
    assert all(set(r) == set(PAIR_COLUMNS) for r in rows)
    assert all(stats["checks"].values()), stats["checks"]
    assert json.loads((out / "stats.json").read_text())["pairs_out"] == len(rows)
    gens = {r["generator"].split(":")[0] for r in rows}
    assert gens == {"mutation", "mutation-b", "tiny"}, gens
    assert stats["by_generator"]["tiny"]["candidates"] == 2 * stats["examples"]  # n=2 samples per prompt
    # garbage from the random model is judged a format error; mutations carry their own types
    assert {r["error_type"] for r in rows if r["generator"] == "tiny"} <= {"incorrect_output_format"}
    assert len({r["error_type"] for r in rows if r["generator"].startswith("mutation")}) >= 3
    # split decided per example: one split per example, and both obfuscated and plain examples
    splits: dict[str, set] = {}
    for r in rows:
        splits.setdefault(r["example_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {r["obfuscated"] for r in rows} == {True, False}
    assert sum(stats["by_error_type"].values()) == sum(stats["by_source"].values()) == stats["pairs_out"]
    # dedup caps hold
    per_type: dict[tuple, int] = {}
    for r in rows:
        per_type[(r["example_id"], r["error_type"])] = per_type.get((r["example_id"], r["error_type"]), 0) + 1
    assert max(per_type.values()) <= 2


@pytest.mark.slow
def test_rerun_of_finished_run_is_a_no_op(reference_run):
    cfg, stats, out = reference_run
    again = P.run(cfg)
    assert again["shards_this_run"] == 0 and again["shards_resumed"] == stats["shards"]
    assert sorted(ids(out)) == sorted(r["id"] for r in read_pairs(out)) and again["pairs_out"] == stats["pairs_out"]


@pytest.mark.slow
def test_resume_after_driver_sigkill_matches_uninterrupted_run(reference_run, tmp_path):
    import ray

    cfg, stats, ref_out = reference_run
    out = tmp_path / "killed"
    # One example per shard and per hf batch, so shards finish one by one and the kill lands mid-run
    # (rows do not depend on shard or batch size: seeds and dedup are per example).
    cfg2 = small_cfg(out, cfg.generators[2].model, shard_size=1)
    cfg2.generators[2].batch_size = 1
    cfg2.ray.address = ray.get_runtime_context().gcs_address  # the driver joins our cluster: nothing leaks
    cfg2.output.fault_inject_after_shards = 3  # the driver dies right after its 3rd shard, as if SIGKILLed
    yaml = write_yaml(cfg2, tmp_path / "gen.yaml")
    proc = subprocess.run([sys.executable, "-m", "fcrm_ray.generate.run", "--config", str(yaml)], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1
    done = P.RunLayout(out).done
    n_done = len(list(done.glob("*.json")))
    assert n_done == 3 < stats["examples"]
    cfg2.output.fault_inject_after_shards = 0
    resumed = P.run(cfg2)
    assert resumed["shards_resumed"] == n_done and resumed["shards_this_run"] == stats["examples"] - n_done
    got, want = ids(out), ids(ref_out)
    assert len(got) == len(set(got)) and sorted(got) == sorted(want)
    assert sorted(read_pairs(out), key=lambda r: r["id"]) == sorted(read_pairs(ref_out), key=lambda r: r["id"])
    assert all(resumed["checks"].values()) and resumed["pairs_out"] == stats["pairs_out"]


def _actor_handles(class_part: str):
    """Handles of live actors whose class name contains `class_part`. Ray Data's pool actors are
    anonymous, so we look them up in the GCS table (private API; tests only)."""
    import ray
    from ray._private import state

    cw = ray._private.worker.global_worker.core_worker
    return [cw.get_actor_handle(ray.ActorID.from_hex(aid)) for aid, a in state.actors().items()
            if class_part in a.get("ActorClassName", "") and a.get("State") == "ALIVE"]


@pytest.mark.slow
def test_killed_generator_actor_restarts_and_loses_nothing(reference_run, tmp_path):
    import ray

    cfg, stats, ref_out = reference_run
    cfg2 = small_cfg(tmp_path / "actor-kill", cfg.generators[2].model)
    cfg2.generators[2].batch_size = 1  # one example per batch: many batches, so we can kill between them
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(stats=P.run(cfg2)), daemon=True)
    t.start()
    done = P.RunLayout(cfg2.out).done
    killed, first_seen = [], None
    deadline = time.time() + 120
    while t.is_alive() and time.time() < deadline and len(killed) < 2:
        handles = _actor_handles("HFGenerator")
        if handles and first_seen is None:
            first_seen = time.time()
        # kill as soon as the pool is up, then once more a second later (mid-batch on a slow machine)
        if handles and (not killed or (len(killed) == 1 and time.time() - first_seen > 1)):
            n_done = len(list(done.glob("*.json")))
            ray.kill(handles[0], no_restart=False)  # crash it; Ray restarts it and resubmits its batch
            killed.append(n_done)
        time.sleep(0.05)
    t.join(timeout=240)
    assert killed and killed[0] < stats["shards"], f"no generator actor was killed mid-run (seen: {first_seen})"
    assert "stats" in result and all(result["stats"]["checks"].values())
    got = ids(cfg2.out)
    assert len(got) == len(set(got)) and sorted(got) == sorted(ids(ref_out))


@pytest.mark.slow
def test_cli_runs_on_bfcl_subset_and_counts_quarantine(ray_local, tmp_path, capsys):
    src = tmp_path / "ex.jsonl"
    good = {"id": "a", "tools": [{"name": "add", "parameters": {"type": "object", "required": ["x", "y"],
                                                               "properties": {"x": {"type": "integer"},
                                                                              "y": {"type": "integer"}}}}],
            "conversation": [{"role": "user", "content": "add 2 and 3"}], "reference": [{"add": {"x": [2], "y": [3]}}]}
    src.write_text("\n".join([json.dumps(good), json.dumps({**good, "id": "b"}), "garbage",
                              json.dumps({**good, "id": "c", "reference": "[{"})]) + "\n")
    from fcrm_ray.generate.run import main

    rc = main(["--config", str(write_yaml(_cli_cfg(tmp_path, src), tmp_path / "c.yaml"))])
    assert rc == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rows_in"] == 4 + 6 and stats["quarantined"] == 2 and stats["examples"] == 8
    assert stats["rows_in"] == stats["examples"] + stats["quarantined"]
    assert "counts add up" in capsys.readouterr().out
    assert len(read_pairs(tmp_path / "out")) == stats["pairs_out"] > 0


def _cli_cfg(tmp_path, src) -> GenerateConfig:
    cfg = small_cfg(tmp_path / "out", "m", limit=12, shard_size=4, hf=False)
    cfg.sources = cfg.sources[:2] + [SourceConfig(kind="file", path=str(src), name="custom")]
    cfg.splits = SplitConfig(test_categories=[], validation_fraction=0.0)  # every example in train
    return cfg


def test_actor_pools_that_take_every_local_cpu_fail_early(ray_local, tiny_lm, tmp_path):
    """On the fixed-size local Ray (2 CPUs), pools reserving both CPUs would starve the read and
    judge tasks: a ConfigError naming the generator, before anything runs."""
    cfg = small_cfg(tmp_path / "out", tiny_lm)
    cfg.generators[2].num_cpus = 1.5  # + generators[1]'s 0.5 = 2.0 of 2 CPUs
    with pytest.raises(ConfigError, match=r"generators\[1\]\.num_cpus.*reserve 2\.0 of 2 CPUs"):
        P.check_resources(cfg)
    cfg.generators[2].num_cpus = 0.5
    P.check_resources(cfg)  # 1.0 of 2: fine
