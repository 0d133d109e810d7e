"""End to end: `fcrm train` with the listwise Best-of-N objective beside the pairwise loss, on the
tiny causal LM (prompt-shared pairs, mask-free pool rows) and the tiny encoder (masked rows)."""

import json
import random

import pytest
import torch

from fcrm_ray.data.pairs import write_pairs
from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm

pytestmark = pytest.mark.slow

CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Oslo", "Lima"]
TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "parameters": {"type": "object", "required": ["city"], "properties": {
              "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
         {"name": "get_time", "description": "Local time in a city.",
          "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}]


def _call(name, **args):
    return json.dumps([{"name": name, "arguments": args}])


def toy_pairs(n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
        rows.append({"tools": TOOLS, "conversation": [{"role": "user", "content": f"Weather in {city} in {unit}?"}],
                     "chosen_output": _call("get_weather", city=city, unit=unit),
                     "rejected_output": _call("get_time", city=city), "error_type": "incorrect_function_name",
                     "generator": "toy", "example_id": f"ex{i}", "category": "toy",
                     "split": "train" if i % 10 < 8 else ("validation" if i % 10 == 8 else "test")})
    return rows


def toy_pools(n: int) -> list[str]:
    """n usable pools (one or two right answers among wrong city / function / extra parameter),
    plus one without a right answer (dropped) and two malformed rows (quarantined)."""
    rng = random.Random(1)
    lines = []
    for i in range(n):
        city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
        other = rng.choice([c for c in CITIES if c != city])
        cands = [_call("get_weather", city=city, unit=unit), _call("get_weather", city=other, unit=unit),
                 _call("get_time", city=city), _call("get_weather", city=city, unit=unit, days=3),
                 f"get_weather(city='{city}', unit='{unit}')"]  # the right call again in Python syntax
        correct = [True, False, False, False, True]
        order = list(range(len(cands)))
        rng.shuffle(order)
        lines.append(json.dumps({"example_id": f"pool{i}", "tools": json.dumps(TOOLS),
                                 "conversation": json.dumps([{"role": "user", "content": f"Weather in {city} in {unit}?"}]),
                                 "candidates": [cands[j] for j in order], "correct": [correct[j] for j in order]}))
    lines.append(json.dumps({"example_id": "all_wrong", "tools": json.dumps(TOOLS),
                             "conversation": json.dumps([{"role": "user", "content": "Weather in Rome?"}]),
                             "candidates": [_call("get_time", city="Rome"), _call("get_weather", city="Oslo")],
                             "correct": [False, False]}))
    lines.append(json.dumps({"example_id": "bad", "tools": "[]", "conversation": "[]", "candidates": ["x"], "correct": []}))
    lines.append("not json")
    return lines


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("listwise_e2e")
    write_pairs(toy_pairs(120), d / "pairs", "pairs")
    (d / "pools.jsonl").write_text("\n".join(toy_pools(12)) + "\n")
    build_tiny_qwen3_rm(d / "qwen")
    build_tiny_bert_rm(d / "bert")
    return d


@pytest.mark.parametrize("backbone, kind, extra", [
    ("qwen", "softmax", ["model.freeze_embeddings=true"]),
    ("bert", "hardest_negative", []),
])
def test_listwise_objective_trains_beside_the_pairs(ray_cluster, workdir, backbone, kind, extra):
    from transformers import AutoModelForSequenceClassification

    from fcrm_ray.train.run import main

    out = workdir / f"out-{backbone}"
    steps, per_step = 6, 2
    assert main(["--out", str(out), f"model.path={workdir / backbone}", f"data.train_path={workdir / 'pairs'}",
                 f"data.train_pools_path={workdir / 'pools.jsonl'}", "data.max_pool_candidates=4",
                 f"ckpt.storage_path={workdir / 'store'}", f"ckpt.name=lw-{backbone}", "train.strategy=single",
                 "train.micro_batch_size=4", f"train.max_steps={steps}", "train.eval_every=0", "train.log_every=1",
                 "train.lr=1e-3", "train.listwise_weight=0.5", f"train.listwise_loss={kind}",
                 f"train.pools_per_step={per_step}", "train.num_threads=2", "data.max_length=160",
                 "logging.wandb_mode=disabled", *extra]) == 0
    stats = json.loads((out / "data_stats.json").read_text())["train_pools"]
    assert stats["read"] == 15 and stats["kept"] == 12 and stats["quarantined"] == 2
    assert stats["dropped"] == {"no_positive": 1}
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) + stats["quarantined"]
    # the Python-syntax right answer renders like the JSON one: a duplicate; 4 of 4 left, capped at 4
    assert stats["candidates_left_out"]["duplicate"] == 12 and stats["candidates"] == 12 * 4
    quarantined = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sum(q["source"] == "train.train_pools" for q in quarantined) == 2
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [h for h in hist if "train/listwise_loss" in h]
    assert [h["step"] for h in steps_logged] == list(range(1, steps + 1))
    assert sum(h["train/pools_used"] for h in steps_logged) == steps * per_step  # every step, every pool used
    for h in steps_logged:
        assert h["train/loss"] == pytest.approx(h["train/bt_loss"] + 0.5 * h["train/listwise_loss"], rel=1e-4)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    init = AutoModelForSequenceClassification.from_pretrained(workdir / backbone)
    trained, before = model.state_dict(), init.state_dict()
    emb = next(k for k in before if "embed_tokens" in k or "word_embeddings" in k)
    assert torch.equal(trained[emb], before[emb]) == ("model.freeze_embeddings=true" in extra)
    assert any(not torch.equal(trained[k], before[k]) for k in before if k != emb)
