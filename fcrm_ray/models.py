"""Reward models as standard Hugging Face checkpoints: load, initialise, forward, tiny test builds.

A reward model here is always an `AutoModelForSequenceClassification` with `num_labels=1` saved
with `save_pretrained` (plus its tokenizer), so transformers and vLLM's pooling runner load it with
no custom code. For causal LMs transformers reads the score at the last token that is not
`config.pad_token_id` (works with left and right padding), so the pad token is always set and
`config.pad_token_id` always agrees with the tokenizer. Encoders (BERT/MiniLM) pool the `[CLS]`
token instead.

Saved configs carry what vLLM's pooling runner (`vllm serve CKPT --runner pooling --convert
classify`) needs to return the raw Bradley-Terry score (`mark_reward_config`): one label,
`problem_type: "regression"` (vLLM applies no activation then; otherwise a sigmoid for one label)
and `pad_token_id`. `vllm_serving_problems` checks a folder; `vllm_classify_input` gives the token ids
to send so that vLLM's score equals ours (docs/serving.md).

`build_tiny_qwen3_rm` / `build_tiny_bert_rm` make random-init 2-layer models with tokenizers
trained locally (no hub) for tests and CPU demos.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fcrm_ray.paths import resolve_model_path

log = logging.getLogger(__name__)


class RewardModelError(ValueError):
    """A model folder that cannot be used as (or turned into) a reward model."""


_DTYPES = ("float32", "bfloat16", "float16")


def _torch_dtype(dtype: str):
    import torch

    if dtype not in _DTYPES:
        raise RewardModelError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def _read_config(path: str) -> dict:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise RewardModelError(f"{path}: not a model folder (no config.json)")
    return json.loads((p / "config.json").read_text())


def check_reward_model_dir(path: str) -> dict:
    """Raise RewardModelError unless `path` holds a `*ForSequenceClassification` with one label."""
    cfg = _read_config(path)
    archs = cfg.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise RewardModelError(
            f"{path}: not a reward model (architectures={archs}); expected a *ForSequenceClassification "
            "checkpoint with num_labels=1 (train one with `fcrm train`)")
    n = len(cfg.get("id2label") or {}) or cfg.get("num_labels", 2)
    if n != 1:
        raise RewardModelError(f"{path}: sequence classifier has {n} labels; a reward model has num_labels=1")
    return cfg


def prepare_tokenizer(tokenizer: Any, model: Any | None = None) -> Any:
    """Make sure a pad token exists (EOS for causal LMs without one) and the model agrees on it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            raise RewardModelError("tokenizer has neither a pad, eos nor unk token to pad with")
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model folder (`pkg:minilm` resolved), pad token set; one per process and
    path (Ray Data tasks reuse their worker, so render/tokenise tasks load it once). The one
    tokenizer loader of training, evaluation and the filter."""
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model_path(path), trust_remote_code=trust_remote_code))


def load_reward_model(path: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False):
    """(model, tokenizer) of a trained reward model; errors before any scoring if `path` is not one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_path(str(path))
    check_reward_model_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code)
    prepare_tokenizer(tokenizer, model)
    model.to(device).eval()
    return model, tokenizer


def init_reward_model(backbone_path: str, dtype: str = "float32", trust_remote_code: bool = False,
                      note: Callable[[str], None] = log.info):
    """(model, tokenizer) with a fresh scalar head on a backbone (causal LM or encoder), or the
    weights of an existing reward model if `backbone_path` already is one (continued training).
    A fresh head (and a pretraining head the RM does not use, e.g. a causal LM's `lm_head`) is
    reported as one line to `note`; any other loading problem (backbone weights missing,
    unexpected or of another shape) as transformers' own load report."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_path(str(backbone_path))
    _read_config(path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    with _held_load_report() as held:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code,
            output_loading_info=True)
    backbone = model.base_model_prefix + "."
    head = {n for n, _ in model.named_parameters() if not n.startswith(backbone)}
    unused = sorted(k for k in info["unexpected_keys"] if not k.startswith(backbone))
    if (head and set(info["missing_keys"]) == head and not info["mismatched_keys"]
            and len(unused) == len(info["unexpected_keys"])):
        # transformers reports the new head as MISSING ("Consider training on your downstream
        # task") and the LM head as UNEXPECTED: both expected here, training is what comes next
        dropped = f" ({', '.join(unused)} of the checkpoint not used)" if unused else ""
        note(f"score head initialised{dropped}: training starts from the pretrained backbone")
    else:
        for record in held:
            logging.getLogger(record.name).handle(record)
    if model.config.num_labels != 1:
        raise RewardModelError(f"{path}: could not set num_labels=1 (got {model.config.num_labels})")
    prepare_tokenizer(tokenizer, model)
    mark_reward_config(model.config, tokenizer.pad_token_id)
    return model, tokenizer


@contextlib.contextmanager
def _held_load_report() -> Iterator[list[logging.LogRecord]]:
    """Keep transformers' weight-loading report (one WARNING record) out of the log while the block
    runs; the records are yielded so the caller can still emit them."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in str(record.msg):
            held.append(record)
            return False
        return True

    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)


def mark_reward_config(config: Any, pad_token_id: int) -> Any:
    """Set the config fields every saved reward model carries, for transformers and vLLM alike:
    one label named "reward", `problem_type="regression"` (vLLM's classify pooler then applies no
    activation and returns the raw score; with any other problem_type and one label it returns
    sigmoid(score)) and `pad_token_id` (HF's causal SeqCls heads read the last non-pad token)."""
    if pad_token_id is None:
        raise RewardModelError("a reward model needs a pad_token_id (see prepare_tokenizer)")
    config.id2label = {0: "reward"}
    config.label2id = {"reward": 0}
    config.problem_type = "regression"
    config.pad_token_id = int(pad_token_id)
    return config


# Where each family of SeqCls heads keeps its weights in a `save_pretrained` folder, as vLLM loads
# them: causal LMs get vLLM's `as_seq_cls_model` adapter, a bias-free linear `score` over the last
# token; BERT-style encoders are vLLM's own `BertForSequenceClassification` (pooler + `classifier`).
_VLLM_HEADS = ("score.weight", "classifier.weight")


def _weight_names(path: Path) -> set[str]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text()).get("weight_map", {}))
    single = path / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="numpy") as f:
            return set(f.keys())
    return set()


def vllm_serving_problems(path: str) -> list[str]:
    """Why vLLM's pooling runner would not return this checkpoint's raw reward ([] when it would)."""
    p = Path(resolve_model_path(str(path)))
    try:
        cfg = check_reward_model_dir(str(p))
    except RewardModelError as e:
        return [str(e)]
    problems = []
    if cfg.get("problem_type") != "regression":
        problems.append(f"problem_type is {cfg.get('problem_type')!r}, not 'regression': vLLM applies a sigmoid "
                        "to a one-label classifier and returns probabilities instead of reward scores")
    if cfg.get("pad_token_id") is None:
        problems.append("config has no pad_token_id")
    names = _weight_names(p)
    if not names:
        problems.append("no model.safetensors (or index) to load the score head from")
    elif not any(h in names for h in _VLLM_HEADS):
        problems.append(f"no score head among the weights (expected one of {list(_VLLM_HEADS)})")
    return problems


def vllm_classify_input(tokenizer: Any, prompt: str, completion: str, max_length: int,
                        min_prompt_tokens: int = 16, overflow_length: int = 0) -> list[int] | None:
    """The token ids to send to vLLM's `/classify` (`"input": ids`) so it scores exactly what
    `RewardScorer` scores for this rendered (prompt, completion): the same ids as
    `encode_for_reward` (special tokens, prompt cut from the left to `max_length`), without trailing
    pad tokens. vLLM's classify pooler reads the LAST token while HF's causal heads read the last
    token that is not `pad_token_id`; they differ only when the sequence ends in pad ids (a
    tokenizer whose pad token is its EOS), and dropping those makes the two read the same position.
    None if the scorer would not score the row either (completion too long for max_length and
    `overflow_length`)."""
    ids, _ = encode_for_reward(tokenizer, prompt, completion, max_length, min_prompt_tokens=min_prompt_tokens,
                               overflow_length=overflow_length)
    if ids is None:
        return None
    pad = tokenizer.pad_token_id
    while ids and ids[-1] == pad:
        ids = ids[:-1]
    return ids or None


def keep_head_fp32(model) -> None:
    """Under autocast, run the reward head (`score` / `classifier`) in fp32 on fp32 inputs, so
    rewards keep fp32 resolution (bf16 rewards would tie close pairs). Patches the instance's
    forward only: parameters and state-dict keys are unchanged."""
    import torch

    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            inner = head.forward

            def forward(x, *args, _inner=inner, **kwargs):
                with torch.autocast(x.device.type, enabled=False):
                    return _inner(x.float(), *args, **kwargs)

            head.forward = forward
            return


def causal_blocker(model: Any) -> str | None:
    """Why `model` is not a causal-LM sequence classifier (None if it is): what both prompt-sharing
    paths need (the scorer's prefix cache, the trainer's packed pairs)."""
    import inspect

    import torch

    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "is_encoder_decoder", False):
        return "not a decoder-only model"
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None or not isinstance(getattr(model, "score", None), torch.nn.Linear):
        # BERT-style classifiers pool [CLS] over a bidirectional encoder: no prompt-only state
        return "not a causal-LM sequence classifier (no `score` head over a base model)"
    if "past_key_values" not in inspect.signature(base.forward).parameters:
        return "base model is not a causal LM (takes no past_key_values)"
    return None


def sliding_window(model: Any) -> int | None:
    """The window of the model's sliding-attention layers (Gemma 3: 512 tokens in 5 of every 6
    layers), or None when every layer attends to the whole sequence."""
    cfg = getattr(model, "config", None)
    window = getattr(cfg, "sliding_window", None)
    if not window or "sliding_attention" not in (getattr(cfg, "layer_types", None) or ()):
        return None
    return int(window)


def attention_mask_4d(allowed, model: Any, q_pos=None, k_pos=None, sliding_from: int = 0):
    """The custom mask as the model's attention takes it: booleans for SDPA, additive floats
    (0 / dtype min) for eager attention. transformers passes a 4D mask through unchanged.

    A model with sliding-window layers gets one mask per layer type (the dict its forward accepts
    in place of the masks it would build): a custom 4D mask replaces the model's own masks in
    every layer, so without this the sliding layers would see the whole row while the plain
    forward limits them to the window. `q_pos` [B, Lq] and `k_pos` [B, Lk] are the logical
    positions of the queries and keys (a packed row's positions restart per segment); a key is in
    a query's window when q_pos - k_pos < window, as transformers' `sliding_window_overlay`.
    `sliding_from`: the sliding layers' keys start at this column of `allowed` (a KV cache keeps
    only the last window - 1 positions of a long prefix for those layers)."""
    import torch

    window = sliding_window(model)
    masks = {"full_attention": allowed}
    if window is not None:
        if q_pos is None or k_pos is None:
            raise ValueError(f"{type(model).__name__} has sliding-window layers: pass q_pos and k_pos")
        near = (q_pos[:, :, None] - k_pos[:, None, sliding_from:]) < window
        masks["sliding_attention"] = allowed[..., sliding_from:] & near[:, None].to(allowed.device)
    if getattr(model.config, "_attn_implementation", "sdpa") != "sdpa":
        dtype = next(model.parameters()).dtype
        masks = {k: torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(~m, torch.finfo(dtype).min)
                 for k, m in masks.items()}
    return masks if window is not None else masks["full_attention"]


def forward_rewards(model: Any, input_ids: Any, attention_mask: Any):
    """Scalar reward per row: tensor[batch] (float32)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    return out.logits.squeeze(-1).float()


def prompt_room(max_length: int, n_special: int, n_prompt: int, n_completion: int,
                min_prompt_tokens: int, overflow_length: int = 0) -> int | None:
    """Tokens left for the prompt beside a completion of `n_completion` tokens: within
    `max_length`, or, when that leaves fewer than `min_prompt_tokens` (a long call: several
    parallel calls, a wide schema), within `overflow_length` (0 = no overflow). None = the row
    cannot be used. One rule for training (`encode_for_reward`) and scoring (`RewardScorer`): the
    long answers a reward model must judge (an over-complete parallel call) are the ones a fixed
    limit would drop."""
    need = min(min_prompt_tokens, n_prompt)
    limit = max_length if max_length - n_special - n_completion >= need else overflow_length
    room = limit - n_special - n_completion
    return room if limit >= max_length and room >= need else None


def encode_for_reward(tokenizer: Any, prompt: str, completion: str, max_length: int,
                      min_prompt_tokens: int = 8, overflow_length: int = 0) -> tuple[list[int] | None, bool]:
    """Token ids of `prompt + completion` within `max_length`, keeping the whole completion (the
    candidate call) and cutting the prompt from the left (the catalog side).

    Returns (ids, truncated); ids is None if the completion alone leaves fewer than
    `min_prompt_tokens` for the prompt even within `overflow_length` (`prompt_room`; the row is
    unusable). Special tokens ([CLS]/[SEP] for encoders) are added around the concatenation as
    the tokenizer would."""
    # verbose=False: the untruncated prompt may exceed model_max_length; we cut it below
    p_ids = strip_template_special(tokenizer, tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"])
    c_ids = tokenizer(completion, add_special_tokens=False, verbose=False)["input_ids"]
    n_special = _num_special(tokenizer)
    room = prompt_room(max_length, n_special, len(p_ids), len(c_ids), min_prompt_tokens, overflow_length)
    if room is None or not c_ids:
        return None, False
    truncated = len(p_ids) > room
    if truncated:
        p_ids = p_ids[len(p_ids) - room:]
    return _with_special(tokenizer, p_ids + c_ids), truncated


def special_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """(prefix, suffix) ids the tokenizer adds around a single sequence ([CLS]/[SEP] for BERT,
    nothing for Qwen), found by encoding a probe with and without special tokens (transformers 5
    no longer exposes this uniformly through `build_inputs_with_special_tokens`)."""
    cached = getattr(tokenizer, "_fcrm_special_wrap", None)
    if cached is not None:
        return cached
    probe = "reward"
    with_sp = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    wrap: tuple[list[int], list[int]] = ([], [])
    for i in range(len(with_sp) - len(plain) + 1):
        if with_sp[i:i + len(plain)] == plain:
            wrap = (with_sp[:i], with_sp[i + len(plain):])
            break
    try:
        tokenizer._fcrm_special_wrap = wrap
    except AttributeError:
        pass
    return wrap


def strip_template_special(tokenizer: Any, prompt_ids: Sequence[int]) -> list[int]:
    """Prompt ids without the leading special tokens the tokenizer adds itself (`special_wrap`).
    A chat template that writes `{{ bos_token }}` (Gemma, Llama) puts BOS in the rendered text, and
    the tokenizer adds its own: the model would read two (Gemma 3 270M's rewards move by ~10x the
    trained margins), and a prompt cut from the left would lose the template's one. Dropped here,
    the tokenizer's BOS is added back by `_with_special` in front of the cut prompt: exactly one,
    always first."""
    pre, _ = special_wrap(tokenizer)
    ids = list(prompt_ids)
    if pre and ids[:len(pre)] == list(pre):
        return ids[len(pre):]
    return ids


def _num_special(tokenizer: Any) -> int:
    pre, post = special_wrap(tokenizer)
    return len(pre) + len(post)


def _with_special(tokenizer: Any, ids: list[int]) -> list[int]:
    pre, post = special_wrap(tokenizer)
    return pre + list(ids) + post


# --- tiny models for tests ---------------------------------------------------------------------

_CORPUS = [
    "What is the weather in Paris? Use celsius. get_weather(city=\"Paris\", unit=\"celsius\")",
    "Find the area of a triangle with base 10 and height 5. calculate_triangle_area(base=10, height=5)",
    "[TOOLS] [USER] [CALL] [SYSTEM] [ASSISTANT] [TOOL] string integer number boolean array object",
    '{"name": "get_weather", "arguments": {"city": "Paris"}} {"type": "function", "function": {}}',
    "required optional description parameters properties enum default true false null",
    "Book a flight from New York to London on 2024-05-01 for 2 adults. book_flight(origin, destination, date)",
    "You may call one or more functions to assist with the user query. <tools></tools> <tool_call>",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ _-.,:;()[]{}<>=\"'?!/\\|+*&%$#@",
]

# A compact Qwen-style (ChatML + Hermes tool calls) template that renders `tools` and
# assistant `tool_calls`, so tiny test models exercise the tool-aware rendering path.
QWEN_STYLE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages and messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n<tools>"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}{{ '\\n' }}</tools><|im_end|>\n"
    "{% elif messages and messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'user' %}<|im_start|>user\n{{ message.content }}<|im_end|>\n"
    "{% elif message.role == 'assistant' %}<|im_start|>assistant\n{{ message.content or '' }}"
    "{% for tc in (message.tool_calls or []) %}{% set fn = tc.function if tc.function is defined else tc %}"
    "\n<tool_call>\n{\"name\": \"{{ fn.name }}\", \"arguments\": "
    "{{ fn.arguments if fn.arguments is string else (fn.arguments | tojson) }}}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _train_bpe(special: Sequence[str], vocab_size: int, corpus: Sequence[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return tok


def build_tiny_qwen3_rm(out_dir: str | Path, hidden_size: int = 64, num_layers: int = 2, vocab_size: int = 600,
                        seed: int = 0, corpus: Sequence[str] = ()) -> Path:
    """A random-init 2-layer Qwen3ForSequenceClassification (num_labels=1) + a local byte-level BPE
    tokenizer with a tool-aware chat template, saved to `out_dir`."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForSequenceClassification

    out = Path(out_dir)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
               "<tool_response>", "</tool_response>", "<think>", "</think>"]
    tok = PreTrainedTokenizerFast(tokenizer_object=_train_bpe(special, vocab_size, list(_CORPUS) + list(corpus)),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    tok.chat_template = QWEN_STYLE_TEMPLATE
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=hidden_size // 4, max_position_embeddings=4096, num_labels=1,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                      tie_word_embeddings=False, id2label={0: "reward"}, label2id={"reward": 0},
                      problem_type="regression")
    model = Qwen3ForSequenceClassification(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_bert_rm(out_dir: str | Path, hidden_size: int = 32, num_layers: int = 2, vocab_size: int = 400,
                       seed: int = 0, corpus: Sequence[str] = ()) -> Path:
    """A random-init 2-layer BertForSequenceClassification (num_labels=1) + a local WordPiece
    tokenizer (`[CLS] ... [SEP]`, no chat template, so the plain-text rendering is used)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out = Path(out_dir)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(list(_CORPUS) + list(corpus),
                           trainer=trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special,
                                                             show_progress=False))
    cls_id, sep_id = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=num_layers,
                     num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=512,
                     num_labels=1, pad_token_id=tok.pad_token_id, id2label={0: "reward"},
                     label2id={"reward": 0}, problem_type="regression")
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
