"""Quality, not only motion: `fcrm train` (the CPU recipe, a tiny random-init BERT, fixed seeds)
learns easy error kinds from the benchmark's TRAIN split (live categories) and ranks held-out
TEST pairs of the same kinds (non-live `simple_python`) well above chance and well above the
same model untrained, judged by `fcrm eval pairwise` on identical pairs.

The pair set is a small `fcrm bench build` with only the easy kinds (`EASY`); one Ray start, one
short training run (60 steps x 8 pairs), two evaluation passes of 240 pairs."""

from __future__ import annotations

import json

import pytest

from fcrm_ray.config import load_config

pytestmark = pytest.mark.slow

EASY = ("incorrect_output_format", "unexpected_parameter", "missing_required_parameter")
# Chance is 0.5. While this test was written the untrained model scored 0.46-0.72 on these 240
# pairs (a random init is not a coin: its reward follows surface features, so it moves with the
# rendering), the trained one 0.92-0.95; one optimizer step at lr 1e-12 instead of training fails
# the first assertion (recipe test pass 0.703 < 0.85).
MIN_ACCURACY = 0.85
MIN_GAIN_OVER_UNTRAINED = 0.10


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def easy_bench(out) -> dict:
    from fcrm_ray.data.bench import BenchConfig, build
    from fcrm_ray.toolcall.schema import ERROR_TYPES

    neg = ", ".join(f"{t}: {int(t in EASY)}" for t in ERROR_TYPES)
    cfg = load_config(BenchConfig, "configs/bench/default.yaml", [
        f"out={out}", "categories=[live_simple,simple_python]", "max_examples_per_category=80",
        "compose_parallel=0", "obfuscate_train=0", "obfuscate_test=false", "jsonl=false",
        f"negatives_per_type={{{neg}}}"])
    return build(cfg)


def test_trained_rm_beats_chance_and_its_untrained_self_on_held_out_pairs(ray_cluster, tmp_path):
    from fcrm_ray.evaluate import pairwise as PW
    from fcrm_ray.models import build_tiny_bert_rm
    from fcrm_ray.train.run import main as train

    bench = tmp_path / "bench"
    easy_bench(bench)
    untrained = str(build_tiny_bert_rm(tmp_path / "bert"))
    rm = tmp_path / "rm"
    assert train(["--config", "configs/train/cpu.yaml", "--out", str(rm), f"model.path={untrained}",
                  f"data.train_path={bench}", f"ckpt.storage_path={tmp_path / 'store'}", "ckpt.name=quality",
                  "train.max_steps=60", "train.micro_batch_size=8", "train.lr=3e-3", "train.eval_every=0",
                  "data.max_length=256", "data.max_train_rows=0", "data.max_test_rows=120",
                  "data.extra_eval_splits=[]", "logging.wandb_mode=disabled"]) == 0
    ev = json.loads((rm / "eval.json").read_text())
    assert set(ev["test"]["by_error_type"]) == set(EASY)
    assert ev["test"]["accuracy"] >= MIN_ACCURACY  # the recipe's own held-out pass

    # the same held-out pairs, both models, through `fcrm eval pairwise`
    assert PW.main(["--model", untrained, "--model", str(rm), "--data", str(bench), "--out", str(tmp_path / "eval"),
                    "model.max_length=256", "n_boot=200", "plots=false"]) == 0
    before, after = json.loads((tmp_path / "eval" / "summary.json").read_text())["models"]
    print(f"held-out pairwise accuracy: untrained {before['accuracy']:.3f}, trained {after['accuracy']:.3f} "
          f"{after['ci95']} on {after['n']} pairs; recipe test pass {ev['test']['accuracy']:.3f}")
    assert before["n"] == after["n"] >= 200
    assert set(after["per_error_type"]) == set(EASY)
    assert after["accuracy"] >= MIN_ACCURACY, after["accuracy"]
    assert after["ci95"][0] > 0.5 + 0.25  # a clear margin over chance, not a lucky draw
    assert after["accuracy"] >= before["accuracy"] + MIN_GAIN_OVER_UNTRAINED, (before["accuracy"], after["accuracy"])
