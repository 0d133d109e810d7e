"""Prompt-shared packing (`fcrm_ray/train/packing.py`): one packed row per pair gives the plain
path's rewards, Bradley-Terry loss and gradients (fp32, random-init tiny Qwen3), and encoders stay
on the plain path."""

import random

import pytest
import torch

from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm, forward_rewards, init_reward_model
from fcrm_ray.train.data import collate_pairs
from fcrm_ray.train.loss import bradley_terry_loss
from fcrm_ray.train.packing import collate_packed_pairs, pack_pair, packed_pair_rewards, packing_blocker

TOL = 1e-4


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return build_tiny_qwen3_rm(tmp_path_factory.mktemp("qwen"), hidden_size=64, num_layers=2)


def _model(path, attn="sdpa"):
    from transformers import AutoModelForSequenceClassification

    model, tok = init_reward_model(str(path))
    if attn != "sdpa":
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, attn_implementation=attn)
        model.config.pad_token_id = tok.pad_token_id
    model.train()  # gradients as in training (tiny Qwen3 has no dropout)
    return model, tok.pad_token_id


def random_pairs(vocab: int, pad_id: int, seed: int) -> list[dict]:
    """Pairs with different prompt lengths (incl. one prompt truncated differently for chosen and
    rejected, one call that is a prefix of the other, one call ending in a pad token)."""
    rng = random.Random(seed)
    tok = lambda n: [rng.choice([t for t in range(3, vocab) if t != pad_id]) for _ in range(n)]  # noqa: E731
    pairs = []
    for p_len, a_len, b_len in [(60, 7, 12), (23, 15, 5), (41, 9, 9), (5, 30, 22)]:
        prompt = tok(p_len)
        pairs.append({"chosen_ids": prompt + tok(a_len), "rejected_ids": prompt + tok(b_len)})
    prompt = tok(50)
    pairs.append({"chosen_ids": prompt[3:] + tok(8), "rejected_ids": prompt[:] + tok(5)})  # cut differently
    prompt, call = tok(30), tok(6)
    pairs.append({"chosen_ids": prompt + call, "rejected_ids": prompt + call + tok(4)})  # chosen is a prefix
    prompt = tok(33)
    pairs.append({"chosen_ids": prompt + tok(6) + [pad_id], "rejected_ids": prompt + tok(3)})  # trailing pad
    return pairs


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss_and_grads(model, pairs, pad_id, packed: bool):
    model.zero_grad(set_to_none=True)
    if packed:
        rc, rr = packed_pair_rewards(model, model, collate_packed_pairs(pairs, pad_id), "cpu")
    else:
        batch = collate_pairs(pairs, pad_id)
        r = forward_rewards(model, batch["input_ids"], batch["attention_mask"])
        rc, rr = r[:len(pairs)], r[len(pairs):]
    loss = bradley_terry_loss(rc, rr, margin=0.1, center_coef=0.01)
    loss.backward()
    return rc.detach(), rr.detach(), loss.detach(), _grads(model)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_and_gradients_equal_the_plain_path(qwen_dir, attn):
    model, pad_id = _model(qwen_dir, attn)
    assert packing_blocker(model) is None
    pairs = random_pairs(model.config.vocab_size, pad_id, seed=1)
    c0, r0, loss0, g0 = _loss_and_grads(model, pairs, pad_id, packed=False)
    c1, r1, loss1, g1 = _loss_and_grads(model, pairs, pad_id, packed=True)
    assert torch.allclose(c0, c1, atol=TOL, rtol=0) and torch.allclose(r0, r1, atol=TOL, rtol=0)
    assert abs(loss0.item() - loss1.item()) <= TOL
    assert g0.keys() == g1.keys() and len(g0) > 10
    worst = max((g0[n] - g1[n]).abs().max().item() for n in g0)
    assert worst <= TOL, f"max abs gradient difference {worst}"
    # the rewards are not all alike (a broken mask that leaked chosen into rejected would differ)
    assert (c0 - r0).abs().max() > 1e-3


def test_packing_shares_the_common_prefix_and_runs_fewer_tokens():
    pk = pack_pair([5, 6, 7, 8, 9], [5, 6, 7, 1], pad_id=0)
    assert pk["ids"].tolist() == [5, 6, 7, 8, 9, 1]
    assert pk["seg"].tolist() == [0, 0, 0, 1, 1, 2]
    assert pk["pos"].tolist() == [0, 1, 2, 3, 4, 3]
    assert (pk["chosen_at"], pk["rejected_at"]) == (4, 5)
    same = pack_pair([4, 4, 4], [4, 4, 4], pad_id=0)  # identical rows still keep one own token each
    assert same["seg"].tolist() == [0, 0, 1, 2] and same["pos"].tolist() == [0, 1, 2, 2]
    batch = collate_packed_pairs([{"chosen_ids": [5, 6, 7, 8], "rejected_ids": [5, 6, 7, 9]},
                                  {"chosen_ids": [1, 2], "rejected_ids": [3]}], pad_id=0)
    allowed = batch["allowed"][0, 0]
    assert batch["n_tokens"] == 5 + 3
    assert not allowed[4, 3] and allowed[4, 2] and allowed[3, 2] and not allowed[2, 3]  # rejected skips chosen
    assert batch["allowed"][1, 0, 4, 4] and not batch["allowed"][1, 0, 4, :4].any()  # pads see only themselves


def test_encoders_keep_the_plain_path(tmp_path):
    model, _ = init_reward_model(str(build_tiny_bert_rm(tmp_path / "bert")))
    assert "not a causal-LM" in packing_blocker(model)


def test_right_padded_causal_rows_need_no_mask(qwen_dir):
    """The loop's plain path drops the padding mask for causal LMs (right padding): same rewards."""
    model, pad_id = _model(qwen_dir)
    batch = collate_pairs(random_pairs(model.config.vocab_size, pad_id, seed=2), pad_id)
    assert (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        masked = forward_rewards(model, batch["input_ids"], batch["attention_mask"])
        free = forward_rewards(model, batch["input_ids"], None)
    assert torch.allclose(masked, free, atol=TOL, rtol=0)


@pytest.mark.parametrize("value,ok", [("auto", True), ("true", True), ("false", True), ("sometimes", False)])
def test_share_prompt_setting_is_checked_before_training(tmp_path, value, ok):
    from fcrm_ray.config import ConfigError, load_config
    from fcrm_ray.train.config import TrainConfig

    args = [f"data.train_path={tmp_path}", "model.path=pkg:minilm", f"train.share_prompt={value}"]
    if ok:
        assert str(load_config(TrainConfig, None, args).train.share_prompt).lower() == value
    else:
        with pytest.raises(ConfigError, match=r"train\.share_prompt"):
            load_config(TrainConfig, None, args)
