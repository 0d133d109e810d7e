"""Best-of-N: selection and baselines on a toy pool with a known answer; pool building; the command."""

import json

import pytest

from fcrm_ray.config import ConfigError
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.evaluate import bon as B

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                         "required": ["city"]}},
         {"name": "get_time", "description": "Local time of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
REF = [{"get_weather": {"city": ["Paris"], "unit": [""]}}]
RIGHT = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
RIGHT_PY = "[get_weather(city='paris')]"  # same canonical call, another surface
WRONG_NAME = '[{"name": "get_time", "arguments": {"city": "Paris"}}]'
WRONG_VALUE = '[{"name": "get_weather", "arguments": {"city": "Lyon"}}]'
BROKEN = '[{"name": "get_weather", "arguments": {"city": "Par'


def toy_pool(candidates, ex="e1"):
    return {"example_id": ex, "tools": TOOLS, "conversation": [{"role": "user", "content": "Weather in Paris?"}],
            "reference": REF, "candidates": candidates}


class FixedScorer:
    """score_groups stand-in: reward = a fixed number per candidate text."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def score_groups(self, groups):
        self.calls += 1
        return [[self.table[c] for c in cands] for _, _, cands in groups]


def test_toy_pool_known_answer():
    pools = [B.normalize_pool(toy_pool([WRONG_VALUE, WRONG_NAME, RIGHT, WRONG_VALUE, RIGHT_PY, BROKEN, WRONG_NAME, WRONG_VALUE]))]
    scorer = FixedScorer({WRONG_VALUE: 0.5, WRONG_NAME: 0.1, RIGHT: 0.9, RIGHT_PY: 0.8, BROKEN: 2.0})
    rewards = B.score_pools(pools, scorer)
    assert scorer.calls == 1  # one score_groups call per pool
    curve, records = B.evaluate_pools(pools, rewards, ns=[1, 2, 4, 8, 16], n_boot=20)
    assert sorted(curve) == [1, 2, 4, 8]
    assert records[0]["correct"] == [False, False, True, False, True, False, False, False]
    assert records[0]["error_types"][5] == "incorrect_output_format"
    acc = {n: {s: curve[n][s]["accuracy"] for s in ("rm", "first", "random", "majority", "oracle")} for n in curve}
    assert acc[1] == {"rm": 0.0, "first": 0.0, "random": 0.0, "majority": 0.0, "oracle": 0.0}
    assert acc[2]["rm"] == 0.0 and acc[2]["oracle"] == 0.0
    # n=4: RIGHT (0.9) is the best of the first 4; majority: WRONG_VALUE x2 wins
    assert acc[4] == {"rm": 1.0, "first": 0.0, "random": 0.25, "majority": 0.0, "oracle": 1.0}
    # n=8: the broken output has the top reward -> RM wrong; majority: WRONG_VALUE x3 vs RIGHT+RIGHT_PY x2
    assert acc[8] == {"rm": 0.0, "first": 0.0, "random": 0.25, "majority": 0.0, "oracle": 1.0}
    assert records[0]["rm_pick"][4] == 2 and records[0]["rm_pick"][8] == 5


WRONG_VALUE_PY = "[get_weather(city='lyon')]"  # WRONG_VALUE's canonical call, another surface


def test_weighted_vote_on_real_pool_majority_wrong_vote_right_unscorable_ranked_last():
    # 3 surfaces of one wrong call (low rewards), 2 of the right call (high rewards), a broken text
    # with the top reward, and an empty candidate the scorer cannot score (NaN).
    cands = [WRONG_VALUE, RIGHT, WRONG_VALUE_PY, BROKEN, "", WRONG_VALUE, RIGHT_PY]
    scorer = FixedScorer({WRONG_VALUE: -1.0, WRONG_VALUE_PY: -1.2, RIGHT: 0.5, RIGHT_PY: 0.4, BROKEN: 3.0,
                          "": float("nan")})
    pools = [B.normalize_pool(toy_pool(cands))]
    rewards = B.score_pools(pools, scorer)
    assert scorer.calls == 1
    curve, records = B.evaluate_pools(pools, rewards, ns=[1, 2, 4, 7], n_boot=0)
    rec = records[0]
    # the empty candidate gets min(real) - 1 = -2.2 and is flagged
    assert rec["unscorable"] == [False, False, False, False, True, False, False]
    assert rec["rewards"][4] == pytest.approx(-2.2) and min(rec["rewards"]) == rec["rewards"][4]
    assert rec["correct"] == [False, True, False, False, False, False, True]
    # n=7: the RM picks the broken text; majority the wrong call (x3); sum-vote the right call
    # (wrong: e^-1.5 + e^-1.7 + e^-1.5 = 0.63 < right: 1 + e^-0.1 = 1.90), max-vote too (0.5 is the best
    # parseable reward; the broken text and the empty one form no group)
    assert rec["rm_pick"][7] == 3 and rec["majority_pick"][7] == 0
    assert rec["vote_sum_pick"][7] == 1 and rec["vote_max_pick"][7] == 1
    acc7 = {s: curve[7][s]["accuracy"] for s in ("rm", "vote_sum", "vote_max", "first", "random", "majority", "oracle")}
    assert acc7 == {"rm": 0.0, "vote_sum": 1.0, "vote_max": 1.0, "first": 0.0, "random": pytest.approx(2 / 7),
                    "majority": 0.0, "oracle": 1.0}
    # n=4 (WRONG_VALUE, RIGHT, WRONG_VALUE_PY, BROKEN): the votes group the two wrong surfaces
    # (e^-1.5 + e^-1.7 = 0.41 < 1), majority counts them twice and is wrong
    assert rec["vote_sum_pick"][4] == 1 and rec["majority_pick"][4] == 0 and rec["rm_pick"][4] == 3
    assert curve[4]["worse_than_first"]["rm"]["count"] == 0  # the first sample was wrong anyway
    b = {"model": "toy", "candidates": "pools.jsonl", "pools": 1, "quarantined": 0, "mean_pool_size": 7.0,
         "fraction_correct": 2 / 7, "unscorable_candidates": 1, "curve": {str(n): v for n, v in curve.items()}}
    md = B.bon_markdown(b)
    for label in ("RM pick", "RM-weighted vote (sum)", "RM-weighted vote (max)", "first sample", "majority vote",
                  "oracle", "1 candidates unscorable", "first sample is right"):
        assert label in md, label
    assert "| 7 | 1 | 0.000 [0.000, 0.000] | 1.000 [1.000, 1.000] |" in md


def test_majority_uses_canonical_calls():
    # Two surfaces of the right call outvote one wrong call only if they share a canonical key.
    pools = [B.normalize_pool(toy_pool([WRONG_NAME, RIGHT, RIGHT_PY]))]
    curve, _ = B.evaluate_pools(pools, [[0.0, 0.0, 0.0]], ns=[2, 3], n_boot=0)
    assert curve[2]["majority"]["accuracy"] == 0.0  # 1-1 tie -> earliest key (wrong)
    assert curve[3]["majority"]["accuracy"] == 1.0
    assert curve[3]["rm"]["accuracy"] == 0.0  # constant RM = first sample


def test_bad_pool_rows_are_quarantined(tmp_path):
    path = tmp_path / "pools.jsonl"
    rows = [toy_pool([RIGHT]), {**toy_pool([]), "example_id": "empty"}, {"example_id": "x", "tools": TOOLS},
            {**toy_pool([RIGHT]), "reference": "not json"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    q = Quarantine()
    pools, n = B.read_pools(path, q)
    assert n == 5 and len(pools) == 1 and q.total == 4


def test_mutation_pool_fraction_and_verdicts(bfcl_dir):
    import random
    from itertools import islice

    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.toolcall.verify import verify

    exs = list(islice(read_bfcl(["simple_python"], quarantine=Quarantine()), 12))
    n_ok = n = 0
    for ex in exs:
        cands = B.mutation_pool(ex, 8, 0.5, random.Random(ex.id))
        assert len(cands) == 8
        oks = [verify(c, ex.reference, ex.tools).correct for c in cands]
        n_ok += sum(oks)
        n += len(oks)
    assert 0.3 < n_ok / n < 0.7
    none = B.mutation_pool(exs[0], 6, 0.0, random.Random(0))
    assert not any(verify(c, exs[0].reference, exs[0].tools).correct for c in none)
    same = B.mutation_pool(exs[0], 6, 0.5, random.Random(1)) == B.mutation_pool(exs[0], 6, 0.5, random.Random(1))
    assert same


@pytest.mark.slow
def test_bon_command_end_to_end(tmp_path):
    from fcrm_ray.models import build_tiny_bert_rm

    rm = str(build_tiny_bert_rm(tmp_path / "rm"))
    pools = tmp_path / "pools.jsonl"
    assert B.main(["--build-pools", "--out", str(pools), "pools.max_examples=4", "pools.pool_size=4",
                   "pools.categories=[simple_python,multiple]", "pools.correct_fraction=0.5"]) == 0
    rows = [json.loads(l) for l in pools.read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["candidates"]) == 4 for r in rows)
    out = tmp_path / "bon"
    assert B.main(["--model", rm, "--candidates", str(pools), "--out", str(out), "--config", "configs/eval/bon.yaml",
                   "n_boot=50"]) == 0
    for f in ("bon.json", "bon.md", "accuracy_vs_n.png", "pools_scored.jsonl"):
        assert (out / f).is_file(), f
    b = json.loads((out / "bon.json").read_text())
    assert b["pools"] == 4 and b["ns"] == [1, 2, 4]
    for n, row in b["curve"].items():
        for sel in ("rm", "vote_sum", "vote_max", "first", "random", "majority"):
            assert row[sel]["accuracy"] <= row["oracle"]["accuracy"] + 1e-9
            assert row[sel]["ci95"][0] <= row[sel]["accuracy"] <= row[sel]["ci95"][1]
        assert set(row["worse_than_first"]) == {"rm", "vote_sum", "vote_max", "majority_rm"}
    assert b["unscorable_candidates"] == 0
    scored = [json.loads(l) for l in (out / "pools_scored.jsonl").read_text().splitlines()]
    assert all(len(r["unscorable"]) == len(r["rewards"]) == 4 and "vote_sum_pick" in r for r in scored)
    assert "weighted vote (sum)" in (out / "bon.md").read_text()
    assert b["curve"]["1"]["rm"]["accuracy"] == b["curve"]["1"]["first"]["accuracy"]


def test_bon_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="pools.backend"):
        B.main(["--build-pools", "--out", str(tmp_path / "p.jsonl"), "pools.backend=gpt"])
    with pytest.raises(ConfigError, match="pools.model"):
        B.main(["--build-pools", "--out", str(tmp_path / "p.jsonl"), "pools.backend=hf"])
    with pytest.raises(ConfigError, match="model"):
        B.main(["--candidates", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="vote_temperature"):
        B.main(["--candidates", str(tmp_path), "--out", str(tmp_path / "o"), "vote_temperature=0"])
