"""End to end: `fcrm train` with 2 Ray Train workers and DeepSpeed ZeRO-3 on CPU (tiny Qwen3),
a crash-and-resume run against an uninterrupted one, and the single-process path (tiny BERT)."""

import json
import random

import pytest
import torch

from fcrm_ray.data.pairs import write_pairs
from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm, forward_rewards

pytestmark = pytest.mark.slow

CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Oslo", "Lima"]
TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "parameters": {"type": "object", "required": ["city"], "properties": {
              "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
         {"name": "get_time", "description": "Local time in a city.",
          "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}]


def toy_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
        chosen = [{"name": "get_weather", "arguments": {"city": city, "unit": unit}}]
        if (i // 10) % 2:  # alternate by block so every split gets both error types
            rejected, err = [{"name": "get_time", "arguments": {"city": city}}], "incorrect_function_name"
        else:
            rejected, err = [{"name": "get_weather", "arguments": {"city": city, "unit": unit, "days": 3}}], "unexpected_parameter"
        split = "train" if i % 10 < 8 else ("validation" if i % 10 == 8 else "test")
        rows.append({"tools": TOOLS, "conversation": [{"role": "user", "content": f"Weather in {city} in {unit}?"}],
                     "chosen_output": json.dumps(chosen), "rejected_output": json.dumps(rejected), "error_type": err,
                     "generator": "toy", "example_id": f"ex{i}", "category": "toy", "split": split})
    rows.append({**rows[0], "example_id": "empty", "rejected_output": "  "})  # quarantined, counted
    rows += [{**r, "split": "test_obfuscated"} for r in rows if r["split"] == "test"][:10]  # extra eval split
    return rows


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_e2e")
    write_pairs(toy_pairs(200), d / "pairs", "pairs")
    build_tiny_qwen3_rm(d / "qwen")
    build_tiny_bert_rm(d / "bert")
    return d


def _train(workdir, name, extra=()):
    from fcrm_ray.train.run import main

    out = workdir / f"out-{name}"
    args = ["--out", str(out), f"model.path={workdir / 'qwen'}", f"data.train_path={workdir / 'pairs'}",
            f"ckpt.storage_path={workdir / 'store'}", f"ckpt.name={name}", "scaling.num_workers=2",
            "train.strategy=deepspeed", "train.num_threads=1", "train.micro_batch_size=4",
            "train.gradient_accumulation_steps=2", "train.max_steps=8", "train.eval_every=3", "train.log_every=1",
            "train.lr=1e-3", "data.max_length=160", "logging.wandb_mode=disabled", *extra]
    assert main(args) == 0
    return out


def _history(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_deepspeed_zero3_two_workers_resume_after_worker_crash(ray_cluster, workdir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fcrm_ray.train.data import tokenize_pair

    clean = _train(workdir, "clean")
    crashed = _train(workdir, "crash", ["train.fault_inject_step=5", "scaling.max_failures=1"])

    # artifacts of a finished run
    for out in (clean, crashed):
        for f in ("config.json", "model.safetensors", "tokenizer.json", "reward_stats.json", "eval.json",
                  "metrics.jsonl", "learning_curve.png", "data_stats.json"):
            assert (out / f).is_file(), f
    stats = json.loads((clean / "data_stats.json").read_text())
    assert stats["train"]["dropped"] == {"empty_call": 1}
    assert stats["train"]["kept"] + 1 == stats["train"]["read"]
    ev = json.loads((clean / "eval.json").read_text())
    assert ev["validation"]["n"] == 20 and ev["test"]["n"] == 20 and ev["test_obfuscated"]["n"] == 10
    assert set(ev["test"]["by_error_type"]) == {"incorrect_function_name", "unexpected_parameter"}

    # the crashed run resumed from its step-3 checkpoint and finished with the same step count
    h_clean, h_crash = _history(clean), _history(crashed)
    resumed = [h for h in h_crash if h.get("event") == "resumed"]
    assert [h["step"] for h in resumed] == [3]
    last = lambda h: [r for r in h if "train/loss" in r][-1]  # noqa: E731
    assert last(h_clean)["step"] == last(h_crash)["step"] == 8
    # same data order and restored optimizer state: the final model matches within noise
    ev_crash = json.loads((crashed / "eval.json").read_text())
    assert ev_crash["validation"]["reward_mean"] == pytest.approx(ev["validation"]["reward_mean"], abs=1e-3)
    assert ev_crash["validation"]["accuracy"] == pytest.approx(ev["validation"]["accuracy"], abs=0.1)

    # checkpoint round trip: plain transformers reproduces the rewards the run recorded
    model = AutoModelForSequenceClassification.from_pretrained(clean).eval()
    tok = AutoTokenizer.from_pretrained(clean)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    from fcrm_ray.data.pairs import read_pairs

    rows = [tokenize_pair(r, tok, 160) for r in read_pairs(workdir / "pairs", split="validation")]
    rewards = []
    with torch.no_grad():
        for r in rows:
            for ids in (r["chosen_ids"], r["rejected_ids"]):
                t = torch.tensor([ids])
                rewards.append(forward_rewards(model, t, torch.ones_like(t)).item())
    rs = json.loads((clean / "reward_stats.json").read_text())
    assert sum(rewards) / len(rewards) == pytest.approx(rs["mean"], abs=1e-4)


def test_single_process_strategy_trains_an_encoder(ray_cluster, workdir):
    from transformers import AutoModelForSequenceClassification

    from fcrm_ray.train.run import main

    out = workdir / "out-bert"
    assert main(["--out", str(out), f"model.path={workdir / 'bert'}", f"data.train_path={workdir / 'pairs'}",
                 f"ckpt.storage_path={workdir / 'store'}", "ckpt.name=bert", "train.strategy=single",
                 "train.micro_batch_size=8", "train.max_steps=30", "train.eval_every=10", "train.lr=2e-3",
                 "train.num_threads=2", "data.max_length=128", "logging.wandb_mode=disabled"]) == 0
    hist = _history(out)
    assert [h["step"] for h in hist if "train/loss" in h] == [10, 20, 30]
    assert [h["step"] for h in hist if "validation/accuracy" in h] == [10, 20, 30]  # 2 periodic + final
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 1
    init = AutoModelForSequenceClassification.from_pretrained(workdir / "bert")
    trained, before = model.state_dict(), init.state_dict()
    assert set(trained) == set(before)
    assert any(not torch.equal(trained[k], before[k]) for k in before)  # the optimizer stepped
    ev = json.loads((out / "eval.json").read_text())
    assert ev["test"]["n"] == 20
    # and it learned: held-out pairs (chance 0.5) ranked right with a clear margin, both error kinds
    print("single-process encoder eval:", {s: ev[s]["accuracy"] for s in ("validation", "test")})
    assert ev["test"]["accuracy"] >= 0.8 and ev["validation"]["accuracy"] >= 0.8
    assert all(g["accuracy"] > 0.5 for g in ev["test"]["by_error_type"].values())


def test_corrupt_latest_checkpoint_is_skipped_on_resume(ray_cluster, workdir):
    """A run crashes at step 5 (checkpoints at 2 and 4 kept); the step-4 checkpoint is then cut
    short, as by a node dying mid-upload. The rerun names it, skips it, resumes from step 2 and
    finishes at the configured step count."""
    from fcrm_ray.train.run import main

    out, name = workdir / "out-corrupt", "corrupt"
    args = ["--out", str(out), f"model.path={workdir / 'bert'}", f"data.train_path={workdir / 'pairs'}",
            f"ckpt.storage_path={workdir / 'store'}", f"ckpt.name={name}", "train.strategy=single",
            "train.micro_batch_size=8", "train.max_steps=8", "train.eval_every=4", "ckpt.every_steps=2",
            "ckpt.num_to_keep=2", "train.lr=2e-3", "train.num_threads=2", "data.max_length=128",
            "logging.wandb_mode=disabled"]
    with pytest.raises(Exception):
        main(args + ["train.fault_inject_step=5", "scaling.max_failures=0"])
    ckpts = sorted(p.name for p in (workdir / "store" / name).glob("checkpoint_*") if p.is_dir())
    assert ckpts == ["checkpoint_0000002", "checkpoint_0000004"], ckpts
    state = workdir / "store" / name / "checkpoint_0000004" / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    assert main(args) == 0
    hist = _history(out)
    skipped = [h for h in hist if h.get("event") == "checkpoint_skipped"]
    assert len(skipped) == 1 and skipped[0]["path"].endswith("checkpoint_0000004")
    assert "state.pt has" in skipped[0]["reason"] and "truncated" in skipped[0]["reason"]
    assert [h["step"] for h in hist if h.get("event") == "resumed"] == [2]
    assert [h["step"] for h in hist if "train/loss" in h][-1] == 8

    # the same ckpt.name with other settings would resume a model trained on something else: refused
    from fcrm_ray.config import ConfigError

    with pytest.raises(ConfigError, match=r"train\.lr: 0\.002 -> 0\.001"):
        main(args + ["train.lr=1e-3"])
