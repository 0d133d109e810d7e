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


def _base_lm(qwen_dir, out):
    """A base causal LM folder (the tiny RM's backbone and tokenizer, no score head)."""
    from transformers import Qwen3ForCausalLM

    rm = AutoModelForSequenceClassification.from_pretrained(qwen_dir)
    lm = Qwen3ForCausalLM(rm.config)
    lm.config.architectures = ["Qwen3ForCausalLM"]
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(qwen_dir).save_pretrained(out)
    return str(out)


def _load_reports(fn):
    """The transformers load reports logged while `fn` runs."""
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
    return [m for m in seen if "LOAD REPORT" in m]


def test_fresh_score_head_is_one_line_of_ours_not_the_library_report(qwen_dir, tmp_path):
    base = _base_lm(qwen_dir, tmp_path / "base")
    notes = []
    assert _load_reports(lambda: init_reward_model(base, note=notes.append)) == []
    assert notes == ["score head initialised (lm_head.weight of the checkpoint not used): "
                     "training starts from the pretrained backbone"]
    # continued training from a reward model: no new head, nothing to say
    notes.clear()
    assert _load_reports(lambda: init_reward_model(str(qwen_dir), note=notes.append)) == [] and notes == []


def test_other_loading_problems_keep_the_library_report(qwen_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    base = _base_lm(qwen_dir, tmp_path / "base")
    weights = tmp_path / "base" / "model.safetensors"
    # a weight inside the backbone that the architecture does not have: a real mismatch
    save_file({**load_file(weights), "model.layers.0.extra.weight": torch.zeros(2)}, weights, metadata={"format": "pt"})
    notes = []
    reports = _load_reports(lambda: init_reward_model(base, note=notes.append))
    assert notes == [] and len(reports) == 1 and "UNEXPECTED" in reports[0] and "MISSING" in reports[0]


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


# --- vLLM raw-score serving (the vLLM server itself is a GPU path: docs/serving.md) -------------

def test_saved_reward_models_carry_the_vllm_fields(qwen_dir, bert_dir, tmp_path):
    from fcrm_ray.models import vllm_serving_problems

    import shutil

    for name, src in (("qwen", qwen_dir), ("bert", bert_dir)):
        # a source whose config says otherwise (a classifier fine-tuned elsewhere) gets the fields too
        shutil.copytree(src, tmp_path / f"{name}-src")
        cfg = json.loads((tmp_path / f"{name}-src" / "config.json").read_text())
        cfg["problem_type"] = "multi_label_classification"
        (tmp_path / f"{name}-src" / "config.json").write_text(json.dumps(cfg))
        model, tok = init_reward_model(str(tmp_path / f"{name}-src"))
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        assert cfg["problem_type"] == "regression"
        assert cfg["id2label"] == {"0": "reward"}
        assert cfg["pad_token_id"] == tok.pad_token_id is not None
        assert cfg["architectures"][0].endswith("ForSequenceClassification")
        assert vllm_serving_problems(str(tmp_path / name)) == []
    # the head names vLLM loads: `score` for causal LMs, BERT's own `classifier`
    from safetensors import safe_open

    with safe_open(str(tmp_path / "qwen" / "model.safetensors"), framework="numpy") as f:
        assert "score.weight" in set(f.keys()) and "score.bias" not in set(f.keys())
    with safe_open(str(tmp_path / "bert" / "model.safetensors"), framework="numpy") as f:
        assert {"classifier.weight", "bert.pooler.dense.weight"} <= set(f.keys())


def test_mark_reward_config_overrides_a_classification_config():
    from transformers import Qwen3Config

    from fcrm_ray.models import mark_reward_config

    cfg = Qwen3Config(num_labels=1)
    cfg.problem_type = "multi_label_classification"  # vLLM would apply a sigmoid
    mark_reward_config(cfg, 7)
    assert (cfg.problem_type, cfg.num_labels, cfg.pad_token_id, cfg.id2label) == ("regression", 1, 7, {0: "reward"})
    with pytest.raises(RewardModelError, match="pad_token_id"):
        mark_reward_config(cfg, None)


def test_vllm_serving_problems_names_what_is_missing(qwen_dir, tmp_path):
    import shutil

    from fcrm_ray.models import vllm_serving_problems

    bad = tmp_path / "bad"
    shutil.copytree(qwen_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg.pop("problem_type")
    cfg.pop("pad_token_id")
    (bad / "config.json").write_text(json.dumps(cfg))
    problems = vllm_serving_problems(str(bad))
    assert any("sigmoid" in p for p in problems) and any("pad_token_id" in p for p in problems)
    (bad / "model.safetensors").unlink()
    assert any("safetensors" in p for p in vllm_serving_problems(str(bad)))
    assert "not a model folder" in vllm_serving_problems(str(tmp_path))[0]


def _vllm_classify(model, ids):
    """What vLLM's pooling runner computes for one `/classify` input with problem_type=regression:
    the head over the LAST token's hidden state (causal LMs: `as_seq_cls_model`'s `score`) or over
    [CLS] (BERT), and no activation (`get_classification_activation_function` -> identity)."""
    x = torch.tensor([ids])
    with torch.inference_mode():
        if hasattr(model, "score"):
            return float(model.score(model.model(input_ids=x).last_hidden_state[0, -1]))
        return float(model(input_ids=x).logits[0, 0])  # BERT: vLLM runs the same pooler + classifier


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris in celsius?"}]
CANDIDATES = ['[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]',
              '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>',
              "I cannot help with that."]


@pytest.mark.parametrize("which", ["qwen", "bert"])
def test_vllm_input_scores_like_fcrm_serve(which, qwen_dir, bert_dir):
    """The ids (and text) docs/serving.md sends to vLLM are what RewardScorer feeds the model, and
    vLLM's computation on them gives RewardScorer's number (`fcrm serve` scores with RewardScorer)."""
    from fcrm_ray.models import vllm_classify_input
    from fcrm_ray.scoring import RewardScorer
    from fcrm_ray.toolcall.render import render

    scorer = RewardScorer(str(qwen_dir if which == "qwen" else bert_dir), max_length=384)
    want = scorer.score_candidates(TOOLS, MESSAGES, CANDIDATES)
    for cand, w in zip(CANDIDATES, want):
        r = render(scorer.tokenizer, TOOLS, MESSAGES, cand)
        ids = vllm_classify_input(scorer.tokenizer, r.prompt, r.completion, max_length=scorer.max_length)
        pre, post = special_wrap(scorer.tokenizer)
        p_ids = scorer.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
        c_ids = scorer.tokenizer(r.completion, add_special_tokens=False)["input_ids"]
        assert ids == pre + p_ids + c_ids + post  # RewardScorer._join's sequence, nothing cut here
        # the rendered text, tokenized as vLLM tokenizes a string input, is the same sequence
        assert scorer.tokenizer(r.prompt + r.completion, add_special_tokens=True)["input_ids"] == ids
        assert _vllm_classify(scorer.model, ids) == pytest.approx(w, abs=1e-4)


def test_vllm_input_drops_trailing_pads_when_pad_is_eos(qwen_dir, tmp_path):
    """A tokenizer without its own pad token pads with EOS, the token the render ends with: HF
    reads the reward before it, vLLM at the last token; the ids we send end where HF reads."""
    from fcrm_ray.models import vllm_classify_input
    from fcrm_ray.toolcall.render import render

    model, tok = load_reward_model(str(qwen_dir))
    tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    r = render(tok, TOOLS, MESSAGES, CANDIDATES[0])
    ids = vllm_classify_input(tok, r.prompt, r.completion, max_length=384)
    full, _ = encode_for_reward(tok, r.prompt, r.completion, 384, min_prompt_tokens=16)
    assert full[-1] == tok.eos_token_id and ids == full[:-1]
    with torch.inference_mode():
        hf = forward_rewards(model, torch.tensor([full]), torch.ones(1, len(full), dtype=torch.long))
    assert _vllm_classify(model, ids) == pytest.approx(float(hf[0]), abs=1e-4)
    assert _vllm_classify(model, full) != pytest.approx(float(hf[0]), abs=1e-4)  # the mismatch it avoids


# --- BOS written by a chat template; sliding-window layers -------------------------------------

class _BosTok:
    """Character-level stand-in for a Gemma/Llama-style tokenizer: adds <bos> (id 2) in front,
    and reads a literal "<bos>" in text as that token (as a template's `{{ bos_token }}`)."""
    bos_token_id = 2

    def __call__(self, text, add_special_tokens=True, verbose=True):
        ids = [2] if add_special_tokens else []
        while text:
            if text.startswith("<bos>"):
                ids.append(2)
                text = text[5:]
            else:
                ids.append(100 + ord(text[0]) % 1000)
                text = text[1:]
        return {"input_ids": ids}


@pytest.mark.parametrize("max_length, truncated", [(64, False), (40, True)])
def test_a_template_bos_is_not_doubled_and_survives_truncation(max_length, truncated):
    from fcrm_ray.models import strip_template_special

    tok = _BosTok()
    prompt, completion = "<bos>user: weather in Paris?\nmodel:", " get_weather(city='Paris')"
    ids, cut = encode_for_reward(tok, prompt, completion, max_length, min_prompt_tokens=4)
    assert cut == truncated and len(ids) <= max_length
    assert ids[0] == 2 and ids.count(2) == 1
    assert ids[-len(completion):] == tok(completion, add_special_tokens=False)["input_ids"]  # the call is whole
    # only a leading BOS is the template's: one inside the text is left alone
    assert strip_template_special(tok, [2, 5, 2, 6]) == [5, 2, 6]
    assert strip_template_special(tok, [5, 2, 6]) == [5, 2, 6]


class _SlidingModel(torch.nn.Module):
    def __init__(self, window, layer_types, attn="sdpa"):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"sliding_window": window, "layer_types": layer_types,
                                     "_attn_implementation": attn})()


def test_custom_masks_keep_the_sliding_window_per_layer_type():
    from fcrm_ray.models import attention_mask_4d, sliding_window

    pos = torch.tensor([[0, 1, 2, 3, 4, 5]])
    allowed = (pos[0][:, None] >= pos[0][None, :])[None, None]  # causal
    plain = _SlidingModel(None, ["full_attention"] * 2)
    assert sliding_window(plain) is None and attention_mask_4d(allowed, plain) is allowed
    assert sliding_window(_SlidingModel(3, ["full_attention"] * 2)) is None  # a window no layer uses
    model = _SlidingModel(3, ["sliding_attention", "full_attention"])
    with pytest.raises(ValueError, match="q_pos and k_pos"):
        attention_mask_4d(allowed, model)
    masks = attention_mask_4d(allowed, model, pos, pos)
    assert torch.equal(masks["full_attention"], allowed)
    sl = masks["sliding_attention"][0, 0]
    assert sl[5].tolist() == [False, False, False, True, True, True]  # keys within 3 positions
    assert torch.equal(sl, allowed[0, 0] & ((pos[0][:, None] - pos[0][None, :]) < 3))
    # a cache holding only the last 2 of 4 prefix positions for the sliding layers
    q = torch.tensor([[4, 5]])
    k = torch.tensor([[0, 1, 2, 3, 4, 5]])
    allowed2 = torch.ones((1, 1, 2, 6), dtype=torch.bool)
    m = attention_mask_4d(allowed2, model, q, k, sliding_from=2)
    assert m["full_attention"].shape[-1] == 6 and m["sliding_attention"].shape[-1] == 4
    assert m["sliding_attention"][0, 0].tolist() == [[True, True, True, True], [False, True, True, True]]
    # eager attention: additive float masks, 0 where allowed
    eager = attention_mask_4d(allowed, _SlidingModel(3, ["sliding_attention"], attn="eager"), pos, pos)
    assert eager["sliding_attention"][0, 0, 5, 0] < -1e30 and eager["sliding_attention"][0, 0, 5, 5] == 0
