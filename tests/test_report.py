"""`fcrm report` over pairwise / BoN / robustness / training runs written by the real writers."""

import base64
import json
import re

import pytest

from fcrm_ray.cli import main as cli_main
from fcrm_ray.evaluate import bon as B
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate import robustness as R
from fcrm_ray.evaluate.report import build_report, md_table, save_group_bars, write_pairwise_outputs

ROWS = [{"id": f"p{i}", "example_id": f"e{i}", "source": "bfcl", "category": "simple" if i % 2 else "multiple",
         "error_type": ["incorrect_function_name", "incorrect_parameter_value"][i % 2], "generator": "g"} for i in range(6)]


def _pairwise_run(out, name, chosen, rejected):
    m = M.pairwise_metrics(ROWS, chosen, rejected, n_boot=50)
    m = {**m, "model": name, "model_path": f"/models/{name}", "data": "pairs.parquet", "split": "test"}
    write_pairwise_outputs(out, ROWS, chosen, rejected, m)
    return m


@pytest.fixture()
def runs(tmp_path):
    a = _pairwise_run(tmp_path / "pw-a", "rm-a", [1, 2, 3, 4, 5, 6], [0, 0, 0, 9, 9, 9])
    _pairwise_run(tmp_path / "pw-b", "rm-b", [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 2])
    pools = [{"scores": [0.1, 0.9, 0.3], "correct": [False, True, False], "keys": ["a", "b", "a"]}] * 3
    curve = M.bon_curve(pools, ns=(1, 2), n_boot=20)
    bon = tmp_path / "bon"
    bon.mkdir()
    b = {"model": "rm-a", "candidates": "pools.jsonl", "pools": 3, "quarantined": 0, "mean_pool_size": 3.0,
         "fraction_correct": 1 / 3, "curve": {str(n): v for n, v in curve.items()}}
    (bon / "bon.json").write_text(json.dumps(b))
    B.plot_curve(b["curve"], bon / "accuracy_vs_n.png", "toy")
    rob = {"model": "rm-a", "data": "pairs", "split": "test", "clean": {k: a[k] for k in ("accuracy", "n", "ci95", "per_error_type")},
           "perturbations": {"obfuscate": {"accuracy": 0.4, "n": 6, "ci95": [0.1, 0.7], "drop": a["accuracy"] - 0.4,
                                           "drop_ci95": [0.0, 0.2], "skipped": 0, "per_error_type": {}},
                             "shuffle_tools": {"accuracy": None, "n": 0, "skipped": 6}}}
    R.write_outputs(tmp_path / "rob", rob, [{"id": "p0", "perturbation": "clean", "correct": 1.0}])
    train = tmp_path / "train-run"
    train.mkdir()
    (train / "eval.json").write_text(json.dumps({"validation": {"accuracy": 0.7, "n": 10},
                                                 "test": {"accuracy": 0.65, "n": 20,
                                                          "by_error_type": {"incorrect_function_name": {"accuracy": 0.6, "n": 5}}}}))
    save_group_bars({"x": {"g": {"accuracy": 0.5, "ci95": [0.4, 0.6]}}}, train / "learning_curve.png")
    return tmp_path


def test_report_combines_all_runs(runs, tmp_path):
    out = tmp_path / "report"
    rc = cli_main(["report", str(runs / "pw-a"), str(runs / "pw-b"), str(runs / "bon"), str(runs / "rob"),
                   str(runs / "train-run"), "--out", str(out)])
    assert rc == 0
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    # models side by side in one table
    assert "rm-a" in html and "rm-b" in html
    assert re.search(r"\| incorrect_function_name \| 3 \| [0-9.]+ \[.*\] \| [0-9.]+ \[.*\] \|", md)
    for title in ("Pairwise accuracy", "Best-of-N", "Robustness", "Training run: train-run"):
        assert title in html and title in md
    # self-contained: every image inlined, none linked
    imgs = re.findall(r"src='([^']+)'", html)
    assert len(imgs) >= 5 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert base64.b64decode(imgs[0].split(",", 1)[1])[:4] == b"\x89PNG"
    links = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", md)
    assert links and all((out / l).is_file() for l in links)
    assert (out / "pairwise_per_error_type.png").is_file()


def test_report_finds_runs_in_parent_folder(runs, tmp_path):
    found = build_report([runs], tmp_path / "r2")
    assert set(found) == {"pairwise", "bon", "robustness", "train"}
    assert len(found["pairwise"]) == 2


def test_report_errors_on_folder_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli_main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert cli_main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2


def test_md_table_escapes_pipes():
    t = md_table(["a", "b"], [["x|y", 1]])
    assert t.splitlines()[2] == "| x\\|y | 1 |"
