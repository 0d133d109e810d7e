"""Pure metric functions on hand-made scores with known answers."""

import math

import pytest

from fcrm_ray.evaluate import metrics as M


def test_pair_outcome_ties_and_missing_count_half():
    assert M.pair_outcome(2.0, 1.0) == 1.0
    assert M.pair_outcome(1.0, 2.0) == 0.0
    assert M.pair_outcome(1.5, 1.5) == 0.5
    assert M.pair_outcome(float("nan"), 1.0) == 0.5
    assert M.pair_outcome(None, 1.0) == 0.5


def test_pairwise_accuracy_known_answer():
    chosen = [3, 1, 2, 5, 0]
    rejected = [1, 2, 2, 4, 0]
    # wins: 1, 0, 0.5, 1, 0.5 -> 3/5
    assert M.pairwise_accuracy(chosen, rejected) == pytest.approx(0.6)
    assert math.isnan(M.pairwise_accuracy([], []))
    with pytest.raises(ValueError):
        M.pairwise_accuracy([1, 2], [1])


def test_bootstrap_ci_contains_mean_is_seeded_and_narrows():
    vals = [1.0] * 70 + [0.0] * 30
    lo, hi = M.bootstrap_ci(vals, n_boot=500, seed=1)
    assert lo < 0.7 < hi
    assert 0.55 < lo and hi < 0.85
    assert M.bootstrap_ci(vals, n_boot=500, seed=1) == (lo, hi)
    assert M.bootstrap_ci(vals, n_boot=500, seed=2) != (lo, hi)
    lo4, hi4 = M.bootstrap_ci(vals * 4, n_boot=500, seed=1)
    assert hi4 - lo4 < hi - lo
    # degenerate inputs
    assert M.bootstrap_ci([1.0, 1.0, 1.0], n_boot=100) == (1.0, 1.0)
    assert M.bootstrap_ci([0.25]) == (0.25, 0.25)
    assert all(math.isnan(x) for x in M.bootstrap_ci([]))


def test_pairwise_metrics_groups_and_counts():
    rows = [
        {"error_type": "incorrect_function_name", "category": "simple", "source": "bfcl", "generator": "a"},
        {"error_type": "incorrect_function_name", "category": "simple", "source": "bfcl", "generator": "b"},
        {"error_type": "incorrect_parameter_value", "category": "multiple", "source": "bfcl", "generator": "a"},
        {"error_type": "incorrect_parameter_value", "category": "multiple", "source": "xlam", "generator": ""},
    ]
    chosen = [2.0, 0.0, 1.0, float("nan")]
    rejected = [1.0, 1.0, 1.0, 0.0]
    m = M.pairwise_metrics(rows, chosen, rejected, n_boot=200, seed=0)
    assert m["n"] == 4 and m["n_unscored"] == 1 and m["ties"] == 2
    assert m["accuracy"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert m["per_error_type"]["incorrect_function_name"]["accuracy"] == pytest.approx(0.5)
    assert m["per_error_type"]["incorrect_parameter_value"]["accuracy"] == pytest.approx(0.5)
    assert m["per_generator"]["a"]["accuracy"] == pytest.approx(0.75)
    assert m["per_generator"]["unknown"]["n"] == 1
    assert m["per_source"]["bfcl"]["n"] == 3
    assert sum(g["n"] for g in m["per_category"].values()) == 4
    lo, hi = m["ci95"]
    assert lo <= m["accuracy"] <= hi


def test_bon_select_argmax_earliest_on_ties():
    assert M.bon_select([0.1, 0.9, 0.5], 3) == 1
    assert M.bon_select([0.1, 0.9, 0.5], 1) == 0
    assert M.bon_select([0.5, 0.7, 0.7], 3) == 1
    assert M.bon_select([1.0, 1.0, 1.0], 3) == 0
    assert M.bon_select([float("nan"), 0.2], 2) == 1


def test_majority_select_tie_break_first_occurrence():
    assert M.majority_select(["a", "b", "b", "c"], 4) == 1
    assert M.majority_select(["a", "b", "b", "a"], 4) == 0  # 2-2 tie: 'a' seen first
    assert M.majority_select(["a", "b", "c"], 3) == 0
    assert M.majority_select(["x", "y", "y"], 1) == 0


def test_baselines_on_toy_pool():
    correct = [False, False, True, True]
    assert M.first_sample_correct(correct, 4) == 0.0
    assert M.random_expected(correct, 4) == 0.5
    assert M.random_expected(correct, 2) == 0.0
    assert M.oracle_correct(correct, 2) == 0.0
    assert M.oracle_correct(correct, 3) == 1.0


def test_bon_curve_known_answer():
    # pool A: RM finds the right one at n>=2; majority wrong at n=4 (two identical wrong answers).
    a = {"scores": [0.0, 1.0, 0.5, 0.2], "correct": [False, True, False, False], "keys": ["w", "r", "w", "w2"]}
    # pool B: RM prefers a wrong one; first sample right; majority right.
    b = {"scores": [0.1, 0.2, 0.9, 0.0], "correct": [True, True, False, True], "keys": ["r", "r", "w", "r"]}
    curve = M.bon_curve([a, b], ns=(1, 2, 4, 8), n_boot=50)
    assert sorted(curve) == [1, 2, 4]  # n=8 exceeds the pools
    assert curve[1]["rm"]["accuracy"] == 0.5 and curve[1]["first"]["accuracy"] == 0.5
    assert curve[2]["rm"]["accuracy"] == 1.0  # A picks idx1 (right), B picks idx1 (right)
    assert curve[4]["rm"]["accuracy"] == 0.5  # A idx1 right; B idx2 wrong
    assert curve[4]["majority"]["accuracy"] == 0.5  # A: 'w' x2 wrong; B: 'r' x3 right
    assert curve[4]["random"]["accuracy"] == pytest.approx((0.25 + 0.75) / 2)
    assert curve[4]["oracle"]["accuracy"] == 1.0
    assert curve[4]["pools"] == 2
    for n, row in curve.items():
        for sel in M.SELECTORS:
            assert row[sel]["accuracy"] <= row["oracle"]["accuracy"] + 1e-12


def test_bon_curve_skips_small_pools_at_large_n():
    big = {"scores": [0, 1], "correct": [False, True], "keys": ["a", "b"]}
    small = {"scores": [0], "correct": [False], "keys": ["a"]}
    curve = M.bon_curve([big, small], ns=(1, 2), n_boot=10)
    assert curve[1]["pools"] == 2 and curve[2]["pools"] == 1
    assert curve[2]["rm"]["accuracy"] == 1.0
