"""Best-of-N pools for the listwise objective: reading, quarantine, counts that add up, batching."""

import json
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.models import build_tiny_qwen3_rm
from fcrm_ray.train.config import TrainConfig
from fcrm_ray.train.pools import collate_pools, cycle_pools, load_pools, pool_rewards, tokenize_pool

TOOLS = [{"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "required": ["city"],
                         "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}]
CONV = [{"role": "user", "content": "Weather in Paris?"}]


def call(city, unit=None):
    args = {"city": city, **({"unit": unit} if unit else {})}
    return json.dumps([{"name": "get_weather", "arguments": args}])


def pool(ex_id="q1", cands=None, correct=None, **kw):
    cands = cands if cands is not None else [call("Paris"), call("Lyon"), call("Nice"), call("Paris", "celsius")]
    correct = correct if correct is not None else [True, False, False, True]
    return {"example_id": ex_id, "category": "live_simple", "tools": json.dumps(TOOLS),
            "conversation": json.dumps(CONV), "candidates": cands, "correct": correct,
            "models": [f"m{i}" for i in range(len(cands))], **kw}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return AutoTokenizer.from_pretrained(build_tiny_qwen3_rm(tmp_path_factory.mktemp("qwen") / "rm"))


def test_pool_members_are_encoded_like_pair_sides(tok):
    from fcrm_ray.train.data import tokenize_pair

    p = tokenize_pool(pool(), tok, max_length=256)
    assert p["status"] == "ok" and p["positive"] == [True, False, False, True]
    pair = tokenize_pair({"id": "x", "tools": json.dumps(TOOLS), "conversation": json.dumps(CONV),
                          "chosen_output": call("Paris"), "rejected_output": call("Lyon")}, tok, 256)
    assert p["ids"][0] == pair["chosen_ids"] and p["ids"][1] == pair["rejected_ids"]


def test_member_cap_keeps_a_positive_and_a_negative_and_is_seeded(tok):
    cands = [call(c) for c in ("Paris", "Lyon", "Nice", "Rome", "Oslo", "Bern")]
    row = pool(cands=cands, correct=[True] + [False] * 5)
    counts = Counter()
    for seed in range(6):
        p = tokenize_pool(row, tok, 256, max_candidates=3, seed=seed, candidate_counts=counts)
        assert len(p["ids"]) == 3 and p["positive"].count(True) == 1
        assert p == tokenize_pool(row, tok, 256, max_candidates=3, seed=seed)
    assert counts["over_cap"] == 6 * 3


def test_duplicate_and_conflicting_renderings(tok):
    # the same call in two surfaces renders the same: a duplicate; marked both right and wrong: left out
    py = "get_weather(city='Paris')"
    p = tokenize_pool(pool(cands=[call("Paris"), py, call("Lyon")], correct=[True, True, False]), tok, 256,
                      candidate_counts=(c := Counter()))
    assert p["status"] == "ok" and len(p["ids"]) == 2 and c["duplicate"] == 1
    p = tokenize_pool(pool(cands=[call("Paris"), py, call("Lyon"), call("Nice")], correct=[True, False, False, False]),
                      tok, 256, candidate_counts=(c := Counter()))
    assert p["status"] == "no_positive" and c["conflicting_label"] == 1


def test_counts_add_up_with_quarantine_and_drops(tok, tmp_path):
    lines = [
        json.dumps(pool("ok1")),
        json.dumps(pool("ok2", cands=[call("Paris"), call("Lyon")], correct=[True, False])),
        json.dumps(pool("nopos", correct=[False] * 4)),
        json.dumps(pool("noneg", correct=[True] * 4)),
        json.dumps(pool("one", cands=[call("Paris"), ""], correct=[True, False])),  # empty member left out
        json.dumps(pool("long", cands=[call("Paris"), call("X" * 3000)], correct=[True, False])),  # over-long member
        json.dumps(pool("mismatch", correct=[True])),  # quarantined: labels do not match candidates
        json.dumps({k: v for k, v in pool("nocands").items() if k != "candidates"}),
        json.dumps(pool("badjson", tools="{not json")),
        "{truncated line",
        "",  # blank lines are not rows
    ]
    path = tmp_path / "pools.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Quarantine(tmp_path / "q.jsonl") as q:
        kept, stats = load_pools(path, tok, max_length=128, quarantine=q)
    assert [p["id"] for p in kept] == ["ok1", "ok2"]
    assert stats["read"] == 10 and stats["kept"] == 2 and stats["quarantined"] == 4
    assert stats["dropped"] == {"no_positive": 1, "no_negative": 1, "too_few_candidates": 2}
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) + stats["quarantined"]
    assert stats["candidates_left_out"] == {"empty_call": 1, "over_long": 1}
    assert stats["candidates"] == 6 and stats["positives"] == 3
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert len(reasons) == 4 and all(r.startswith("bad pool:") for r in reasons)
    assert any("1 `correct` labels" in r for r in reasons)
    # a cap on the pools: a stable subset, the rest counted as dropped
    kept1, stats1 = load_pools(path, tok, max_length=128, max_pools=1)
    assert stats1["kept"] == 1 and stats1["dropped"]["over_max_train_pools"] == 1
    assert stats1["read"] == stats1["kept"] + sum(stats1["dropped"].values()) + stats1["quarantined"]


def test_collate_maps_rows_back_to_pools():
    pools = [{"ids": [[5, 6, 7], [5, 8]], "positive": [True, False]},
             {"ids": [[9], [9, 9], [9, 9, 9, 9]], "positive": [False, False, True]}]
    b = collate_pools(pools, pad_id=0)
    assert b["input_ids"].shape == (5, 4) and b["attention_mask"].sum() == 12
    assert b["slot"].tolist() == [[0, 1, -1], [2, 3, 4]]
    assert b["valid"].tolist() == [[True, True, False], [True, True, True]]
    assert b["positive"].tolist() == [[True, False, False], [False, False, True]]
    r = pool_rewards(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), b)
    assert r.tolist() == [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]


def test_cycle_pools_covers_every_pool_each_pass():
    it = cycle_pools(5, 2, seed=0)
    first = [next(it) for _ in range(2)]
    assert all(len(b) == 2 for b in first) and len({i for b in first for i in b}) == 4
    with pytest.raises(ValueError):
        next(cycle_pools(0, 1, seed=0))


@pytest.mark.parametrize("override, key", [
    (["train.listwise_weight=0.5"], "train.listwise_weight"),
    (["train.listwise_weight=-1"], "train.listwise_weight"),
    (["train.listwise_loss=lambdarank"], "train.listwise_loss"),
    (["train.pools_per_step=0"], "train.pools_per_step"),
    (["data.max_pool_candidates=1"], "data.max_pool_candidates"),
    (["data.train_pools_path=/nonexistent/pools.jsonl", "train.listwise_weight=1"], "data.train_pools_path"),
    (["data.train_pools_path=s3://b/pools.jsonl", "train.listwise_weight=1"], "data.train_pools_path"),
])
def test_bad_listwise_settings_name_the_key(tmp_path, override, key):
    model = build_tiny_qwen3_rm(tmp_path / "rm")
    with pytest.raises(ConfigError, match=f"`{key}`"):
        load_config(TrainConfig, None, [f"model.path={model}", f"data.train_path={tmp_path}", *override]).validate()


def test_pools_without_a_weight_name_the_weight(tmp_path):
    model = build_tiny_qwen3_rm(tmp_path / "rm")
    (tmp_path / "p.jsonl").write_text(json.dumps(pool()) + "\n")
    with pytest.raises(ConfigError, match="`data.train_pools_path` is set but `train.listwise_weight` is 0"):
        load_config(TrainConfig, None, [f"model.path={model}", f"data.train_path={tmp_path}",
                                        f"data.train_pools_path={tmp_path / 'p.jsonl'}"]).validate()
