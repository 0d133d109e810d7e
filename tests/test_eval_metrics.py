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


def test_question_summary_counts_each_question_once_and_resamples_questions():
    # one big question (8 pairs, all wrong) and four small ones (1 pair each, all right)
    outcomes = [0.0] * 8 + [1.0] * 4
    questions = ["big"] * 8 + ["a", "b", "c", "d"]
    q = M.question_summary(outcomes, questions, n_boot=2000, seed=0)
    assert q["questions"] == 5 and q["max_pairs"] == 8
    assert q["accuracy"] == pytest.approx(4 / 5)  # per question; the pair accuracy is 4 / 12
    assert q["ci95"][0] <= q["accuracy"] <= q["ci95"][1]
    # resampling questions: the big question is in or out, so the pair accuracy's interval is
    # far wider than the pair bootstrap's
    pair_lo, pair_hi = M.bootstrap_ci(outcomes, n_boot=2000, seed=0)
    lo, hi = q["ci95_pairs"]
    assert lo <= 4 / 12 <= hi and (hi - lo) > (pair_hi - pair_lo)
    assert M.question_summary(outcomes, questions, n_boot=2000, seed=0) == q  # seeded
    rows = [{"example_id": x} for x in questions]
    m = M.pairwise_metrics(rows, [1.0 if o else 0.0 for o in outcomes], [0.5] * 12, n_boot=200, seed=0)
    assert m["per_question"]["questions"] == 5 and m["per_question"]["accuracy"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        M.question_summary([1.0], [])


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


# --- unscorable candidates and reward-weighted voting -------------------------------------------

NAN = float("nan")


def test_fill_unscorable_rewards_ranks_them_below_every_scorable_one():
    r, flags = M.fill_unscorable_rewards([0.5, NAN, -1.0, None, float("inf")])
    assert r == [0.5, -2.0, -1.0, -2.0, -2.0] and flags == [False, True, False, True, True]
    assert M.fill_unscorable_rewards([3.0, NAN], margin=0.5) == ([3.0, 2.5], [False, True])
    assert M.fill_unscorable_rewards([NAN, None]) == ([0.0, 0.0], [True, True])  # nothing to rank against
    assert M.fill_unscorable_rewards([]) == ([], [])
    # an unscorable candidate never wins while a scorable one is there, and ties only its peers
    filled, _ = M.fill_unscorable_rewards([NAN, -7.0, NAN])
    assert M.bon_select(filled, 3) == 1 and M.bon_select(filled, 1) == 0


def test_weighted_vote_beats_majority_where_the_crowd_is_wrong():
    keys, scores = ["w", "w", "w", "r", "r"], [-1.0, -1.0, -1.0, 2.0, 1.5]
    assert M.majority_select(keys, 5) == 0  # 'w' x3
    # sum: w = 3 e^-3 = 0.149 < r = 1 + e^-0.5 = 1.607; the pick is r's best member
    assert M.weighted_vote_select(scores, keys, 5, "sum") == 3
    assert M.weighted_vote_select(scores, keys, 5, "max") == 3


def test_weighted_vote_sum_vs_max_and_rm():
    keys, scores = ["r", "r", "r", "x"], [1.0, 0.9, 0.8, 1.2]
    assert M.bon_select(scores, 4) == 3  # one high outlier fools the plain RM pick
    assert M.weighted_vote_select(scores, keys, 4, "sum") == 0  # r: e^-.2+e^-.3+e^-.4 = 2.23 > x: 1
    assert M.weighted_vote_select(scores, keys, 4, "max") == 3  # max follows the outlier


def test_weighted_vote_sum_is_shift_invariant_and_not_fooled_by_negative_rewards():
    keys = ["a", "a", "b"]
    # a plain sum of rewards would pick b (-3 > -4): negative rewards would punish agreement
    assert M.weighted_vote_select([-2.0, -2.0, -3.0], keys, 3, "sum") == 0
    for shift in (-100.0, 0.0, 100.0):
        assert M.weighted_vote_select([x + shift for x in (-2.0, -2.0, -3.0)], keys, 3, "sum") == 0
        assert M.weighted_vote_select([shift, shift - 0.1, shift + 2.5], keys, 3, "sum") == 2  # 1 > e^-2.5 + e^-2.6


def test_weighted_vote_with_equal_rewards_is_majority_vote():
    for keys in (["a", "b", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"], ["x", "y", "y", "z", "z", "z"]):
        for n in range(1, len(keys) + 1):
            assert M.weighted_vote_select([0.3] * len(keys), keys, n, "sum") == M.majority_select(keys, n)
            assert M.weighted_vote_select([0.3] * len(keys), keys, n, "max") == 0  # max: all tie -> first group


def test_weighted_vote_unparseable_candidates_form_no_group():
    u = M.UNPARSEABLE_KEY_PREFIX
    keys = [u + "garbage", u + "garbage", "a"]
    assert M.weighted_vote_select([5.0, 5.0, 0.0], keys, 3, "sum") == 2
    assert M.weighted_vote_select([5.0, 5.0, 0.0], keys, 3, "max") == 2
    # none of the first n parses: the RM pick
    assert M.weighted_vote_select([1.0, 5.0, 0.0], keys, 2, "sum") == 1
    with pytest.raises(ValueError, match="finite"):
        M.weighted_vote_select([NAN, 1.0], ["a", "b"], 2)
    with pytest.raises(ValueError, match="agg"):
        M.weighted_vote_select([1.0], ["a"], 1, "mean")


def test_unparseable_prefix_matches_canonical_key():
    from fcrm_ray.toolcall.verify import canonical_key

    assert canonical_key('[{"name": "f", "arguments": {"x": ').startswith(M.UNPARSEABLE_KEY_PREFIX)
    assert not canonical_key('[{"name": "f", "arguments": {"x": 1}}]').startswith(M.UNPARSEABLE_KEY_PREFIX)


def test_bon_curve_every_selector_known_answer():
    u = M.UNPARSEABLE_KEY_PREFIX + "junk"
    # A: majority wrong (w x3), the RM and both votes right
    a = {"scores": [-1.0, -1.0, 2.0, -1.0], "correct": [False, False, True, False], "keys": ["w", "w", "r", "w"]}
    # B: first sample right; a high-reward outlier fools the RM pick and vote_max at n=4, not vote_sum
    b = {"scores": [1.0, 0.9, 0.8, 1.2], "correct": [True, True, True, False], "keys": ["r", "r", "r", "x"]}
    # C: an unparseable + unscorable first sample, an unscorable right answer (filled to 0.1 - 1 = -0.9)
    c = {"scores": [NAN, 0.1, 0.3, NAN], "correct": [False, True, False, True], "keys": [u, "c", "d", "c"]}
    curve = M.bon_curve([a, b, c], ns=(1, 2, 4), n_boot=0)
    acc = {n: {s: curve[n][s]["accuracy"] for s in M.SELECTORS} for n in curve}
    third = pytest.approx(1 / 3)
    assert acc[1] == {"rm": third, "vote_sum": third, "vote_max": third, "first": third, "random": third,
                      "majority": third, "majority_rm": third, "oracle": third}
    assert acc[2] == {"rm": pytest.approx(2 / 3), "vote_sum": pytest.approx(2 / 3), "vote_max": pytest.approx(2 / 3),
                      "first": third, "random": 0.5, "majority": third, "majority_rm": pytest.approx(2 / 3),
                      "oracle": pytest.approx(2 / 3)}  # C at n=2: majority's earliest key is the unparseable text
    assert acc[4] == {"rm": third, "vote_sum": 1.0, "vote_max": third, "first": third, "random": 0.5,
                      "majority": pytest.approx(2 / 3), "majority_rm": pytest.approx(2 / 3), "oracle": 1.0}
    w4 = curve[4]["worse_than_first"]
    assert (w4["rm"]["count"], w4["vote_sum"]["count"], w4["vote_max"]["count"]) == (1, 0, 1)
    assert w4["rm"]["fraction"] == third and w4["vote_sum"]["fraction"] == 0.0
    assert all(w["count"] == 0 for w in curve[2]["worse_than_first"].values())
    # CIs: n_boot=0 gives the point; with resamples they hold it, and a constant outcome has width 0
    assert curve[4]["vote_sum"]["ci95"] == [1.0, 1.0]
    boot = M.bon_curve([a, b, c] * 5, ns=(4,), n_boot=200, seed=3)[4]
    for s in M.SELECTORS:
        lo, hi = boot[s]["ci95"]
        assert lo <= boot[s]["accuracy"] <= hi
    assert boot["rm"]["ci95"][0] < boot["rm"]["ci95"][1]
    lo, hi = boot["worse_than_first"]["rm"]["ci95"]
    assert lo <= 1 / 3 <= hi


def test_vote_temperature_moves_the_vote_between_rm_pick_and_majority():
    keys, scores = ["w", "w", "w", "r", "r"], [-1.0, -1.0, -1.0, 2.0, 1.5]
    assert M.weighted_vote_select(scores, keys, 5, "sum", temperature=1.0) == 3  # w: 3e^-3 < r: 1+e^-.5
    # flat weights: three members beat two (w: 3e^-0.3 = 2.22 > r: 1 + e^-0.05 = 1.95)
    assert M.weighted_vote_select(scores, keys, 5, "sum", temperature=10.0) == 0 == M.majority_select(keys, 5)
    # and between equally large groups the rewards still decide (majority takes the first group)
    keys2, scores2 = ["a", "a", "b", "b"], [0.0, 0.1, 1.0, 0.9]
    assert M.majority_select(keys2, 4) == 0 and M.weighted_vote_select(scores2, keys2, 4, "sum", temperature=100.0) == 2
    with pytest.raises(ValueError, match="temperature"):
        M.weighted_vote_select(scores, keys, 5, "sum", temperature=0.0)
    picks = M.pool_picks(scores, keys, 5, vote_temperature=10.0)
    assert picks["vote_sum"] == 0 and picks["rm"] == 3


def test_majority_with_the_rm_breaking_ties():
    from fcrm_ray.evaluate.metrics import majority_rm_select, majority_select

    keys = ["a", "b", "a", "b", "unparseable:x"]
    scores = [0.1, 0.9, 0.2, 0.3, 5.0]
    assert majority_select(keys, 4) == 0  # plain majority: the 2-2 tie goes to the earliest key
    assert majority_rm_select(scores, keys, 4) == 1  # the RM breaks it: b holds the best reward (0.9)
    assert majority_rm_select(scores, keys, 3) == 2  # a x2 wins outright; its best member
    assert majority_rm_select([0.1, 0.9], ["unparseable:1", "unparseable:2"], 2) == 1  # nothing parses: RM pick
    assert majority_rm_select(scores, keys, 5) == 1  # unparseable text forms no group, whatever its reward
