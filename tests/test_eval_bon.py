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
        for sel in ("rm", "first", "random", "majority"):
            assert row[sel]["accuracy"] <= row["oracle"]["accuracy"] + 1e-9
    assert b["curve"]["1"]["rm"]["accuracy"] == b["curve"]["1"]["first"]["accuracy"]


def test_bon_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="pools.backend"):
        B.main(["--build-pools", "--out", str(tmp_path / "p.jsonl"), "pools.backend=gpt"])
    with pytest.raises(ConfigError, match="pools.model"):
        B.main(["--build-pools", "--out", str(tmp_path / "p.jsonl"), "pools.backend=hf"])
    with pytest.raises(ConfigError, match="model"):
        B.main(["--candidates", str(tmp_path), "--out", str(tmp_path / "o")])
