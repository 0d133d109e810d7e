"""Reward models as standard HF checkpoints: tiny builds, loading, errors, reward position."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fcrm_ray.models import (RewardModelError, build_tiny_bert_rm, build_tiny_qwen3_rm, encode_for_reward,
                             forward_rewards, init_reward_model, load_reward_model, special_wrap)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return build_tiny_qwen3_rm(tmp_path_factory.mktemp("qwen") / "rm")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build_tiny_bert_rm(tmp_path_factory.mktemp("bert") / "rm")


@pytest.mark.parametrize("which", ["qwen", "bert"])
def test_tiny_models_load_with_plain_transformers(which, qwen_dir, bert_dir):
    path = qwen_dir if which == "qwen" else bert_dir
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.num_labels == 1
    assert type(model).__name__.endswith("ForSequenceClassification")
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.pad_token_id is not None and tok.pad_token_id == model.config.pad_token_id


def test_load_reward_model_sets_pad_and_eval_mode(qwen_dir):
    model, tok = load_reward_model(str(qwen_dir))
    assert not model.training
    assert model.config.pad_token_id == tok.pad_token_id
    assert tok.pad_token != tok.eos_token  # EOS is the scored token, it must not count as padding
    enc = tok(["hello there", "hi"], padding=True, return_tensors="pt")
    r = forward_rewards(model, enc["input_ids"], enc["attention_mask"])
    assert r.shape == (2,) and r.dtype == torch.float32


def test_reward_is_read_at_last_non_pad_token(qwen_dir):
    model, tok = load_reward_model(str(qwen_dir))
    ids = tok("get_weather(city=\"Paris\")<|im_end|>", add_special_tokens=False)["input_ids"]
    single = forward_rewards(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    padded = torch.tensor([ids + [tok.pad_token_id] * 5])
    mask = torch.tensor([[1] * len(ids) + [0] * 5])
    assert torch.allclose(forward_rewards(model, padded, mask), single, atol=1e-5)
    # a different last token gives a different reward (the head reads that position)
    other = forward_rewards(model, torch.tensor([ids[:-1]]), torch.ones(1, len(ids) - 1, dtype=torch.long))
    assert not torch.allclose(other, single)


def test_base_lm_dir_is_rejected_before_scoring(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    Qwen3ForCausalLM(cfg).save_pretrained(tmp_path / "lm")
    with pytest.raises(RewardModelError, match="not a reward model"):
        load_reward_model(str(tmp_path / "lm"))
    with pytest.raises(RewardModelError, match="no config.json"):
        load_reward_model(str(tmp_path))


def test_multi_label_classifier_is_rejected(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=3)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "cls3")
    with pytest.raises(RewardModelError, match="3 labels"):
        load_reward_model(str(tmp_path / "cls3"))


def test_init_reward_model_from_causal_lm_backbone(qwen_dir, tmp_path):
    from transformers import Qwen3ForCausalLM

    # a base causal LM folder (same tokenizer) becomes a SeqCls RM with a fresh scalar head
    rm = AutoModelForSequenceClassification.from_pretrained(qwen_dir)
    lm = Qwen3ForCausalLM(rm.config)
    lm.config.architectures = ["Qwen3ForCausalLM"]
    lm.save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(qwen_dir).save_pretrained(tmp_path / "base")
    model, tok = init_reward_model(str(tmp_path / "base"))
    assert type(model).__name__ == "Qwen3ForSequenceClassification"
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    model.save_pretrained(tmp_path / "rm")
    cfg = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForSequenceClassification"]
    load_reward_model(str(tmp_path / "rm"))  # the saved result passes the reward-model check


def test_encode_keeps_completion_and_cuts_prompt_from_left(bert_dir):
    tok = AutoTokenizer.from_pretrained(bert_dir)
    prompt = " ".join(f"tool{i} city string" for i in range(80))
    completion = ' get_weather(city="Paris")'
    c_ids = tok(completion, add_special_tokens=False)["input_ids"]
    ids, truncated = encode_for_reward(tok, prompt, completion, max_length=40)
    pre, post = special_wrap(tok)
    assert truncated and len(ids) == 40
    assert ids[:len(pre)] == pre and ids[len(ids) - len(post):] == post  # [CLS] ... [SEP]
    assert ids[len(ids) - len(post) - len(c_ids):len(ids) - len(post)] == c_ids  # the call survives whole
    full = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[len(pre):len(pre) + 3] == full[len(full) - (40 - len(pre) - len(post) - len(c_ids)):][:3]


def test_encode_short_input_is_untouched_and_overlong_call_is_refused(bert_dir):
    tok = AutoTokenizer.from_pretrained(bert_dir)
    ids, truncated = encode_for_reward(tok, "weather", " f(a=1)", max_length=64)
    assert not truncated and ids == tok("weather f(a=1)")["input_ids"]
    long_call = " f(" + ", ".join(f"a{i}={i}" for i in range(100)) + ")"
    assert encode_for_reward(tok, "weather in paris", long_call, max_length=64) == (None, False)
