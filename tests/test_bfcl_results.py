"""The `bfcl_results` source: BFCL result/score folders -> judged real outputs, pairs and pools.

The fixture is written here in the BFCL v2 layout (a few rows, no copied result files): two
models, three questions of the installed bfcl-eval wheel."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from fcrm_ray.data import bfcl_results as br
from fcrm_ray.data.sources import read_bfcl

V2 = "gorilla_openfunctions_v1_test_{}_result.json"


@pytest.fixture(scope="module")
def examples():
    return {e.id: e for e in read_bfcl(["simple_python", "parallel", "simple_java"])}


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _prompt(ex, qid, question=None):
    return {"id": qid, "question": question or ex.conversation[0]["content"],
            "function": [t.to_dict() for t in ex.tools]}


@pytest.fixture()
def results_dir(tmp_path, examples):
    root = tmp_path / "BFCL-Result" / "2024-08-11"
    tri, spot, java = examples["simple_python_0"], examples["parallel_0"], examples["simple_java_0"]
    # model A (FC format, underscores for dots): right on simple_0 and parallel_0, wrong value on java_0
    _write(root / "result" / "modelA-FC" / V2.format("simple"), [
        {"id": "simple_0", "result": [{"calculate_triangle_area": json.dumps({"base": 10, "height": 5})}]}])
    _write(root / "result" / "modelA-FC" / V2.format("parallel_function"), [
        {"id": "parallel_function_0", "result": [{"spotify_play": json.dumps({"artist": "Taylor Swift", "duration": 20})},
                                                 {"spotify_play": json.dumps({"artist": "Maroon 5", "duration": 15})}]}])
    _write(root / "result" / "modelA-FC" / V2.format("java"), [
        {"id": "java_0", "result": [{"GeometryPresentation_createPresentation":
                                     json.dumps({"controller": "mapCtrl", "parent": "mapArea"})}]}])
    _write(root / "score" / "modelA-FC" / "java_score.json", [
        {"accuracy": 0.0, "correct_count": 0, "total_count": 1},
        {"id": 1, "valid": False, "prompt": _prompt(java, "java_0", "How can I" + java.conversation[0]["content"][7:])}])
    _write(root / "score" / "modelA-FC" / "simple_score.json", [{"accuracy": 1.0}])
    _write(root / "score" / "modelA-FC" / "parallel_function_score.json", [{"accuracy": 1.0}])
    # model B (Python syntax): drops a call on parallel_0, wrong value on simple_0, and an output
    # whose question BFCL recorded differently (dropped as question_changed)
    _write(root / "result" / "gorilla-openfunctions-v2" / V2.format("simple"), [
        {"id": "simple_0", "result": "calculate_triangle_area(base=10, height=50)"}])
    _write(root / "result" / "gorilla-openfunctions-v2" / V2.format("parallel_function"), [
        {"id": "parallel_function_0", "result": "spotify.play(artist='Taylor Swift', duration=20)"}])
    _write(root / "score" / "gorilla-openfunctions-v2" / "simple_score.json", [
        {"accuracy": 0.0}, {"id": 1, "valid": False, "prompt": _prompt(tri, "simple_0")}])
    _write(root / "score" / "gorilla-openfunctions-v2" / "parallel_function_score.json", [
        {"accuracy": 0.0}, {"id": 1, "valid": False, "prompt": _prompt(spot, "parallel_function_0")}])
    return root


def test_ids_and_licences():
    assert br.wheel_id("simple_12", "simple") == "simple_python_12"
    assert br.wheel_id("multiple_function_3", "multiple_function") == "multiple_3"
    assert br.wheel_id("parallel_multiple_function_3", "parallel_multiple_function") == "parallel_multiple_3"
    assert br.wheel_id("java_3", "java") == "simple_java_3"
    assert br.wheel_id("live_simple_0-0-0", "live_simple") == "live_simple_0-0-0"
    assert br.model_licence("gorilla-openfunctions-v2") == ("Apache-2.0", True)
    assert br.model_licence("open-mixtral-8x22b-FC-Any")[1] is True
    assert br.model_licence("gpt-4o-2024-08-06-FC")[1] is False
    assert br.model_licence("some-new-model")[1] is False  # unknown: never trained on
    assert br.model_family("bfcl:claude-3-opus-20240229-FC") == "anthropic-claude"
    assert br.model_family("mutation:swap_values") == "mutation"


def test_find_files_v2_and_v3(tmp_path, results_dir):
    files = br.find_result_files(results_dir)
    assert {(f.model, f.category) for f in files} == {
        ("modelA-FC", "simple_python"), ("modelA-FC", "parallel"), ("modelA-FC", "simple_java"),
        ("gorilla-openfunctions-v2", "simple_python"), ("gorilla-openfunctions-v2", "parallel")}
    assert all(f.score is not None for f in files)
    v3 = tmp_path / "v3"
    _write(v3 / "result" / "m" / "BFCL_v3_simple_result.json", [{"id": "simple_0", "result": "x"}])
    _write(v3 / "result" / "m" / "live" / "BFCL_v4_live_simple_result.json", [{"id": "live_simple_0-0-0", "result": "x"}])
    assert sorted(f.category for f in br.find_result_files(v3)) == ["live_simple", "simple_python"]
    with pytest.raises(FileNotFoundError, match="no BFCL result files"):
        br.find_result_files(tmp_path / "v3" / "result" / "m" / "live")


def test_read_results_judges_with_our_verifier(results_dir, examples):
    outs, stats = br.read_results([results_dir], ["simple_python", "parallel", "simple_java"], examples)
    stats.check()
    got = {(o.model, o.example_id): o for o in outs}
    a = got[("modelA-FC", "parallel_0")]
    assert a.correct and json.loads(a.output)[0]["name"] == "spotify.play"  # FC name mapped back
    assert got[("modelA-FC", "simple_python_0")].correct
    java = got[("modelA-FC", "simple_java_0")]  # reworded question ("How can I" vs "Help me") still matches
    assert not java.correct and java.error_type == "incorrect_parameter_value" and java.bfcl_correct is False
    b = got[("gorilla-openfunctions-v2", "parallel_0")]
    assert not b.correct and b.error_type == "incorrect_number_of_functions"
    assert got[("gorilla-openfunctions-v2", "simple_python_0")].error_type == "incorrect_parameter_value"
    assert stats.outputs_read == 5 and stats.kept == 5


def test_disagreement_and_changed_question_are_dropped(results_dir, examples):
    tri = examples["simple_python_0"]
    # BFCL says model A failed simple_0 although our verifier accepts it; and it recorded another question
    _write(results_dir / "score" / "modelA-FC" / "simple_score.json", [
        {"accuracy": 0.0}, {"id": 1, "valid": False, "prompt": _prompt(tri, "simple_0")}])
    _write(results_dir / "score" / "gorilla-openfunctions-v2" / "parallel_function_score.json", [
        {"accuracy": 0.0}, {"id": 1, "valid": False,
                            "prompt": _prompt(examples["parallel_0"], "parallel_function_0", "Play three songs of Adele.")}])
    outs, stats = br.read_results([results_dir], ["simple_python", "parallel", "simple_java"], examples)
    assert stats.dropped["disagree_ours_correct_with_bfcl"] == 1
    assert sum(v for k, v in stats.dropped.items() if k.startswith("question_changed")) == 2  # both models' parallel_0
    assert stats.outputs_read == stats.kept + sum(stats.dropped.values()) == 5


def test_pairs_and_pools(results_dir, examples):
    outs, stats = br.read_results([results_dir], ["simple_python", "parallel", "simple_java"], examples)
    split_of = {"simple_python_0": "test_real", "parallel_0": "test_real", "simple_java_0": "train"}
    trainable = {"modelA-FC": False, "gorilla-openfunctions-v2": True}
    counters = Counter()
    rows = br.real_pairs(outs, examples, split_of, trainable, counters=counters)
    by = {(r["example_id"], r["generator"]): r for r in rows}
    # test pairs: every model; chosen = the OTHER model's correct real output
    p = by[("parallel_0", "bfcl:gorilla-openfunctions-v2")]
    assert p["split"] == "test_real" and p["source"] == "bfcl_results"
    assert json.loads(p["chosen_output"])[1]["arguments"] == {"artist": "Maroon 5", "duration": 15}
    assert p["error_type"] == "incorrect_number_of_functions"
    # train pairs: only licence-permissive models (model A's java error is not used)
    assert ("simple_java_0", "bfcl:modelA-FC") not in by and counters["real_not_trainable_licence"] == 1
    pools = br.bon_pools(outs, examples, pool_size=16, seed=0)
    assert {p["example_id"] for p in pools} == {"simple_python_0", "parallel_0"}  # java_0: one model only
    pool = next(p for p in pools if p["example_id"] == "parallel_0")
    assert sorted(pool["models"]) == ["gorilla-openfunctions-v2", "modelA-FC"] and len(pool["candidates"]) == 2
    assert br.bon_pools(outs, examples, pool_size=16, seed=0) == pools  # seeded order
    # the same outputs read in another order (folders listed or given differently), with a second
    # run of one model and a pool size that must drop some: the same pools
    twice = outs + [br.ModelOutput(**{**o.__dict__, "output": o.output + " "}) for o in outs]
    assert br.bon_pools(twice[::-1], examples, pool_size=3, seed=0) == br.bon_pools(twice, examples, pool_size=3, seed=0)
    assert (br.real_pairs(twice[::-1], examples, split_of, trainable, max_rejected_per_model=1)
            == br.real_pairs(twice, examples, split_of, trainable, max_rejected_per_model=1))


def test_bench_build_with_result_folders(tmp_path, results_dir):
    from fcrm_ray.config import load_config
    from fcrm_ray.data.bench import BenchConfig, build
    from fcrm_ray.data.pairs import read_pairs

    cfg = load_config(BenchConfig, None, [
        f"out={tmp_path / 'bench'}", "categories=[live_simple]", "max_examples_per_category=12",
        "obfuscate_train=0", "obfuscate_test=false", f"sources.bfcl_results=[{results_dir}]",
        "bfcl_results.categories=[simple_python,parallel,simple_java]"])
    stats = build(cfg)
    real = [r for r in read_pairs(tmp_path / "bench") if r["source"] == "bfcl_results"]
    # the held-out Python questions give test_real pairs (every model); model A's Java error is
    # not trained on (its licence is unknown), so no real train pair
    assert sorted((r["split"], r["example_id"]) for r in real) == [("test_real", "parallel_0"),
                                                                  ("test_real", "simple_python_0")]
    assert stats["bfcl_results"]["outputs_read"] == 5
    assert stats["bfcl_results"]["pools"] == {"train": 0, "validation": 0, "test": 2}
    assert (tmp_path / "bench" / "pools_real_validation.jsonl").read_text() == ""
    assert (tmp_path / "bench" / "pools_real_train.jsonl").read_text() == ""
    pools = [json.loads(line) for line in (tmp_path / "bench" / "pools_real.jsonl").read_text().splitlines()]
    assert {p["example_id"] for p in pools} == {"simple_python_0", "parallel_0"}


@pytest.mark.parametrize("train_models, n_pools", [("permissive", 0), ("all", 2)])
def test_train_pools_hold_trainable_models_only(tmp_path, results_dir, train_models, n_pools):
    """With the Python questions on the train side, their pools (model A + gorilla) go to
    pools_real_train.jsonl only when every member may be trained on: model A's licence is
    unknown, so under `permissive` each pool keeps one model, below the two a pool needs."""
    from fcrm_ray.config import load_config
    from fcrm_ray.data.bench import BenchConfig, build

    cfg = load_config(BenchConfig, None, [
        f"out={tmp_path / 'bench'}", "categories=[live_simple]", "max_examples_per_category=4",
        "obfuscate_train=0", "obfuscate_test=false", f"sources.bfcl_results=[{results_dir}]",
        "splits.test_categories=[]", "splits.validation_fraction=0", f"bfcl_results.train_models={train_models}",
        "bfcl_results.categories=[simple_python,parallel,simple_java]"])
    stats = build(cfg)
    assert stats["bfcl_results"]["pools"] == {"train": n_pools, "validation": 0, "test": 0}
    pools = [json.loads(line) for line in (tmp_path / "bench" / "pools_real_train.jsonl").read_text().splitlines()]
    assert len(pools) == n_pools
    for p in pools:
        assert sorted(p["models"]) == ["gorilla-openfunctions-v2", "modelA-FC"] and len(p["correct"]) == 2


def test_near_duplicate_questions_are_kept_out_of_training(examples):
    from fcrm_ray.data.bench import BenchConfig, near_duplicate_keys, question_key

    test_ex = examples["simple_python_0"]
    twin = replace(test_ex, id="live_simple_999-0-0", category="live_simple",
                   conversation=[{"role": "user", "content": "  find the AREA of a triangle with a base of 10 units "
                                                             "and height of 5 units."}])
    keys = near_duplicate_keys({"simple_python": [test_ex], "live_simple": [twin]}, BenchConfig())
    assert question_key(twin) in keys  # same text up to case/spaces and the same tool names
    other = replace(twin, tools=twin.tools[:0])
    assert question_key(other) not in keys


def test_two_runs_of_one_model_keep_their_own_score_files(tmp_path, examples):
    """v4 trees with one model in two runs (e.g. before/after a parser fix): each result file is
    cross-checked against ITS run's score file, and the same wrong answer written in both runs
    gives one pair, not two."""
    tri = examples["simple_python_0"]
    right = {"id": "simple_python_0", "result": [{"calculate_triangle_area": json.dumps({"base": 10, "height": 5})}]}
    wrong = {"id": "simple_python_0", "result": [{"calculate_triangle_area": json.dumps({"base": 10, "height": 50})}]}
    failed = [{"accuracy": 0.0}, {"id": "simple_python_0", "valid": False, "prompt": _prompt(tri, "simple_python_0")}]
    for run, rows, score in (("run1", [wrong], failed), ("run2", [right], [{"accuracy": 1.0}]),
                             ("run3", [wrong], failed)):
        base = tmp_path / run
        _write(base / "result" / "openai_gpt-oss-20b" / "non_live" / "BFCL_v4_simple_python_result.json", rows)
        _write(base / "score" / "openai_gpt-oss-20b" / "non_live" / "BFCL_v4_simple_python_score.json", score)
    outs, stats = br.read_results([tmp_path], ["simple_python"], examples)
    # keyed by model alone, run2's "all correct" score would overwrite run1's failure (or the
    # reverse) and one of the three outputs would be dropped as a checker disagreement
    assert stats.kept == 3 and not stats.dropped, stats.to_dict()
    assert sorted(o.correct for o in outs) == [False, False, True]
    assert br.model_licence("openai_gpt-oss-20b") == ("Apache-2.0", True)
    assert br.model_family("bfcl:openai_gpt-oss-20b") == "openai-gpt-oss"
    counters = Counter()
    rows = br.real_pairs(outs, examples, {"simple_python_0": "test_real"}, {}, counters=counters)
    assert len(rows) == 1 and counters["real_duplicate_output"] == 1


def test_executable_categories_v2_names(tmp_path):
    """v2 `executable_*` result/score files map to the wheel's exec_* questions (unused_datasets/):
    a dropped call in a parallel task is a real incorrect_number_of_functions negative, and an
    output BFCL's execution accepted but our verifier rejects (an integer written as a float
    string) is dropped as a checker disagreement, not labelled."""
    ex = {e.id: e for e in read_bfcl(["exec_parallel"])}
    q0 = ex["exec_parallel_0"]
    root = tmp_path / "2024-08-11"
    right = ("calc_binomial_probability(n=10, k=3, p=0.3); calc_binomial_probability(n=15, k=5, p=0.3); "
             "calc_binomial_probability(n=20, k=7, p=0.3);")
    _write(root / "result" / "open-mixtral-8x7b" / V2.format("executable_parallel_function"), [
        {"id": "executable_parallel_function_0", "result": "calc_binomial_probability(n=10, k=3, p=0.3)"}])
    _write(root / "score" / "open-mixtral-8x7b" / "executable_parallel_function_score.json", [
        {"accuracy": 0.0}, {"id": 0, "valid": False, "prompt": _prompt(q0, "executable_parallel_function_0")}])
    _write(root / "result" / "gorilla-openfunctions-v2" / V2.format("executable_parallel_function"), [
        {"id": "executable_parallel_function_0", "result": right}])
    _write(root / "score" / "gorilla-openfunctions-v2" / "executable_parallel_function_score.json", [{"accuracy": 1.0}])
    _write(root / "result" / "modelC" / V2.format("executable_parallel_function"), [
        {"id": "executable_parallel_function_0", "result": right.replace("n=10", "n='10'")}])
    _write(root / "score" / "modelC" / "executable_parallel_function_score.json", [{"accuracy": 1.0}])
    files = br.find_result_files(root)
    assert {f.category for f in files} == {"exec_parallel"}
    outs, stats = br.read_results([root], ["exec_parallel"], ex)
    stats.check()
    got = {o.model: o for o in outs}
    assert got["open-mixtral-8x7b"].error_type == "incorrect_number_of_functions"
    assert got["gorilla-openfunctions-v2"].correct
    assert "modelC" not in got and stats.dropped["disagree_ours_wrong_with_bfcl"] == 1
    counters = Counter()
    rows = br.real_pairs(outs, ex, {"exec_parallel_0": "train"}, {"open-mixtral-8x7b": True}, counters=counters)
    assert [r["generator"] for r in rows] == ["bfcl:open-mixtral-8x7b"] and rows[0]["split"] == "train"
