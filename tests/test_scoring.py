"""RewardScorer: shared-prefix scores equal full-sequence scores, batching/padding invariance,
encoder fallback, truncation, pair rows, the Ray Data actor, and errors for non-RM folders."""

import json
import math
import random

import numpy as np
import pytest
import torch

from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.models import RewardModelError, build_tiny_bert_rm, build_tiny_qwen3_rm, encode_for_reward
from fcrm_ray.scoring import RewardScorer, RewardScoringActor, score_pairs

TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "unit": {"type": "string",
                                                                   "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}},
         {"name": "book_flight", "parameters": {"type": "object", "properties": {"origin": {"type": "string"},
                                                                                 "destination": {"type": "string"}}}}]
CONV = [{"role": "user", "content": "What is the weather in Paris? Use celsius."}]
CANDIDATES = ['[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]',
              'get_weather(city="Paris")',
              '[{"name": "book_flight", "arguments": {"origin": "Paris", "destination": "London"}}]',
              "I cannot help with that."]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    # 3 layers so the cache is exercised across layers; hidden 64 keeps it fast
    return str(build_tiny_qwen3_rm(tmp_path_factory.mktemp("qwen") / "rm", num_layers=3, seed=1))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return str(build_tiny_bert_rm(tmp_path_factory.mktemp("bert") / "rm"))


@pytest.fixture(scope="module")
def scorers(qwen_dir):
    """One scorer per padding side (loading is the slow part)."""
    return {side: RewardScorer(qwen_dir, batch_size=4, padding_side=side) for side in ("right", "left")}


def _reference(model, seq):
    """Plain HF: one unpadded sequence, the model's own forward."""
    with torch.inference_mode():
        return model(input_ids=torch.tensor([seq])).logits.reshape(-1)[0].item()


def _random_group(rng, vocab, n, prefix_len=(20, 200), suffix_len=(3, 30)):
    prefix = [rng.choice(vocab) for _ in range(rng.randint(*prefix_len))]
    suffixes = [[rng.choice(vocab) for _ in range(rng.randint(*suffix_len))] for _ in range(n)]
    return prefix, suffixes


def _vocab(scorer):
    return [i for i in range(scorer.model.config.vocab_size) if i != scorer.pad_id]


# --- shared prefix == full sequence ------------------------------------------------------------

def test_fast_path_is_on_for_causal_lm(scorers, qwen_dir):
    info = scorers["right"].model_info()
    assert info["shared_prefix"] is True and info["prefix_mode"] == "packed"
    assert info["architecture"] == "Qwen3ForSequenceClassification" and info["num_params"] > 0
    assert RewardScorer(qwen_dir, prefix_mode="batched").prefix_mode == "batched"
    assert RewardScorer(qwen_dir, shared_prefix=False).model_info()["shared_prefix"] is False


# packed: suffixes in one row with a block mask (no padding); batched: expanded cache + padding
MODES = [("packed", "right"), ("batched", "right"), ("batched", "left")]


@pytest.mark.parametrize("mode,side", MODES)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_shared_prefix_equals_full_sequence(scorers, mode, side, n):
    scorer = scorers[side]
    rng = random.Random(100 * n + (side == "left") + 7 * (mode == "packed"))
    vocab = _vocab(scorer)
    for _ in range(2):
        prefix, suffixes = _random_group(rng, vocab, n)
        fast = scorer.score_shared_prefix(prefix, suffixes, mode=mode)
        full = scorer.score_ids([prefix + s for s in suffixes])
        ref = [_reference(scorer.model, prefix + s) for s in suffixes]
        assert len(fast) == n and all(math.isfinite(x) for x in fast)
        assert max(abs(a - b) for a, b in zip(fast, full)) <= 1e-4
        assert max(abs(a - b) for a, b in zip(fast, ref)) <= 1e-4
    # sanity: the scores do depend on the suffix (else equality would be vacuous)
    if n > 1:
        assert max(fast) - min(fast) > 1e-6


def test_left_and_right_padding_agree(scorers):
    rng = random.Random(7)
    prefix, suffixes = _random_group(rng, _vocab(scorers["right"]), 8)
    r = scorers["right"].score_shared_prefix(prefix, suffixes, mode="batched")
    l_ = scorers["left"].score_shared_prefix(prefix, suffixes, mode="batched")
    assert max(abs(a - b) for a, b in zip(r, l_)) <= 1e-4


def test_batch_size_invariance(qwen_dir, scorers):
    rng = random.Random(3)
    vocab = _vocab(scorers["right"])
    groups = [_random_group(rng, vocab, n) for n in (2, 5, 8)]
    one = RewardScorer(qwen_dir, batch_size=1)
    for prefix, suffixes in groups:
        for mode in ("packed", "batched"):
            a = scorers["right"].score_shared_prefix(prefix, suffixes, mode=mode)  # batch_size=4: several batches
            b = one.score_shared_prefix(prefix, suffixes, mode=mode)
            assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-5
        seqs = [prefix + s for s in suffixes]
        assert max(abs(x - y) for x, y in zip(scorers["right"].score_ids(seqs), one.score_ids(seqs))) <= 1e-5


def test_bucketed_equals_unbucketed(scorers):
    """Length-sorted batches padded to their own max == one batch padded to the global max."""
    scorer = scorers["right"]
    rng = random.Random(11)
    vocab = _vocab(scorer)
    seqs = [[rng.choice(vocab) for _ in range(rng.randint(5, 120))] for _ in range(10)]
    before = scorer.stats["pad_tokens"]
    bucketed = scorer.score_ids(seqs)
    bucket_pad = scorer.stats["pad_tokens"] - before
    width = max(map(len, seqs))
    ids = torch.tensor([s + [scorer.pad_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.inference_mode():
        plain = scorer.model(input_ids=ids, attention_mask=mask).logits.reshape(-1).tolist()
    assert max(abs(a - b) for a, b in zip(bucketed, plain)) <= 1e-5
    assert bucket_pad < int((mask == 0).sum())  # bucketing really padded less


def test_text_api_groups_equal_texts(scorers):
    """score_groups (shared prefix) == score_texts (full sequences) on real rendered text."""
    from fcrm_ray.toolcall.render import render

    scorer = scorers["right"]
    rendered = [render(scorer.tokenizer, TOOLS, CONV, c) for c in CANDIDATES]
    assert len({r.prompt for r in rendered}) == 1
    before = scorer.stats["shared_groups"]
    grouped = scorer.score_candidates(TOOLS, CONV, CANDIDATES)
    assert scorer.stats["shared_groups"] == before + 1
    texts = scorer.score_texts([r.prompt for r in rendered], [r.completion for r in rendered])
    assert max(abs(a - b) for a, b in zip(grouped, texts)) <= 1e-4
    # (tools, conversation, candidates) groups, as Serve batches them, give the same numbers
    [via_groups] = scorer.score_groups([(TOOLS, CONV, CANDIDATES)])
    assert via_groups == pytest.approx(grouped, abs=1e-6)


def test_mixed_groups_keep_order(scorers):
    scorer = scorers["left"]
    groups = [("prompt one " * 80, ["a", "bb", "ccc"]), ("second prompt", ["x"]), ("third " * 200, ["yy", "z"]),
              ("short", ["s1", "s2"])]
    before = scorer.stats["shared_groups"]
    got = scorer.score_groups(groups)
    assert [len(g) for g in got] == [3, 1, 2, 2]
    assert scorer.stats["shared_groups"] - before == 2  # the two long prompts; "short" is not worth a cache
    flat_p = [p for p, cs in groups for _ in cs]
    flat_c = [c for _, cs in groups for c in cs]
    want = scorer.score_texts(flat_p, flat_c)
    assert [x for g in got for x in g] == pytest.approx(want, abs=1e-4)


# --- tokenisation and truncation ----------------------------------------------------------------

@pytest.mark.parametrize("which", ["qwen", "bert"])
def test_ids_match_the_trainer_encoding(which, qwen_dir, bert_dir):
    """prefix + suffix ids are exactly encode_for_reward's (what fcrm_ray.train.data trains on)."""
    scorer = RewardScorer(qwen_dir if which == "qwen" else bert_dir, max_length=40)
    prompt, completion = "What is the weather in Paris? " * 8, ' get_weather(city="Paris")'
    [p], [c] = scorer._tokenize([prompt]), scorer._tokenize([completion])
    pre, suf, truncated = scorer._join(p, c)
    ids, trunc_ref = encode_for_reward(scorer.tokenizer, prompt, completion, 40, scorer.min_prompt_tokens)
    assert pre + suf == ids and truncated == trunc_ref is True


def test_truncation_keeps_the_completion(qwen_dir):
    scorer = RewardScorer(qwen_dir, max_length=64)
    prompt = "Book a flight from New York to London on 2024-05-01 for 2 adults. " * 30
    completions = ['get_weather(city="Paris")<|im_end|>', 'book_flight(origin="NYC")<|im_end|>', "x<|im_end|>"]
    grouped = scorer.score_groups([(prompt, completions)])[0]
    assert scorer.stats["truncated"] == 3
    for comp, score in zip(completions, grouped):
        ids, truncated = encode_for_reward(scorer.tokenizer, prompt, comp, 64, scorer.min_prompt_tokens)
        c_ids = scorer.tokenizer(comp, add_special_tokens=False)["input_ids"]
        assert truncated and len(ids) == 64 and ids[-len(c_ids):] == c_ids  # the whole call survives
        assert score == pytest.approx(_reference(scorer.model, ids), abs=1e-4)


def test_over_long_completion_is_nan_and_counted(qwen_dir):
    scorer = RewardScorer(qwen_dir, max_length=32)
    out = scorer.score_texts(["short prompt", "short prompt"], ["word " * 100, "ok"])
    assert math.isnan(out[0]) and math.isfinite(out[1])
    assert scorer.stats["over_long"] == 1


def test_over_long_completion_is_scored_within_overflow_length(qwen_dir, tmp_path):
    """The trainer's rule (`models.prompt_room`): a completion too long for max_length is scored
    at up to overflow_length tokens, the same ids the trainer builds; the model's training value is
    the default (train_config.yaml), an explicit 0 turns it off."""
    prompt, long_c = "short prompt " * 20, "word " * 30  # ~120 tokens: over 32, within 256
    scorer = RewardScorer(qwen_dir, max_length=32, overflow_length=256)
    out = scorer.score_texts([prompt, prompt], [long_c, "ok"])
    assert all(math.isfinite(x) for x in out) and scorer.stats["overflowed"] == 1
    ids, _ = encode_for_reward(scorer.tokenizer, prompt, long_c, 32, scorer.min_prompt_tokens, overflow_length=256)
    assert 32 < len(ids) <= 256 and out[0] == pytest.approx(_reference(scorer.model, ids), abs=1e-4)
    # the model folder's training value is the default; an explicit 0 is off
    import shutil

    d = tmp_path / "rm"
    shutil.copytree(qwen_dir, d)
    (d / "train_config.yaml").write_text("data:\n  max_length: 32\n  overflow_length: 256\n")
    trained = RewardScorer(str(d))
    assert (trained.max_length, trained.overflow_length) == (32, 256)
    assert math.isfinite(trained.score_texts([prompt], [long_c])[0])
    off = RewardScorer(str(d), overflow_length=0)
    assert math.isnan(off.score_texts([prompt], [long_c])[0]) and off.stats["over_long"] == 1


# --- encoders ----------------------------------------------------------------------------------

def test_encoder_falls_back_to_full_sequences(bert_dir):
    scorer = RewardScorer(bert_dir, batch_size=3)
    assert scorer.shared_prefix is False
    grouped = scorer.score_candidates(TOOLS, CONV, CANDIDATES)
    assert scorer.stats["shared_groups"] == 0 and scorer.stats["full_sequences"] == len(CANDIDATES)
    from fcrm_ray.toolcall.render import render

    rendered = [render(scorer.tokenizer, TOOLS, CONV, c) for c in CANDIDATES]
    texts = scorer.score_texts([r.prompt for r in rendered], [r.completion for r in rendered])
    assert grouped == pytest.approx(texts, abs=1e-6)
    # bidirectional attention: forcing the fast path is refused with a reason
    with pytest.raises(ValueError, match="shared_prefix"):
        RewardScorer(bert_dir, shared_prefix=True)


def test_max_length_is_capped_at_the_model_positions(bert_dir):
    scorer = RewardScorer(bert_dir, max_length=4096)
    assert scorer.max_length == 512
    # so is the longer limit for long calls; one not above max_length is off
    assert RewardScorer(bert_dir, max_length=320, overflow_length=4096).overflow_length == 512
    assert RewardScorer(bert_dir, max_length=320, overflow_length=300).overflow_length == 0


# --- errors ------------------------------------------------------------------------------------

def test_non_reward_model_dir_is_a_clear_error(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    Qwen3ForCausalLM(cfg).save_pretrained(tmp_path / "lm")
    with pytest.raises(RewardModelError, match="not a reward model"):
        RewardScorer(str(tmp_path / "lm"))
    with pytest.raises(RewardModelError, match="config.json"):
        RewardScorer(str(tmp_path))


def test_bad_arguments(qwen_dir, scorers):
    with pytest.raises(ValueError, match="padding_side"):
        RewardScorer(qwen_dir, padding_side="middle")
    with pytest.raises(ValueError, match="completions"):
        scorers["right"].score_texts(["a", "b"], ["c"])


# --- pair rows and Ray Data ----------------------------------------------------------------------

def _pair_row(i, chosen, rejected):
    return {"id": f"p{i}", "tools": json.dumps(TOOLS), "conversation": json.dumps(CONV),
            "chosen_output": chosen, "rejected_output": rejected}


def test_score_pairs_matches_candidates_and_quarantines(scorers, tmp_path):
    scorer = scorers["right"]
    rows = [_pair_row(0, CANDIDATES[0], CANDIDATES[2]), _pair_row(1, CANDIDATES[1], CANDIDATES[3])]
    chosen, rejected = score_pairs(scorer, rows)
    for row, c, r in zip(rows, chosen, rejected):
        want = scorer.score_candidates(TOOLS, CONV, [row["chosen_output"], row["rejected_output"]])
        assert [c, r] == pytest.approx(want, abs=1e-6)
    bad = dict(rows[0], id="bad", tools="{not json")
    with pytest.raises(Exception, match="bad"):
        score_pairs(scorer, [bad])
    q = Quarantine(tmp_path / "q.jsonl")
    chosen, rejected = score_pairs(scorer, [rows[0], bad, rows[1]], quarantine=q)
    assert math.isnan(chosen[1]) and math.isnan(rejected[1]) and q.total == 1
    assert math.isfinite(chosen[0]) and math.isfinite(rejected[2])


def test_actor_on_numpy_and_pandas_batches(qwen_dir, scorers):
    import pandas as pd

    actor = RewardScoringActor(qwen_dir, batch_size=4)
    prompts = np.array(["shared prompt " * 60] * 3 + ["another prompt"], dtype=object)
    completions = np.array(["a", "bb", "ccc", "d"], dtype=object)
    out = actor({"prompt": prompts, "completion": completions})
    want = scorers["right"].score_texts(list(prompts), list(completions))
    assert out["reward"].tolist() == pytest.approx(want, abs=1e-4)
    assert actor.scorer.stats["shared_groups"] == 1  # the three rows sharing a prompt
    df = actor(pd.DataFrame({"prompt": prompts, "completion": completions, "group_id": [1, 1, 2, 3]}))
    assert list(df.columns) == ["prompt", "completion", "group_id", "reward"]
    assert df["reward"].tolist() == pytest.approx(want, abs=1e-4)
    with pytest.raises(KeyError, match="completion"):
        actor({"prompt": prompts})


@pytest.mark.slow
def test_actor_pool_in_ray_data(qwen_dir, scorers):
    import ray

    from fcrm_ray.common.ray_cluster import ActorPoolConfig
    from fcrm_ray.common.scorer import ScorerConfig
    from fcrm_ray.scoring import score_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = [{"prompt": f"prompt {i % 3} " * 5, "completion": f"call {i}"} for i in range(12)]
        ds = score_dataset(ray.data.from_items(rows), qwen_dir, ScorerConfig(autocast="none"),
                           ActorPoolConfig(num_actors=1, batch_size=6))
        got = {(r["prompt"], r["completion"]): r["reward"] for r in ds.take_all()}
    finally:
        ray.shutdown()
    want = scorers["right"].score_texts([r["prompt"] for r in rows], [r["completion"] for r in rows])
    assert [got[(r["prompt"], r["completion"])] for r in rows] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("which", ["qwen", "bert"])
def test_full_sequence_rewards_invariant_to_batch_size_and_padding_side(which, qwen_dir, bert_dir):
    """The determinism guarantee, stated once: fp32 rewards of whole sequences do not depend on
    the batch size (which rows share a padded batch) or the padding side, within 1e-5, and equal
    the model's own unpadded forward."""
    path = qwen_dir if which == "qwen" else bert_dir
    scorers = {(bs, side): RewardScorer(path, batch_size=bs, padding_side=side, shared_prefix=False)
               for bs in (1, 3, 16) for side in ("right", "left")}
    if which == "bert":  # a random-init BERT head gives near-constant rewards: spread them out
        for scorer in scorers.values():
            with torch.no_grad():
                scorer.model.classifier.weight.mul_(30.0)
    base = scorers[(1, "right")]
    rng = random.Random(11)
    vocab = _vocab(base)
    if which == "bert":  # [CLS] ... [SEP] like the tokenizer makes them
        tok = base.tokenizer
        seqs = [[tok.cls_token_id] + [rng.choice(vocab) for _ in range(rng.randint(3, 60))] + [tok.sep_token_id]
                for _ in range(10)]
    else:
        seqs = [[rng.choice(vocab) for _ in range(rng.randint(3, 60))] for _ in range(10)]
    ref = [_reference(base.model, s) for s in seqs]
    assert max(ref) - min(ref) > 1e-4  # the rewards differ, so equality below is not vacuous
    for key, scorer in scorers.items():
        got = scorer.score_ids(seqs)
        assert max(abs(a - b) for a, b in zip(got, ref)) <= 1e-5, key
