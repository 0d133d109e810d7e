"""`fcrm eval pairwise` end to end on a tiny random-init RM (the judge's helpers: test_eval_judge.py)."""

import json

import pyarrow.parquet as pq
import pytest

from fcrm_ray.cli import main as cli_main
from fcrm_ray.config import ConfigError
from fcrm_ray.evaluate import pairwise as PW

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                         "required": ["city"]}},
         {"name": "get_time", "description": "Local time of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def _row(i, city, error_type, generator, split="test"):
    chosen = json.dumps([{"name": "get_weather", "arguments": {"city": city}}])
    rejected = {
        "incorrect_function_name": [{"name": "get_time", "arguments": {"city": city}}],
        "incorrect_parameter_value": [{"name": "get_weather", "arguments": {"city": city + "x"}}],
    }[error_type]
    return {"id": f"p{i}", "source": "toy", "example_id": f"e{i}", "category": "simple", "tools": TOOLS,
            "conversation": [{"role": "user", "content": f"What's the weather in {city}?"}],
            "reference": [{"get_weather": {"city": [city], "unit": [""]}}], "chosen_output": chosen,
            "rejected_output": json.dumps(rejected), "error_type": error_type, "generator": generator, "split": split}



@pytest.fixture()
def pair_file(tmp_path):
    rows = [_row(i, c, et, g) for i, (c, et, g) in enumerate([
        ("Paris", "incorrect_function_name", "m1"), ("Berlin", "incorrect_parameter_value", "m1"),
        ("Rome", "incorrect_function_name", "m2"), ("Oslo", "incorrect_parameter_value", "m2"),
        ("Lima", "incorrect_function_name", "m1")])]
    rows.append(_row(9, "Kyiv", "incorrect_function_name", "m1", split="train"))  # other split
    path = tmp_path / "pairs.jsonl"
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
        fh.write("not json\n")
        fh.write(json.dumps({"id": "bad", "tools": TOOLS}) + "\n")  # missing outputs
    return path


@pytest.mark.slow
def test_pairwise_end_to_end_writes_all_files(tiny_rm, pair_file, tmp_path):
    out = tmp_path / "eval"
    rc = cli_main(["eval", "pairwise", "--model", tiny_rm, "--data", str(pair_file), "--out", str(out),
                   "--config", "configs/eval/pairwise.yaml", "n_boot=200"])
    assert rc == 0
    for f in ("metrics.json", "scores.parquet", "metrics.md", "accuracy_per_error_type.png", "quarantine.jsonl"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "n", "ci95", "per_error_type", "per_category", "per_source", "per_generator", "model", "data"):
        assert key in m
    assert m["n"] == 5
    assert m["counts"] == {"read": 8, "quarantined": 2, "other_split": 1, "capped": 0, "evaluated": 5, "unrenderable": 0}
    assert sum(g["n"] for g in m["per_error_type"].values()) == 5
    scores = pq.read_table(out / "scores.parquet").to_pylist()
    assert [s["id"] for s in scores] == [f"p{i}" for i in range(5)]
    # metrics agree with the per-pair scores
    recomputed = [1.0 if s["chosen_reward"] > s["rejected_reward"] else 0.0 if s["chosen_reward"] < s["rejected_reward"]
                  else 0.5 for s in scores]
    assert [s["correct"] for s in scores] == recomputed
    assert m["accuracy"] == pytest.approx(sum(recomputed) / 5)
    assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
    assert "| incorrect_function_name |" in (out / "metrics.md").read_text()


@pytest.mark.slow
def test_pairwise_several_models_and_determinism(tiny_rm, pair_file, tmp_path):
    from fcrm_ray.models import build_tiny_bert_rm

    other = str(build_tiny_bert_rm(tmp_path / "rm2" / "other-rm", seed=1))
    out = tmp_path / "multi"
    assert PW.main(["--model", tiny_rm, "--model", other, "--data", str(pair_file), "--out", str(out), "n_boot=50"]) == 0
    a = json.loads((out / "tiny-bert-rm" / "metrics.json").read_text())
    b = json.loads((out / "other-rm" / "metrics.json").read_text())
    assert a["n"] == b["n"] == 5
    assert (out / "summary.md").is_file() and (out / "accuracy_per_error_type.png").is_file()
    assert {x["model"] for x in json.loads((out / "summary.json").read_text())["models"]} == {"tiny-bert-rm", "other-rm"}
    # same model, same data -> same numbers
    out2 = tmp_path / "again"
    assert PW.main(["--model", tiny_rm, "--data", str(pair_file), "--out", str(out2), "n_boot=50"]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["accuracy"] == a["accuracy"]


def test_not_a_reward_model_fails_before_scoring(tmp_path, pair_file, monkeypatch):
    bad = tmp_path / "lm"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))

    def boom(*a, **k):
        raise AssertionError("scored before checking the model")

    monkeypatch.setattr(PW, "score_rows", boom)
    monkeypatch.setattr(PW, "load_pairs", boom)
    with pytest.raises(ConfigError, match="not a reward model"):
        PW.main(["--model", str(bad), "--data", str(pair_file), "--out", str(tmp_path / "o")])
    assert cli_main(["eval", "pairwise", "--model", str(bad), "--data", str(pair_file), "--out", str(tmp_path / "o")]) == 2


def test_config_errors_name_the_key(tmp_path, pair_file, tiny_rm):
    with pytest.raises(ConfigError, match="scorer"):
        PW.main(["--model", tiny_rm, "--data", str(pair_file), "--out", str(tmp_path), "scorer=magic"])
    with pytest.raises(ConfigError, match="split"):
        PW.main(["--model", tiny_rm, "--data", str(pair_file), "--out", str(tmp_path), "--split", "validation"])
    with pytest.raises(ConfigError, match="data"):
        PW.main(["--model", tiny_rm, "--data", str(tmp_path / "nope"), "--out", str(tmp_path)])


def test_subset_is_stable():
    rows = [{"id": f"r{i}"} for i in range(50)]
    a = PW.subset(rows, 10)
    assert len(a) == 10 and PW.subset(list(reversed(rows)), 10) == list(reversed(a))


def test_vllm_judge_without_vllm_is_a_clear_error(tmp_path, pair_file, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a CPU-only machine
    judge_dir = tmp_path / "judge"
    judge_dir.mkdir()
    with pytest.raises(ConfigError, match="vllm_judge"):
        PW.main(["--model", str(judge_dir), "--data", str(pair_file), "--out", str(tmp_path / "o"), "scorer=vllm_judge"])


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_matches_local(tiny_rm, pair_file, tmp_path, ray_cluster):
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert PW.main(["--model", tiny_rm, "--data", str(pair_file), "--out", str(local), "n_boot=20"]) == 0
    assert PW.main(["--model", tiny_rm, "--data", str(pair_file), "--out", str(ray_out), "n_boot=20",
                    "backend=ray", "actors.num_actors=1", "actors.batch_size=4"]) == 0
    a = pq.read_table(local / "scores.parquet").to_pylist()
    b = pq.read_table(ray_out / "scores.parquet").to_pylist()
    assert [x["id"] for x in a] == [x["id"] for x in b]
    for x, y in zip(a, b):
        assert x["chosen_reward"] == pytest.approx(y["chosen_reward"], abs=1e-5)
        assert x["rejected_reward"] == pytest.approx(y["rejected_reward"], abs=1e-5)
    assert json.loads((ray_out / "metrics.json").read_text())["backend"] == "ray"
