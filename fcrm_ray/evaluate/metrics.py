"""Pure metric functions of the evaluation harness: pairwise accuracy, bootstrap intervals,
per-group breakdowns, and Best-of-N selection with its baselines.

No model, no Ray, no I/O: everything takes scores / verdicts already computed, so each rule can
be tested on hand-made numbers.

Pairwise (FC-RewardBench): a pair counts 1 if the RM scores chosen above rejected, 0 if below,
and 1/2 on a tie (an RM that cannot tell the two apart is at chance, not wrong). A pair with a
missing score (NaN: the scorer could not fit the row) also counts 1/2 and is reported in
`n_unscored`, so `n` is always the number of pairs read and nothing silently vanishes.

Bootstrap: percentile intervals over `n_boot` resamples of the per-pair outcomes, drawn with a
seeded `numpy.random.default_rng(seed)` so a report is reproducible.

Best-of-N on a pool of candidates (in sampling order) with RM scores, verifier verdicts and
canonical keys (`verify.canonical_key`), for each n = the first n candidates:
- unscorable candidates (the scorer returned no reward: empty, over max_length, ...) first get
  one by `fill_unscorable_rewards`: the pool's lowest real reward minus `UNSCORABLE_MARGIN`, so
  they rank below every scorable candidate of the pool; flagged `unscorable` in the output.
- RM: the highest-reward candidate; ties -> the earliest candidate (so a constant RM
  reduces to the first-sample baseline, never to a lucky pick).
- reward-weighted vote (`vote_sum`, `vote_max`, `weighted_vote_select`): the first n candidates
  are grouped by canonical call and the group with the highest score wins; its highest-reward
  member is the pick. `vote_sum` scores a group by the sum of its members' Bradley-Terry
  strengths exp(reward - top reward) (its softmax mass: rewards are logits with an arbitrary
  offset and are often negative, so a plain sum of rewards would favour SMALL groups); with
  equal rewards it is majority vote. `vote_max` scores a group by its best member's reward, which
  makes it the RM pick among parseable candidates (it differs only where an unparseable text
  has the top reward).
  Ties -> the group seen first. Unparseable candidates (key `unparseable:...`) form no group;
  when none of the first n parses, the vote falls back to the RM pick.
- first sample: candidate 0.
- random pick, expected value: the fraction of correct candidates among the first n (the
  accuracy of a uniform random pick, without sampling noise).
- majority vote: the canonical key that occurs most often among the first n; ties between keys ->
  the key whose first occurrence comes earliest (deterministic, and again the first sample when
  all candidates differ). The vote is judged by that first occurrence's verdict.
- oracle: any correct candidate among the first n (an upper bound for every selector).
Every selector's accuracy comes with a bootstrap 95% CI over pools; `worse_than_first` is, per
reranker, the share of pools where its pick is wrong while the first sample is right.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_N_BOOT = 1000
BON_NS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
GROUP_KEYS: dict[str, str] = {  # metrics.json key -> pair column
    "per_error_type": "error_type",
    "per_category": "category",
    "per_source": "source",
    "per_generator": "generator",
}


# ----------------------------------------------------------------------------------------------
# Pairwise accuracy
# ----------------------------------------------------------------------------------------------


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pair_outcome(chosen: float | None, rejected: float | None) -> float:
    """1.0 if chosen > rejected, 0.0 if below, 0.5 on a tie or a missing score."""
    if _missing(chosen) or _missing(rejected):
        return 0.5
    if chosen > rejected:
        return 1.0
    if chosen < rejected:
        return 0.0
    return 0.5


def pair_outcomes(chosen: Sequence[float | None], rejected: Sequence[float | None]) -> list[float]:
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen scores but {len(rejected)} rejected scores")
    return [pair_outcome(c, r) for c, r in zip(chosen, rejected)]


def pairwise_accuracy(chosen: Sequence[float | None], rejected: Sequence[float | None]) -> float:
    """Mean pair outcome (ties count half); NaN for no pairs."""
    out = pair_outcomes(chosen, rejected)
    return float(sum(out) / len(out)) if out else float("nan")


def bootstrap_ci(values: Sequence[float], n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (seeded). (nan, nan) for no values;
    a single value gives a zero-width interval."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return (float("nan"), float("nan"))
    if n_boot <= 0 or v.size == 1:
        m = float(v.mean())
        return (m, m)
    rng = np.random.default_rng(seed)
    # Resample in chunks so a large benchmark x 1000 resamples stays small in memory.
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // v.size)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, v.size, size=(k, v.size))
        means[start:start + k] = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def summarize(outcomes: Sequence[float], n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
    """{accuracy, n, ci95: [lo, hi], ties} of per-pair outcomes."""
    n = len(outcomes)
    acc = float(sum(outcomes) / n) if n else float("nan")
    lo, hi = bootstrap_ci(outcomes, n_boot=n_boot, seed=seed)
    return {"accuracy": acc, "n": n, "ci95": [lo, hi], "ties": int(sum(1 for o in outcomes if o == 0.5))}


def group_breakdown(outcomes: Sequence[float], groups: Sequence[str], n_boot: int = DEFAULT_N_BOOT,
                    seed: int = 0) -> dict[str, dict]:
    """summarize() per group label, groups sorted by size (largest first), then name."""
    if len(outcomes) != len(groups):
        raise ValueError(f"{len(outcomes)} outcomes but {len(groups)} group labels")
    by: dict[str, list[float]] = defaultdict(list)
    for o, g in zip(outcomes, groups):
        by[str(g)].append(o)
    order = sorted(by, key=lambda g: (-len(by[g]), g))
    return {g: summarize(by[g], n_boot=n_boot, seed=seed) for g in order}


def question_summary(outcomes: Sequence[float], questions: Sequence[str], n_boot: int = DEFAULT_N_BOOT,
                     seed: int = 0) -> dict:
    """Pairs of one question are not independent samples: real-output pair sets hold a few to
    ~70 pairs per question, so one borderline question can move the pair accuracy by points. This
    gives the mean over questions (each question's pair accuracy counts once, bootstrap over
    questions) and the pair accuracy's 95% interval when questions, not pairs, are resampled."""
    if len(outcomes) != len(questions):
        raise ValueError(f"{len(outcomes)} outcomes but {len(questions)} question ids")
    by: dict[str, list[float]] = defaultdict(list)
    for o, q in zip(outcomes, questions):
        by[str(q)].append(o)
    if not by:
        return {"questions": 0, "accuracy": float("nan"), "ci95": [float("nan")] * 2,
                "ci95_pairs": [float("nan")] * 2, "max_pairs": 0}
    sums = np.array([sum(v) for v in by.values()], dtype=float)
    sizes = np.array([len(v) for v in by.values()], dtype=float)
    means = sums / sizes
    lo, hi = bootstrap_ci(means, n_boot=n_boot, seed=seed)
    if n_boot > 0 and len(by) > 1:
        idx = np.random.default_rng(seed).integers(0, len(by), size=(n_boot, len(by)))
        ratios = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
        pair_ci = [float(x) for x in np.quantile(ratios, [0.025, 0.975])]
    else:
        pair_ci = [float(sums.sum() / sizes.sum())] * 2
    return {"questions": len(by), "accuracy": float(means.mean()), "ci95": [lo, hi], "ci95_pairs": pair_ci,
            "max_pairs": int(sizes.max())}


def pairwise_metrics(rows: Sequence[Mapping], chosen: Sequence[float | None], rejected: Sequence[float | None],
                     n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
    """The metrics.json body: overall summary, one breakdown per GROUP_KEYS column, and
    `per_question` (`question_summary` over the pairs' `example_id`)."""
    if len(rows) != len(chosen):
        raise ValueError(f"{len(rows)} rows but {len(chosen)} scores")
    outcomes = pair_outcomes(chosen, rejected)
    out = summarize(outcomes, n_boot=n_boot, seed=seed)
    out["n_unscored"] = int(sum(1 for c, r in zip(chosen, rejected) if _missing(c) or _missing(r)))
    for key, col in GROUP_KEYS.items():
        out[key] = group_breakdown(outcomes, [r.get(col, "") or "unknown" for r in rows], n_boot=n_boot, seed=seed)
    out["per_question"] = question_summary(outcomes, [r.get("example_id") or r.get("id") or "" for r in rows],
                                           n_boot=n_boot, seed=seed)
    return out


# ----------------------------------------------------------------------------------------------
# Best-of-N
# ----------------------------------------------------------------------------------------------


def bon_select(scores: Sequence[float | None], n: int) -> int:
    """Index of the highest-scoring candidate among the first n (earliest on ties; NaN never wins
    over a real score)."""
    if n < 1 or not scores:
        raise ValueError("need n >= 1 and at least one candidate")
    best, best_s = 0, None
    for i, s in enumerate(scores[:n]):
        if _missing(s):
            continue
        if best_s is None or s > best_s:
            best, best_s = i, s
    return best


UNSCORABLE_MARGIN = 1.0
UNPARSEABLE_KEY_PREFIX = "unparseable:"  # how `toolcall.verify.canonical_key` keys text that does not parse


def fill_unscorable_rewards(rewards: Sequence[float | None], margin: float = UNSCORABLE_MARGIN
                            ) -> tuple[list[float], list[bool]]:
    """Give every candidate of one pool a reward: (rewards, unscorable flags).

    A reward that is missing (None, NaN or +-inf: the scorer could not score the candidate, e.g.
    empty or longer than max_length) becomes `min(real rewards of the pool) - margin`, so an
    unscorable candidate ranks below every scorable one of the same pool and ties only with other
    unscorable ones (which then keep their order). A pool with no real reward gets 0.0 for all.
    Shared by `fcrm eval bon` and the reward service, so both rank unscorable outputs alike."""
    flags = [x is None or not math.isfinite(float(x)) for x in rewards]
    real = [float(x) for x, bad in zip(rewards, flags) if not bad]
    fill = (min(real) - margin) if real else 0.0
    return [fill if bad else float(x) for x, bad in zip(rewards, flags)], flags


def weighted_vote_select(scores: Sequence[float], keys: Sequence[str], n: int, agg: str = "sum",
                         temperature: float = 1.0) -> int:
    """Index of the pick of reward-weighted voting among the first n (rules: module docstring).

    `scores` must be real numbers (`fill_unscorable_rewards` first); `agg` is `sum` (sum of
    exp((reward - top reward) / temperature) per canonical call) or `max` (the group's best
    reward). `temperature` flattens the weights: 1 = the Bradley-Terry strengths, large = every
    member counts ~1 (majority vote with the rewards breaking ties), small = the RM pick."""
    if n < 1 or not scores:
        raise ValueError("need n >= 1 and at least one candidate")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if agg not in ("sum", "max"):
        raise ValueError(f"agg must be 'sum' or 'max', got {agg!r}")
    head = [float(s) for s in scores[:n]]
    if any(not math.isfinite(s) for s in head):
        raise ValueError("weighted_vote_select needs finite rewards; fill unscorable ones first")
    members: dict[str, list[int]] = {}  # key -> indices, keys in order of first occurrence
    for i, k in enumerate(keys[:n]):
        if not str(k).startswith(UNPARSEABLE_KEY_PREFIX):
            members.setdefault(k, []).append(i)
    if not members:
        return bon_select(head, n)
    top = max(head[i] for idx in members.values() for i in idx)
    if agg == "sum":
        score = {k: sum(math.exp((head[i] - top) / temperature) for i in idx) for k, idx in members.items()}
    else:
        score = {k: max(head[i] for i in idx) for k, idx in members.items()}
    winner = max(members, key=lambda k: score[k])  # max() keeps the first of equal groups
    return max(members[winner], key=lambda i: head[i])  # and the earliest of its best members


def majority_select(keys: Sequence[str], n: int) -> int:
    """Index of the first occurrence of the most frequent key among the first n; ties -> the key
    that occurred first."""
    if n < 1 or not keys:
        raise ValueError("need n >= 1 and at least one candidate")
    head = list(keys[:n])
    counts = Counter(head)
    first: dict[str, int] = {}
    for i, k in enumerate(head):
        first.setdefault(k, i)
    winner = min(counts, key=lambda k: (-counts[k], first[k]))
    return first[winner]


def majority_rm_select(scores: Sequence[float], keys: Sequence[str], n: int) -> int:
    """The most frequent canonical call among the first n, ties broken by the reward model: among
    the tied groups, the one holding the highest reward, and its best member. Unparseable text forms
    no group; if nothing parses, the RM pick. `scores` filled (`fill_unscorable_rewards`)."""
    if n < 1 or not scores:
        raise ValueError("need n >= 1 and at least one candidate")
    head = [float(x) for x in scores[:n]]
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys[:n]):
        if not str(k).startswith(UNPARSEABLE_KEY_PREFIX):
            members.setdefault(k, []).append(i)
    if not members:
        return bon_select(head, n)
    most = max(len(idx) for idx in members.values())
    best = [max(idx, key=lambda i: (head[i], -i)) for idx in members.values() if len(idx) == most]
    return max(best, key=lambda i: (head[i], -i))


def first_sample_correct(correct: Sequence[bool], n: int) -> float:
    return float(bool(correct[0]))


def random_expected(correct: Sequence[bool], n: int) -> float:
    """Expected accuracy of a uniform random pick among the first n = fraction correct."""
    head = list(correct[:n])
    return float(sum(bool(c) for c in head) / len(head))


def oracle_correct(correct: Sequence[bool], n: int) -> float:
    return float(any(bool(c) for c in correct[:n]))


RERANKERS = ("rm", "vote_sum", "vote_max", "majority_rm")  # selectors that use the RM's rewards
BASELINES = ("first", "random", "majority", "oracle")
SELECTORS = RERANKERS + BASELINES


PICKERS = RERANKERS + ("majority",)  # selectors that pick one candidate


PICK_RULES = PICKERS + ("first",)  # what `pick` answers (the gateway's rules: rm, vote = vote_sum, majority = majority_rm, first)


def pick(rule: str, scores: Sequence[float], keys: Sequence[str], n: int | None = None,
         vote_temperature: float = 1.0) -> int:
    """The index one Best-of-N rule picks among the first n candidates (all when n is None).
    `scores` already filled (`fill_unscorable_rewards`), `keys` from `toolcall.verify.canonical_key`.
    The one selection function: `fcrm eval bon` reports what it picks, and `fcrm gateway` answers
    with what it picks, so offline numbers predict the gateway."""
    n = len(scores) if n is None else n
    if rule == "rm":
        return bon_select(scores, n)
    if rule == "vote_sum":
        return weighted_vote_select(scores, keys, n, "sum", vote_temperature)
    if rule == "vote_max":
        return weighted_vote_select(scores, keys, n, "max")
    if rule == "majority":
        return majority_select(keys, n)
    if rule == "majority_rm":
        return majority_rm_select(scores, keys, n)
    if rule == "first":
        if n < 1 or not scores:
            raise ValueError("need n >= 1 and at least one candidate")
        return 0
    raise ValueError(f"unknown Best-of-N rule {rule!r}; one of {PICK_RULES}")


def pool_picks(scores: Sequence[float], keys: Sequence[str], n: int, vote_temperature: float = 1.0) -> dict[str, int]:
    """{selector: picked index} for the PICKERS among the first n (`scores` already filled)."""
    return {sel: pick(sel, scores, keys, n, vote_temperature) for sel in PICKERS}


def pool_outcomes(scores: Sequence[float | None], correct: Sequence[bool], keys: Sequence[str], n: int,
                  vote_temperature: float = 1.0) -> dict:
    """{selector: 0..1} for one pool at one n (n is capped at the pool size by the caller).
    Missing rewards are filled by `fill_unscorable_rewards` first."""
    if not (len(scores) == len(correct) == len(keys)):
        raise ValueError("scores, correct and keys must have one entry per candidate")
    filled, _ = fill_unscorable_rewards(scores)
    out = {sel: float(bool(correct[i])) for sel, i in pool_picks(filled, keys, n, vote_temperature).items()}
    out.update({"first": first_sample_correct(correct, n), "random": random_expected(correct, n),
                "oracle": oracle_correct(correct, n)})
    return {sel: out[sel] for sel in SELECTORS}


def bon_ns(max_pool: int, ns: Iterable[int] = BON_NS) -> list[int]:
    """The n values evaluated: those of `ns` up to the largest pool."""
    return [n for n in ns if n <= max_pool]


def bon_curve(pools: Sequence[Mapping], ns: Iterable[int] = BON_NS, n_boot: int = DEFAULT_N_BOOT,
              seed: int = 0, vote_temperature: float = 1.0) -> dict:
    """Accuracy per selector per n over pools `{scores, correct, keys}`.

    Only pools with at least n candidates count at n (a pool of 4 says nothing about n=8); the
    number used is reported as `pools`. Returns {n: {selector: {accuracy, ci95}, pools,
    worse_than_first: {reranker: {fraction, count, ci95}}}}: how often each reranker's pick is
    wrong where the first sample is right."""
    pools = list(pools)
    out: dict[int, dict] = {}
    for n in bon_ns(max((len(p["scores"]) for p in pools), default=0), ns):
        per = [pool_outcomes(p["scores"], p["correct"], p["keys"], n, vote_temperature)
               for p in pools if len(p["scores"]) >= n]
        if not per:
            continue
        row: dict = {"pools": len(per)}
        for sel in SELECTORS:
            vals = [o[sel] for o in per]
            lo, hi = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
            row[sel] = {"accuracy": float(sum(vals) / len(vals)), "ci95": [lo, hi]}
        row["worse_than_first"] = {}
        for sel in RERANKERS:
            worse = [float(o["first"] == 1.0 and o[sel] == 0.0) for o in per]
            lo, hi = bootstrap_ci(worse, n_boot=n_boot, seed=seed)
            row["worse_than_first"][sel] = {"fraction": float(sum(worse) / len(worse)), "count": int(sum(worse)),
                                            "ci95": [lo, hi]}
        out[n] = row
    return out
