"""Training data: tokenised pairs, truncation that keeps the call, bad rows, batching, config errors."""

import json
from collections import Counter

import numpy as np
import pytest
from transformers import AutoTokenizer

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm, special_wrap
from fcrm_ray.toolcall.render import render
from fcrm_ray.train.config import TrainConfig
from fcrm_ray.train.data import balanced_subset, collate_pairs, cycle_epochs, length_grouped_batches, tokenize_pair

TOOLS = [{"name": "get_weather", "description": "Weather for a city. " * 40,
          "parameters": {"type": "object", "required": ["city"],
                         "properties": {"city": {"type": "string", "description": "The city " * 30}}}}]
CONV = [{"role": "user", "content": "Weather in Paris?"}]
CHOSEN = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
REJECTED = '[{"name": "get_weather", "arguments": {"city": "Lyon"}}]'


def _row(**kw):
    row = {"id": "p1", "tools": json.dumps(TOOLS), "conversation": json.dumps(CONV), "chosen_output": CHOSEN,
           "rejected_output": REJECTED, "error_type": "incorrect_parameter_value", "category": "simple",
           "source": "test", "generator": "unit", "obfuscated": False}
    row.update(kw)
    return row


@pytest.fixture(scope="module", params=["bert", "qwen"])
def tok(request, tmp_path_factory):
    build = build_tiny_bert_rm if request.param == "bert" else build_tiny_qwen3_rm
    return AutoTokenizer.from_pretrained(build(tmp_path_factory.mktemp(request.param) / "rm"))


def test_truncation_cuts_the_catalog_and_keeps_the_call(tok):
    out = tokenize_pair(_row(), tok, max_length=64)
    assert out["status"] == "ok" and out["truncated"]
    pre, post = special_wrap(tok)
    for ids, call in ((out["chosen_ids"], CHOSEN), (out["rejected_ids"], REJECTED)):
        assert len(ids) == 64
        completion = render(tok, TOOLS, CONV, call).completion
        c_ids = tok(completion, add_special_tokens=False)["input_ids"]
        body = ids[len(pre):len(ids) - len(post)]
        assert body[-len(c_ids):] == c_ids
    assert out["n_tokens"] == 128


def test_short_pair_is_not_truncated(tok):
    row = _row(tools=json.dumps([{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]))
    out = tokenize_pair(row, tok, max_length=512)
    assert out["status"] == "ok" and not out["truncated"]
    assert out["chosen_ids"] != out["rejected_ids"]


@pytest.mark.parametrize("kw,status", [
    ({"rejected_output": "   "}, "empty_call"),
    ({"chosen_output": "[]"}, "empty_call"),
    ({"conversation": json.dumps([{"role": "user", "content": "Weather in Par\ufffds?"}])}, "non_utf8"),
    ({"rejected_output": "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"\ud800\"}}]"}, "non_utf8"),
    ({"rejected_output": CHOSEN}, "identical_rendering"),
    ({"tools": "not json"}, "render_error"),
])
def test_bad_rows_get_a_status_not_an_exception(tok, kw, status):
    assert tokenize_pair(_row(**kw), tok, max_length=64)["status"] == status


def test_call_longer_than_max_length_is_over_long(tok):
    long_call = json.dumps([{"name": "get_weather", "arguments": {f"a{i}": i for i in range(200)}}])
    out = tokenize_pair(_row(rejected_output=long_call), tok, max_length=64)
    assert out["status"] == "over_long" and out["detail"] == "rejected"


def test_call_over_max_length_is_kept_within_overflow_length(tok):
    """A call that does not fit max_length (several parallel calls, a wide schema) is kept at up
    to overflow_length tokens, whole, beside as much of the prompt as still fits; one longer than
    that is still over-long."""
    calls = [{"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Lyon", "Nice", "Lille") * 4]
    long_call = json.dumps(calls)
    assert tokenize_pair(_row(chosen_output=long_call), tok, max_length=64)["status"] == "over_long"
    out = tokenize_pair(_row(chosen_output=long_call), tok, max_length=64, overflow_length=512)
    assert out["status"] == "ok"
    completion = render(tok, TOOLS, CONV, long_call).completion
    c_ids = tok(completion, add_special_tokens=False)["input_ids"]
    pre, post = special_wrap(tok)
    assert 64 < len(out["chosen_ids"]) <= 512 and len(out["rejected_ids"]) <= 64  # only the long side grows
    assert out["chosen_ids"][len(pre):len(out["chosen_ids"]) - len(post)][-len(c_ids):] == c_ids
    huge = json.dumps([{"name": "get_weather", "arguments": {f"a{i}": i for i in range(400)}}])
    assert tokenize_pair(_row(rejected_output=huge), tok, max_length=64, overflow_length=512)["status"] == "over_long"


def test_prompt_room_rule():
    from fcrm_ray.models import prompt_room

    # (max_length, specials, prompt, completion, min_prompt, overflow) -> room for the prompt
    assert prompt_room(64, 2, 100, 30, 16) == 32  # fits: the prompt is cut to the rest
    assert prompt_room(64, 2, 100, 50, 16) is None  # 12 < 16 left, no overflow
    assert prompt_room(64, 2, 100, 50, 16, overflow_length=128) == 76  # overflow: room within 128
    assert prompt_room(64, 2, 5, 55, 16) == 7  # a short prompt needs only its own length
    assert prompt_room(64, 2, 100, 120, 16, overflow_length=128) is None  # too long for both


def test_length_grouped_batches_cover_rows_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(10, 500, size=400))
    batches = length_grouped_batches(lengths, batch_size=8, group_size=10, seed=3)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 400 and all(len(b) == 8 for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size=8, group_size=10, seed=3)
    assert batches != length_grouped_batches(lengths, batch_size=8, group_size=10, seed=4)

    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    plain = length_grouped_batches(lengths, batch_size=8, group_size=1, seed=3)
    assert padding(batches) < 0.5 * padding(plain)


def test_cycle_epochs_reshuffles_each_epoch():
    stream = cycle_epochs([5] * 16, batch_size=4, group_size=1, seed=0)
    first = [next(stream) for _ in range(8)]
    assert [e for e, _ in first] == [0] * 4 + [1] * 4
    assert sorted(i for _, b in first[:4] for i in b) == list(range(16))
    assert [b for _, b in first[:4]] != [b for _, b in first[4:]]


def test_collate_puts_chosen_then_rejected_in_one_padded_batch():
    ex = [{"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]}, {"chosen_ids": [6], "rejected_ids": [7, 8, 9, 10]}]
    b = collate_pairs(ex, pad_id=0)
    assert b["num_pairs"] == 2 and tuple(b["input_ids"].shape) == (4, 4)
    assert b["input_ids"].tolist() == [[1, 2, 3, 0], [6, 0, 0, 0], [4, 5, 0, 0], [7, 8, 9, 10]]
    assert b["attention_mask"].sum(1).tolist() == [3, 1, 2, 4]


# --- config errors before any worker starts ------------------------------------------------------

def test_missing_model_path_names_the_key(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("")
    with pytest.raises(ConfigError, match="model.path"):
        load_config(TrainConfig, None, [f"data.train_path={tmp_path}", f"model.path={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="model.path"):
        load_config(TrainConfig, None, [f"data.train_path={tmp_path}"])


@pytest.mark.parametrize("override,key", [
    ("train.strategy=fsdp", "train.strategy"),
    ("train.micro_batch_size=0", "train.micro_batch_size"),
    ("deepspeed.offload_params=true", "deepspeed.offload_params"),
    ("model.dtype=bfloat16", "model.dtype"),
    ("logging.wandb_mode=sometimes", "logging.wandb_mode"),
    ("train.no_such_key=1", "no_such_key"),
])
def test_bad_settings_name_the_key(tmp_path, override, key):
    base = [f"data.train_path={tmp_path}", "model.path=pkg:minilm"]
    extra = ["deepspeed.zero_stage=2"] if override.startswith("deepspeed.offload_params") else []
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(TrainConfig, None, base + extra + [override])


def test_cli_fails_before_ray_starts(tmp_path, capsys):
    import ray

    from fcrm_ray.cli import main

    rc = main(["train", "--out", str(tmp_path / "out"), f"data.train_path={tmp_path}", f"model.path={tmp_path}/missing"])
    assert rc == 2 and "model.path" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_shipped_cpu_config_loads(tmp_path):
    cfg = load_config(TrainConfig, "configs/train/cpu.yaml", [f"data.train_path={tmp_path}"])
    assert cfg.scaling.num_workers == 1 and cfg.dtype == "float32" and cfg.data.max_length <= 512


def test_shipped_gemma_config_loads(tmp_path):
    from omegaconf import OmegaConf

    raw = OmegaConf.load("configs/train/cpu-gemma3-270m.yaml")
    assert raw.model.path == "pkg:gemma3-270m"
    # the model folder is built on demand (minutes): any causal folder checks the rest of the file
    model = build_tiny_qwen3_rm(tmp_path / "rm")
    cfg = load_config(TrainConfig, "configs/train/cpu-gemma3-270m.yaml",
                      [f"data.train_path={tmp_path}", f"model.path={model}"])
    assert cfg.model.gradient_checkpointing and cfg.model.freeze_embeddings and cfg.dtype == "float32"
    assert cfg.train.autocast == "auto" and cfg.train.strategy == "single" and cfg.scaling.num_workers == 1
    assert cfg.data.max_length <= 512  # Gemma 3's sliding window
    assert cfg.data.max_train_rows >= cfg.train.max_steps * cfg.train.micro_batch_size


def test_split_rows_from_several_pair_sets_with_stable_caps(tmp_path):
    """`data.extra_train_paths` adds more pair sets' train rows; caps pick a stable subset."""
    from fcrm_ray.config import load_config
    from fcrm_ray.data.pairs import write_pairs
    from fcrm_ray.data.quarantine import Quarantine
    from fcrm_ray.train.config import DataConfig
    from fcrm_ray.train.run import read_split_rows

    def pairs(prefix, n, split):
        return [{"id": f"{prefix}-{i}", "source": "t", "example_id": f"{prefix}-e{i}", "category": "c",
                 "tools": "[]", "conversation": "[]", "reference": "", "chosen_output": "a",
                 "rejected_output": "b", "error_type": "incorrect_parameter_value", "generator": "g",
                 "obfuscated": False, "split": split} for i in range(n)]

    write_pairs(pairs("a", 6, "train") + pairs("t", 10, "test"), tmp_path / "a", "pairs")
    write_pairs(pairs("b", 4, "train") + pairs("v", 3, "validation"), tmp_path / "b", "pairs")
    d = load_config(DataConfig, None, [f"train_path={tmp_path / 'a'}", f"extra_train_paths=[{tmp_path / 'b'}]",
                                       "max_test_rows=4", "extra_eval_splits=[]"])
    q = Quarantine(tmp_path / "q.jsonl")
    rows = read_split_rows(d, q)
    assert sorted(r["id"] for r in rows["train"]) == sorted([f"a-{i}" for i in range(6)] + [f"b-{i}" for i in range(4)])
    assert rows["validation"] == [] and len(rows["test"]) == 4
    assert [r["id"] for r in read_split_rows(d, Quarantine(tmp_path / "q2.jsonl"))["test"]] == [r["id"] for r in rows["test"]]
    capped = read_split_rows(load_config(DataConfig, None, [f"train_path={tmp_path / 'a'}", "max_train_rows=3"]), q)
    assert len(capped["train"]) == 3
    val = read_split_rows(load_config(DataConfig, None, [f"train_path={tmp_path / 'b'}", "max_validation_rows=2"]), q)
    assert len(val["validation"]) == 2 and len(val["train"]) == 4


def test_balanced_subset_flattens_the_mix_of_strata_and_is_stable():
    rows = ([{"id": f"common-{i}", "generator": "common"} for i in range(900)]
            + [{"id": f"mid-{i}", "generator": "mid"} for i in range(90)]
            + [{"id": f"rare-{i}", "generator": "rare"} for i in range(10)])

    def mix(power):
        picked = balanced_subset(rows, 100, ["generator"], power)
        assert len(picked) == 100 and len({r["id"] for r in picked}) == 100
        return Counter(r["generator"] for r in picked)

    natural, flat = mix(1.0), mix(0.0)
    assert natural == {"common": 90, "mid": 9, "rare": 1}
    assert flat == {"common": 45, "mid": 45, "rare": 10}
    half = mix(0.5)
    assert flat["common"] < half["common"] < natural["common"]
    assert balanced_subset(rows, 100, ["generator"], 0.5) == balanced_subset(list(reversed(rows)), 100, ["generator"], 0.5)
    assert balanced_subset(rows, 0, ["generator"], 0.0) == rows and balanced_subset(rows[:5], 10) == rows[:5]


def test_balanced_subset_fills_from_the_other_strata_when_one_runs_out():
    rows = ([{"id": f"a1-{i}", "generator": "a1"} for i in range(600)]
            + [{"id": f"a2-{i}", "generator": "a2"} for i in range(100)]
            + [{"id": f"b-{i}", "generator": "b"} for i in range(300)])
    flat = Counter(r["generator"] for r in balanced_subset(rows, 200, ["generator"], 0.0))
    assert sorted(flat.values()) == [66, 67, 67]  # three equal strata (largest remainders get one more)
    # a stratum smaller than its quota gives all it has; the others share the rest
    assert Counter(r["generator"] for r in balanced_subset(rows, 900, ["generator"], 0.0)) == {"a1": 500, "b": 300, "a2": 100}


def test_balance_power_out_of_range_names_the_key():
    from fcrm_ray.train.config import DataConfig

    with pytest.raises(ConfigError, match="data.balance_power"):
        load_config(DataConfig, None, ["train_path=.", "balance_power=2"]).validate()
    with pytest.raises(ConfigError, match="data.balance_by.*generatr"):
        load_config(DataConfig, None, ["train_path=.", "balance_by=[error_type,generatr]"]).validate()
    load_config(DataConfig, None, ["train_path=.", "balance_by=[error_type,generator]"]).validate()


def test_weighted_subset_shares_the_cap_by_source():
    from fcrm_ray.train.data import weighted_subset

    rows = ([{"id": f"m{i}", "source": "bfcl", "error_type": "a" if i % 4 else "b"} for i in range(200)]
            + [{"id": f"r{i}", "source": "bfcl_results", "error_type": "c"} for i in range(30)]
            + [{"id": f"x{i}", "source": "xlam", "error_type": "a"} for i in range(50)])
    got = weighted_subset(rows, 100, {"bfcl": 0.7, "bfcl_results": 0.3}, by=["error_type"], power=0.5)
    by_source = Counter(r["source"] for r in got)
    assert by_source == {"bfcl": 70, "bfcl_results": 30}  # xlam is not named: no rows
    assert got == weighted_subset(list(reversed(rows)), 100, {"bfcl": 0.7, "bfcl_results": 0.3}, ["error_type"], 0.5)
    # a source short of its share gives the rest to the others
    short = weighted_subset(rows, 200, {"bfcl": 0.5, "bfcl_results": 0.5})
    assert Counter(r["source"] for r in short) == {"bfcl": 170, "bfcl_results": 30}
