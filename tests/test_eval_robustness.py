"""Perturbations keep each side's verdict; `fcrm eval robustness` writes its report."""

import itertools
import json
import random

import pytest

from fcrm_ray.data.pairs import normalize_pair_row
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.data.sources import read_bfcl
from fcrm_ray.evaluate import perturb as P
from fcrm_ray.toolcall.mutate import chosen_variants, mutate_all
from fcrm_ray.toolcall.verify import verify


def bfcl_pairs(n_examples=4, categories=("multiple", "parallel_multiple")):
    """Pair rows (our schema) from a few BFCL examples: verified chosen variants vs mutations."""
    rows = []
    for cat in categories:
        for ex in itertools.islice(read_bfcl([cat], quarantine=Quarantine()), n_examples):
            rng = random.Random(ex.id)
            chosen = chosen_variants(ex, rng, 1)[0]
            for m in mutate_all(ex, rng):
                d = ex.to_dict()
                rows.append(normalize_pair_row({
                    "source": "bfcl", "example_id": ex.id, "category": ex.category, "tools": d["tools"],
                    "conversation": d["conversation"], "reference": d["reference"], "chosen_output": chosen,
                    "rejected_output": m.text, "error_type": m.error_type, "generator": f"mutation:{m.kind}",
                    "split": "test"}))
    return rows


@pytest.fixture(scope="module")
def pairs():
    return bfcl_pairs()


def _verdicts(row):
    tools, ref = json.loads(row["tools"]), json.loads(row["reference"])
    return (verify(row["chosen_output"], ref, tools).correct,
            verify(row["rejected_output"], ref, tools).error_type)


@pytest.mark.parametrize("name", P.PERTURBATIONS)
def test_perturbation_preserves_verdicts_and_is_seeded(pairs, name):
    out = P.perturb_rows(name, pairs, seed=3)
    assert len(out) == len(pairs)
    changed = 0
    for before, after in zip(pairs, out):
        assert after["id"] == before["id"] and after["error_type"] == before["error_type"]
        c, e = _verdicts(after)
        assert c is True
        # a format error stays a format error, every other error stays an error of its type
        assert e == before["error_type"], (name, before["rejected_output"], after["rejected_output"])
        changed += (after["tools"] != before["tools"]) or (after["chosen_output"] != before["chosen_output"])
    assert changed >= len(pairs) // 2
    assert P.perturb_rows(name, pairs, seed=3) == out
    assert P.perturb_rows(name, pairs, seed=4) != out
    assert pairs[0]["tools"] == bfcl_pairs(1, ("multiple",))[0]["tools"]  # inputs untouched


def test_obfuscate_renames_names_consistently(pairs):
    row = pairs[0]
    out = P.obfuscate_row(row, seed=0)
    names = [t["name"] for t in json.loads(row["tools"])]
    assert all(n not in out["tools"] for n in names)
    assert all(n not in out["chosen_output"] for n in names)
    assert out["obfuscated"] is True


def test_distractors_add_foreign_tools_without_name_clash(pairs):
    out = P.add_distractors(pairs, k=2, seed=0)
    for before, after in zip(pairs, out):
        b, a = json.loads(before["tools"]), json.loads(after["tools"])
        names = [t["name"] for t in a]
        assert len(names) == len(set(names))
        assert len(a) == len(b) + 2
        assert all(t in a for t in b)


def test_shuffle_tools_changes_order_only(pairs):
    row = next(r for r in pairs if len(json.loads(r["tools"])) > 1)
    out = P.shuffle_tools_row(row, seed=0)
    b, a = json.loads(row["tools"]), json.loads(out["tools"])
    assert a != b and sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))


def test_reorder_output_keeps_surface():
    rng = random.Random(0)
    text = '[{"name": "f", "arguments": {"a": 1, "b": 2, "c": 3, "d": 4}}]'
    outs = {P.reorder_output(text, random.Random(s)) for s in range(6)}
    assert len(outs) > 1 and all(json.loads(o)[0]["arguments"] == {"a": 1, "b": 2, "c": 3, "d": 4} for o in outs)
    py = "[f(a=1, b='x', c=3)]"
    out = P.reorder_output(py, rng)
    assert out.startswith("[f(") and "a=1" in out
    assert P.reorder_output("not a call {", rng) == "not a call {"


def test_unknown_perturbation():
    with pytest.raises(ValueError, match="unknown perturbation"):
        P.perturb_rows("paraphrase", [])


@pytest.mark.slow
def test_robustness_command_end_to_end(tmp_path, pairs):
    from fcrm_ray.data.pairs import write_pairs
    from fcrm_ray.evaluate import robustness as R
    from fcrm_ray.models import build_tiny_bert_rm

    rm = str(build_tiny_bert_rm(tmp_path / "rm"))
    data = write_pairs(pairs[:6], tmp_path / "data", "pairs")
    out = tmp_path / "rob"
    assert R.main(["--model", rm, "--data", str(data), "--out", str(out), "--config", "configs/eval/robustness.yaml",
                   "n_boot=50", "model.max_length=256"]) == 0
    for f in ("robustness.json", "robustness.md", "robustness.png", "scores.parquet"):
        assert (out / f).is_file(), f
    r = json.loads((out / "robustness.json").read_text())
    assert set(r["perturbations"]) == set(P.PERTURBATIONS)
    for name, p in r["perturbations"].items():
        assert p["n"] + p["skipped"] == r["clean"]["n"] == 6
        assert p["drop"] == pytest.approx(p["clean_accuracy_same_rows"] - p["accuracy"])
    import pyarrow.parquet as pq

    recs = pq.read_table(out / "scores.parquet").to_pylist()
    assert len(recs) == 6 * (1 + len(P.PERTURBATIONS))


def test_robustness_config_rejects_unknown_perturbation(tmp_path):
    from fcrm_ray.config import ConfigError, load_config
    from fcrm_ray.evaluate.config import RobustnessConfig

    with pytest.raises(ConfigError, match="perturbations"):
        load_config(RobustnessConfig, "configs/eval/robustness.yaml", ["perturbations=[paraphrase]"])
