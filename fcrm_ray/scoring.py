"""The one reward-scoring function used by eval, filter and serve: `RewardScorer`.

Inputs are (prompt, completion) texts as `toolcall.render` splits them: the prompt is the tool
catalog + conversation, the completion is the candidate call. The scorer

- tokenises prompt and completion separately and concatenates the ids, cutting the prompt from the
  left (the catalog side) and never the completion, exactly like the trainer
  (`fcrm_ray.train.data.tokenize_pair` via `fcrm_ray.models.encode_for_reward`), so a model is scored
  on the token sequences it was trained on;
- reads the reward the way the trained model's `forward` does (HF: the last token that is not
  `pad_token_id` for causal LMs, `[CLS]` pooling for encoders);
- batches by length: rows are sorted by token count and each batch is padded only to its own
  maximum (`score_texts`);
- shares the prefix (`score_groups`, `score_candidates`, `score_pairs`): candidates that share a
  prompt (a Best-of-N pool, a chosen/rejected pair, one Serve request) are scored by encoding the
  prompt ONCE with `use_cache=True` and running only the candidate suffixes against its KV cache
  (`score_shared_prefix`: "packed" = all suffixes in one row with a block-diagonal mask, or
  "batched" = the cache expanded to a padded batch). For a 1.5k-token prompt and 50-token calls
  that is 6.5x fewer tokens at N=8 (benchmarks/bench_scoring.py, RESULTS_scoring.md). Scores equal
  full-sequence scores to ~1e-7 in fp32 (tests/test_scoring.py).

Why encoders fall back to full sequences: BERT/MiniLM attention is bidirectional, so every prompt
token's hidden state depends on the completion; there is no completion-independent prefix state to
reuse. A causal LM's prompt states depend only on the prompt, which is what makes the cache exact.
`shared_prefix="auto"` turns the fast path on only for models whose sequence-classification head is
a linear `score` over a causal backbone that takes `past_key_values`, and only after a probe at load
time confirmed that the fast path reproduces the model's own full-sequence forward.

`VLLMRewardScorer` (`model.engine: vllm`, built by `make_scorer`) keeps all of the above but the
forward: the same token ids are scored by vLLM's pooling runner (a GPU, or vLLM's CPU build).

`RewardScoringActor` wraps one scorer for Ray Data `map_batches` with an actor pool.

torch (as in `models.py`) and Ray Data are imported inside the functions that use them: Serve's
ingress replicas and the filter's workers import this module without running a model, and
`fcrm eval bon` and Serve's model replicas score in-process without Ray Data (measured 2026-12-02:
importing `serve.app` takes ~1.0 s / 185 MB, ~2.2 s / 362 MB with torch at module level here).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

from fcrm_ray.config import ConfigError
from fcrm_ray.hardware import resolve_autocast, set_torch_threads
from fcrm_ray.models import (attention_mask_4d, causal_blocker, keep_head_fp32, load_reward_model, load_tokenizer,
                             prompt_room, sliding_window, special_wrap, strip_template_special,
                             vllm_serving_problems)
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.toolcall.render import render
from fcrm_ray.toolcall.schema import SchemaError
from fcrm_ray.vllm_engine import build_llm, engine_device, engine_kwargs

log = logging.getLogger(__name__)

NAN = float("nan")

PREFIX_MODES = ("packed", "batched")
# Sharing costs one extra forward per group (prefix, then suffixes); when it would save fewer
# tokens than this, the group's rows join the bucketed full-sequence pass instead.
MIN_SAVED_TOKENS = 128
# Probe tolerance (abs diff relative to max(1, |score|)) for turning the fast path on in "auto".
# fp32 cache reuse agrees to ~1e-6; half precisions differ in rounding order, not in maths.
_PROBE_TOL = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 2e-2}


class RewardScorer:
    """A reward model that turns (prompt, completion) texts into scalar rewards.

    model_path: a `*ForSequenceClassification` folder with num_labels=1 (or `pkg:minilm`).
    batch_size: sequences per forward (full path) / candidates per forward (shared-prefix path).
    max_length: token limit of prompt + completion; longer prompts lose their left (catalog) side.
    shared_prefix: "auto" (on where exact, see module docstring), True (require it), False.
    prefix_mode: "auto" (packed, else batched: the first that passes the probe), "packed" or
      "batched" (see `score_shared_prefix`).
    padding_side: "right" or "left"; both give the same scores (left-padded rows get explicit
      position ids). It applies to causal LMs, whose head reads the last non-pad token; an encoder
      pools its first token ([CLS]), so its rows are always padded on the right.
    min_prompt_tokens: a row whose completion leaves less room than this for the prompt is not
      scored (NaN, counted as `over_long`), the same rule the trainer uses to drop such pairs...
    overflow_length: ...unless it fits this longer limit (`models.prompt_room`; counted as
      `overflowed`). None = the model's `data.overflow_length` from training (0 = off); capped at
      the model's position table.
    max_length None: the `data.max_length` the model was trained with (its `train_config.yaml`),
      else 1024; an explicit value that differs from training is used, with a warning.
    autocast: "auto" (bf16 autocast, reward head in fp32, only where the device runs bf16 natively;
      `fcrm_ray/hardware.py`), "bf16" or "none" (the checkpoint's dtype). Stage configs default to
      "auto"; the class defaults to "none" so direct callers get exact fp32 scores.
    num_threads: torch intra-op threads (CPU); 0 = the CPUs Ray gave this actor, else all available.
    """

    def __init__(self, model_path: str, batch_size: int = 16, max_length: int | None = None, device: str = "cpu",
                 dtype: str = "float32", shared_prefix: bool | str = "auto", trust_remote_code: bool = False,
                 padding_side: str = "right", min_prompt_tokens: int = 16, prefix_mode: str = "auto",
                 autocast: str = "none", num_threads: int = 0, overflow_length: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        max_length = resolve_max_length(model_path, max_length)
        overflow_length = resolve_overflow_length(model_path, overflow_length)
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.model_path = str(model_path)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.device = device
        self.dtype = dtype
        self.padding_side = padding_side
        self.min_prompt_tokens = int(min_prompt_tokens)
        if device == "cpu":
            self.num_threads = set_torch_threads(num_threads)
        self.model, self.tokenizer = load_reward_model(self.model_path, dtype=dtype, device=device,
                                                       trust_remote_code=trust_remote_code)
        device_type = "cuda" if str(device).startswith("cuda") else "cpu"
        self.autocast, self.autocast_reason = resolve_autocast(autocast, device_type, dtype)
        if self.autocast == "bf16":
            keep_head_fp32(self.model)
        self._fit_positions(self.model.config, overflow_length)
        self.pad_id = int(self.tokenizer.pad_token_id)
        import torch  # local: see the module docstring

        log.info("scorer %s: max_length %d (long calls up to %d), %s (%s), %d torch threads", self.model_path,
                 self.max_length, self.overflow_length or self.max_length,
                 "bf16 autocast" if self.autocast == "bf16" else dtype, self.autocast_reason, torch.get_num_threads())

        last_token_head = isinstance(getattr(self.model, "score", None), torch.nn.Linear)
        self.full_padding_side = padding_side if last_token_head else "right"
        self._wrap_pre, self._wrap_post = (list(x) for x in special_wrap(self.tokenizer))
        self.stats: Counter = Counter()
        self.shared_prefix, self.prefix_mode = False, None  # until the probe says otherwise
        self.shared_prefix, self.prefix_mode = self._resolve_shared_prefix(shared_prefix, prefix_mode)

    def _fit_positions(self, config: Any, overflow_length: int) -> None:
        """Cap max_length / overflow_length at the model's position table."""
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and 0 < limit < self.max_length:
            # e.g. MiniLM's 512: longer inputs would index past the position table
            log.info("max_length %d > the model's %d positions; using %d", self.max_length, limit, limit)
            self.max_length = limit
        if isinstance(limit, int) and 0 < limit < overflow_length:
            overflow_length = limit
        self.overflow_length = overflow_length if overflow_length > self.max_length else 0

    def _inference(self):
        """No-grad forward context, under bf16 autocast when `autocast` resolved to bf16."""
        import torch  # local: see the module docstring

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.autocast == "bf16":
            stack.enter_context(torch.autocast(self.model.device.type, dtype=torch.bfloat16))
        return stack

    # --- public API ---------------------------------------------------------------------------

    def score_texts(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Reward of each `prompt + completion`, full sequences in length-bucketed batches.
        NaN for a row that cannot be scored (empty completion, or one too long for max_length)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        p_ids = self._tokenize(prompts)
        c_ids = self._tokenize(completions)
        seqs: list[list[int] | None] = []
        for p, c in zip(p_ids, c_ids):
            enc = self._join(p, c)
            seqs.append(None if enc is None else enc[0] + enc[1])
        return self.score_ids(seqs)

    def score_groups(self, groups: Sequence[tuple]) -> list[list[float]]:
        """Rewards per group; a group is `(prompt, [completion, ...])` sharing one prompt.

        Also accepts `(tools, conversation, [candidate, ...])` groups (rendered like
        `score_candidates`), the form the Serve replica batches requests in."""
        text_groups: list[tuple[str, list[str]]] = []
        slots: list[list[tuple[int, int]] | None] = []  # per input group: (text group, index) per candidate
        for g in groups:
            if len(g) == 3:
                sub, where = self._render_group(*g)
                slots.append([(len(text_groups) + gi, ci) for gi, ci in where])
                text_groups.extend(sub)
            elif len(g) == 2:
                prompt, completions = g
                slots.append([(len(text_groups), ci) for ci in range(len(completions))])
                text_groups.append((prompt, list(completions)))
            else:
                raise ValueError("a group is (prompt, completions) or (tools, conversation, candidates)")
        scored = self._score_text_groups(text_groups)
        return [[scored[gi][ci] for gi, ci in where] for where in slots]

    def score_candidates(self, tools: Any, conversation: Any, candidates: Sequence[Any]) -> list[float]:
        """Rewards of candidate calls for one context (tools + conversation), prefix shared."""
        return self.score_groups([(tools, conversation, list(candidates))])[0]

    def model_info(self) -> dict:
        cfg = self.model.config
        return {
            "name": cfg.name_or_path or self.model_path,
            "path": self.model_path,
            "architecture": (cfg.architectures or [type(self.model).__name__])[0],
            "model_type": cfg.model_type,
            "max_length": self.max_length,
            "overflow_length": self.overflow_length,
            "dtype": self.dtype,
            "device": str(self.device),
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "batch_size": self.batch_size,
            "padding_side": self.full_padding_side,
            "shared_prefix": self.shared_prefix,
            "prefix_mode": self.prefix_mode,
        }

    # --- token ids ----------------------------------------------------------------------------

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        # verbose=False: an untruncated prompt may exceed model_max_length; _join cuts it
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]

    def _join(self, p_ids: list[int], c_ids: list[int]) -> tuple[list[int], list[int], bool] | None:
        """(prefix ids, suffix ids, truncated) with prefix + suffix == `encode_for_reward`'s ids:
        special tokens around the concatenation, prompt cut from the left to fit max_length.
        None (counted) if the completion is empty or leaves too little room for the prompt even
        within `overflow_length` (`models.prompt_room`, the trainer's rule)."""
        p_ids = strip_template_special(self.tokenizer, p_ids)  # one BOS, never cut (models.py)
        n_special = len(self._wrap_pre) + len(self._wrap_post)
        room = prompt_room(self.max_length, n_special, len(p_ids), len(c_ids), self.min_prompt_tokens,
                           self.overflow_length)
        if not c_ids or room is None:
            self.stats["over_long" if c_ids else "empty_completion"] += 1
            return None
        if n_special + len(c_ids) + min(len(p_ids), room) > self.max_length:
            self.stats["overflowed"] += 1
        truncated = len(p_ids) > room
        if truncated:
            p_ids = p_ids[len(p_ids) - room:]
            self.stats["truncated"] += 1
        return self._wrap_pre + p_ids, c_ids + self._wrap_post, truncated

    # --- full-sequence path -------------------------------------------------------------------

    def score_ids(self, seqs: Sequence[list[int] | None]) -> list[float]:
        """Rewards of whole token sequences (None -> NaN) with the model's own forward; sorted by
        length so each batch is padded only to its own longest row."""
        out = [NAN] * len(seqs)
        order = sorted((i for i, s in enumerate(seqs) if s is not None), key=lambda i: len(seqs[i]))
        bar = _progress(len(order), "scoring sequences")
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if bar is not None:
                bar.update(len(idx))
            ids, mask = self._pad([seqs[i] for i in idx], self.full_padding_side)
            kwargs = {}
            if self.full_padding_side == "left":  # positions count real tokens only
                kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
            # A causal model (the probe proved it) with right padding: no real token attends to
            # the pads after it, so the mask can go and torch takes its causal attention kernel
            # (~1.7x faster on CPU than a masked one). HF still finds the last non-pad token from
            # input_ids, so the scores are unchanged.
            mask_free = self.shared_prefix and self.full_padding_side == "right"
            with self._inference():
                logits = self.model(input_ids=ids, attention_mask=None if mask_free else mask, **kwargs).logits
            for i, s in zip(idx, logits.reshape(len(idx), -1)[:, 0].float().tolist()):
                out[i] = s
            self.stats["full_sequences"] += len(idx)
            self.stats["tokens_run"] += int(mask.sum())
            self.stats["pad_tokens"] += int(mask.numel() - mask.sum())
        if bar is not None:
            bar.close()
        return out

    def _pad(self, rows: Sequence[list[int]], side: str | None = None):
        import torch  # local: see the module docstring

        side = side or self.padding_side
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
            ids[j, sl] = torch.tensor(r, dtype=torch.long)
            mask[j, sl] = 1
        return ids.to(self.device), mask.to(self.device)

    # --- shared-prefix path -------------------------------------------------------------------

    def _render_group(self, tools: Any, conversation: Any, candidates: Sequence[Any]):
        """Render candidates of one context; candidates whose rendered prompts differ (a template
        that splits at a common prefix) go to separate text groups. Returns (groups, where)."""
        by_prompt: dict[str, list[str]] = {}
        where_prompt = []
        for cand in candidates:
            r = render(self.tokenizer, tools, conversation, cand)
            by_prompt.setdefault(r.prompt, []).append(r.completion)
            where_prompt.append((r.prompt, len(by_prompt[r.prompt]) - 1))
        keys = list(by_prompt)
        return [(k, by_prompt[k]) for k in keys], [(keys.index(p), ci) for p, ci in where_prompt]

    def _score_text_groups(self, groups: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """Encode every group; share the prefix where it pays off and is exact, and send the rest
        (singletons, truncated rows, encoders) through one bucketed full-sequence pass."""
        prompt_ids = self._tokenize([p for p, _ in groups])
        comp_ids = self._tokenize([c for _, cs in groups for c in cs])
        results: list[list[float]] = [[NAN] * len(cs) for _, cs in groups]
        full_rows: list[list[int]] = []
        full_where: list[tuple[int, int]] = []
        k = 0
        for gi, (_, cs) in enumerate(groups):
            shared: list[tuple[int, list[int]]] = []  # (candidate index, suffix ids)
            prefix: list[int] | None = None
            for ci in range(len(cs)):
                enc = self._join(prompt_ids[gi], comp_ids[k])
                k += 1
                if enc is None:
                    continue
                pre, suf, truncated = enc
                # A truncated prompt is cut by a different amount for each candidate length: those
                # rows no longer share a prefix, so they are scored as full sequences.
                if self.shared_prefix and not truncated and pre and self._reward_pos(suf) is not None:
                    prefix = pre
                    shared.append((ci, suf))
                else:
                    full_rows.append(pre + suf)
                    full_where.append((gi, ci))
            if shared and (len(shared) - 1) * len(prefix) < MIN_SAVED_TOKENS:
                # too little to share (a singleton, a short prompt): batch with the full rows
                for ci, suf in shared:
                    full_rows.append(prefix + suf)
                    full_where.append((gi, ci))
            elif shared:
                scores = self.score_shared_prefix(prefix, [s for _, s in shared])
                for (ci, _), s in zip(shared, scores):
                    results[gi][ci] = s
        for (gi, ci), s in zip(full_where, self.score_ids(full_rows)):
            results[gi][ci] = s
        return results

    def _reward_pos(self, suffix: list[int]) -> int | None:
        """Index in `suffix` where HF's causal SeqCls head reads the reward: the last token that
        is not `pad_token_id`. None if that would fall inside the prefix (an all-pad suffix)."""
        for j in range(len(suffix) - 1, -1, -1):
            if suffix[j] != self.pad_id:
                return j
        return None

    def score_shared_prefix(self, prefix: list[int], suffixes: Sequence[list[int]],
                            mode: str | None = None) -> list[float]:
        """Rewards of `prefix + suffix` for each suffix (token ids, causal LMs only). The prefix is
        encoded once (batch of one, `use_cache=True`); its KV cache serves every suffix. Each
        suffix must hold a non-pad token: the reward is read at its last one, as HF reads it.

        mode "packed" (default where the probe passed): the suffixes of a batch are concatenated
        into ONE row after the prefix cache, with positions restarting at P for each suffix and a
        block-diagonal causal mask (each suffix sees the prefix and itself). No padding and no
        copies of the prefix cache, so on CPU it runs close to the token-count limit.
        mode "batched": the cache is expanded to one row per suffix and the suffixes run as a
        padded batch (right or left, `padding_side`) with a 2D mask; for attention backends that
        take no custom 4D mask (flash-attention)."""
        import torch  # local: see the module docstring

        mode = mode or self.prefix_mode or "batched"
        if mode not in PREFIX_MODES:
            raise ValueError(f"mode must be one of {PREFIX_MODES}, got {mode!r}")
        if not prefix or any(self._reward_pos(s) is None for s in suffixes):
            raise ValueError("score_shared_prefix needs a non-empty prefix and a non-pad token in every suffix")
        base = getattr(self.model, self.model.base_model_prefix)
        run = self._run_packed if mode == "packed" else self._run_batched
        out = [NAN] * len(suffixes)
        with self._inference():
            pre = base(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
            # Per-layer (keys, values), each [1, kv_heads, P, head_dim]. Every batch gets a fresh
            # cache built from these, because a forward appends to (mutates) the cache it is given.
            kv = [(layer[0], layer[1]) for layer in pre.past_key_values]
            del pre
            order = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                for i, s in zip(idx, run(base, kv, len(prefix), [suffixes[i] for i in idx])):
                    out[i] = s
        self.stats["tokens_run"] += len(prefix)
        self.stats["shared_groups"] += 1
        self.stats["shared_candidates"] += len(suffixes)
        return out

    def _cache(self, kv, n: int):
        from transformers import DynamicCache  # local, like torch (transformers loads it)

        # expand() is a view; the cache materialises it once when the new keys are appended
        return DynamicCache([(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv],
                            config=self.model.config)

    def _sliding_keys(self, kv, P: int) -> int:
        """How many prefix positions the sliding-window layers' cache holds (all P for models
        without such layers; Gemma 3 keeps the last window - 1 of a longer prefix)."""
        types = getattr(self.model.config, "layer_types", None) or ()
        if sliding_window(self.model) is None:
            return P
        return int(kv[list(types).index("sliding_attention")][0].shape[-2])

    def _head(self, hidden_rows) -> list[float]:
        return self.model.score(hidden_rows).reshape(hidden_rows.shape[0], -1)[:, 0].float().tolist()

    def _run_packed(self, base, kv, P: int, suffixes: Sequence[list[int]]) -> list[float]:
        import torch  # local: see the module docstring

        lens = torch.tensor([len(s) for s in suffixes])
        seg = torch.repeat_interleave(torch.arange(len(suffixes)), lens)   # which suffix each token is
        pos = torch.cat([torch.arange(n) for n in lens.tolist()])          # position inside its suffix
        own = (seg[:, None] == seg[None, :]) & (pos[:, None] >= pos[None, :])
        allowed = torch.cat([torch.ones((len(seg), P), dtype=torch.bool), own], dim=1)[None, None]
        ids = torch.tensor([[t for s in suffixes for t in s]], device=self.device)
        q_pos = (P + pos)[None]
        k_pos = torch.cat([torch.arange(P), P + pos])[None]
        mask = attention_mask_4d(allowed.to(self.device), self.model, q_pos, k_pos, P - self._sliding_keys(kv, P))
        hidden = base(input_ids=ids, attention_mask=mask, position_ids=q_pos.to(self.device),
                      past_key_values=self._cache(kv, 1), use_cache=True).last_hidden_state[0]
        starts = (lens.cumsum(0) - lens).tolist()
        last = [st + self._reward_pos(s) for st, s in zip(starts, suffixes)]
        self.stats["tokens_run"] += len(seg)
        return self._head(hidden[torch.tensor(last, device=hidden.device)])

    def _run_batched(self, base, kv, P: int, suffixes: Sequence[list[int]]) -> list[float]:
        import torch  # local: see the module docstring

        n = len(suffixes)
        ids, smask = self._pad(suffixes)
        # Prefix positions are 0..P-1; each suffix's real tokens continue at P, P+1, ... whatever the
        # padding (left padding puts pads between prefix and suffix; they are masked out).
        pos = P + (smask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((n, P), dtype=smask.dtype, device=smask.device), smask], dim=1)
        hidden = base(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=self._cache(kv, n),
                      use_cache=True).last_hidden_state
        width = ids.shape[1]
        last = [(0 if self.padding_side == "right" else width - len(s)) + self._reward_pos(s) for s in suffixes]
        self.stats["tokens_run"] += int(smask.sum())
        self.stats["pad_tokens"] += int(smask.numel() - smask.sum())
        return self._head(hidden[torch.arange(n, device=hidden.device), torch.tensor(last, device=hidden.device)])

    # --- deciding whether the fast path applies ------------------------------------------------

    def _resolve_shared_prefix(self, setting: bool | str, mode: str) -> tuple[bool, str | None]:
        """(on, mode): the fast path is used only if a probe reproduces full-sequence scores."""
        if isinstance(setting, str):
            s = setting.strip().lower()
            if s not in ("auto", "on", "off", "true", "false"):
                raise ValueError(f"shared_prefix must be 'auto', true or false, got {setting!r}")
            setting = "auto" if s == "auto" else s in ("on", "true")
        if mode not in ("auto",) + PREFIX_MODES:
            raise ValueError(f"prefix_mode must be 'auto' or one of {PREFIX_MODES}, got {mode!r}")
        if setting is False:
            return False, None
        why_not = causal_blocker(self.model)
        if why_not is None:
            for candidate in (PREFIX_MODES if mode == "auto" else (mode,)):
                why_not = self._probe(candidate)
                if why_not is None:
                    return True, candidate
        if setting is True:
            raise ValueError(f"shared_prefix=true is not possible for {self.model_path}: {why_not}")
        log.info("shared-prefix scoring off for %s: %s", self.model_path, why_not)
        return False, None

    def _probe(self, mode: str) -> str | None:
        """Score a tiny fixed group both ways; a mode is only used if the two agree."""
        vocab = [i for i in range(min(self.model.config.vocab_size, 5000)) if i != self.pad_id]
        if len(vocab) < 8:
            return "vocabulary too small to probe"
        ids = [vocab[(37 * i + 11) % len(vocab)] for i in range(32)]
        prefix, suffixes = ids[:20], [ids[20:23], ids[23:32], ids[25:26]]
        try:
            fast = self.score_shared_prefix(prefix, suffixes, mode=mode)
            full = self.score_ids([prefix + s for s in suffixes])
        except Exception as e:  # an architecture or attention backend this path does not fit
            return f"{mode} probe failed ({type(e).__name__}: {e})"
        finally:
            self.stats.clear()
        tol = _PROBE_TOL.get(self.dtype if self.autocast == "none" else "bfloat16", 5e-2)
        diff = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(fast, full))
        if not diff <= tol:  # also catches NaN
            return f"{mode} probe scores differ from full-sequence scores by {diff:.3g} (bidirectional attention?)"
        return None


PROGRESS_MIN_ROWS = 512  # scoring calls with fewer sequences show no progress bar


def _progress(total: int, desc: str):
    """A tqdm bar (stderr; rate and ETA) for long scoring loops - eval and filter runs - so a slow
    run is not taken for a hung one; None for short calls (a Serve batch, a unit test)."""
    if total < PROGRESS_MIN_ROWS:
        return None
    return tqdm(total=total, desc=desc, unit="seq", mininterval=5.0, dynamic_ncols=True)


def trained_data_setting(model_path: str, key: str) -> int | None:
    """`data.<key>` (a positive int: `max_length`, `overflow_length`) from the model folder's
    `train_config.yaml` (written by `fcrm train`)."""
    f = Path(resolve_model_path(str(model_path))) / "train_config.yaml"
    if not f.is_file():
        return None
    try:
        value = OmegaConf.select(OmegaConf.load(f), f"data.{key}")
    except Exception as e:  # a damaged file must not stop scoring; say so
        log.warning("could not read %s (%s); %s not taken from training", f, e, key)
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def resolve_max_length(model_path: str, requested: int | None) -> int:
    """The scoring truncation: the training value unless `requested` says otherwise (warned)."""
    trained = trained_data_setting(model_path, "max_length")
    if requested is None:
        return trained or 1024
    if trained is not None and int(requested) != trained:
        log.warning("max_length %d differs from the %d the model was trained with (%s/train_config.yaml); "
                    "scores are on differently truncated inputs", int(requested), trained, model_path)
    return int(requested)


def resolve_overflow_length(model_path: str, requested: int | None) -> int:
    """The longer limit for a call that does not fit max_length (`models.prompt_room`): the
    training value (`data.overflow_length`, 0 = off) unless `requested` says otherwise."""
    if requested is None:
        return trained_data_setting(model_path, "overflow_length") or 0
    return max(0, int(requested))


# --- pair rows --------------------------------------------------------------------------------

def score_pairs(scorer: RewardScorer, rows: Iterable[Mapping], quarantine=None) -> tuple[list[float], list[float]]:
    """(chosen rewards, rejected rewards) for pair rows (PAIR_COLUMNS; tools/conversation may be
    JSON strings). Chosen and rejected share the prompt, so each pair is one shared-prefix group.

    A row that cannot be rendered raises SchemaError naming its id, or, with a `quarantine`, is
    added there and gets NaN for both rewards (so outputs stay aligned with input rows)."""
    text_groups: list[tuple[str, list[str]]] = []
    where: list[list[tuple[int, int]] | None] = []  # per row: (text group, index) of chosen, rejected
    for row in rows:
        try:
            missing = [c for c in ("tools", "conversation", "chosen_output", "rejected_output") if c not in row]
            if missing:
                raise SchemaError(f"pair row is missing `{missing[0]}`")
            sub, w = scorer._render_group(row["tools"], row["conversation"],
                                          [row["chosen_output"], row["rejected_output"]])
        except Exception as e:  # bad JSON, schema or template errors: this row only, never the batch
            _bad_pair(row, e, quarantine)
            where.append(None)
            continue
        where.append([(len(text_groups) + gi, ci) for gi, ci in w])
        text_groups.extend(sub)
    scored = scorer._score_text_groups(text_groups)
    chosen = [NAN if w is None else scored[w[0][0]][w[0][1]] for w in where]
    rejected = [NAN if w is None else scored[w[1][0]][w[1][1]] for w in where]
    return chosen, rejected


def _bad_pair(row: Any, err: Exception, quarantine) -> None:
    if quarantine is None:
        rid = row.get("id", "?") if isinstance(row, Mapping) else "?"
        raise SchemaError(f"pair row {rid!r}: {err}") from err
    quarantine.add(dict(row) if isinstance(row, Mapping) else {"row": str(row)}, str(err), source="score_pairs")


# --- the same scorer with vLLM's forward ------------------------------------------------------
#
# `model.engine: vllm`: the token ids above (`_join`: special tokens, prompt cut from the left,
# over-long rows unscored) go to vLLM's pooling runner as `TokensPrompt`s, so both engines score
# identical sequences. vLLM reads the last token where HF's causal heads read the last non-pad
# token, so trailing pad ids are dropped first (as `models.vllm_classify_input` does for `vllm
# serve`). Checkpoints written by `fcrm train` carry `problem_type: regression`, which makes vLLM
# return the raw Bradley-Terry score instead of a sigmoid; a folder without it is refused
# (`models.vllm_serving_problems`). Prefix sharing is vLLM's own business there (its prefix
# cache), so the torch path's shared-prefix probe and autocast do not apply.

class VLLMRewardScorer(RewardScorer):
    """A `RewardScorer` whose forward is vLLM's `LLM.classify` on token ids (see module docstring).
    Takes `RewardScorer`'s keyword arguments; the torch-only ones (shared_prefix, prefix_mode,
    padding_side, autocast, num_threads) are accepted and ignored."""

    def __init__(self, model_path: str, batch_size: int = 16, max_length: int | None = None, device: str = "cpu",
                 dtype: str = "float32", trust_remote_code: bool = False, min_prompt_tokens: int = 16,
                 overflow_length: int | None = None, **_torch_only: Any):
        from transformers import AutoConfig

        path = resolve_model_path(str(model_path))
        problems = vllm_serving_problems(path)
        if problems:
            raise ConfigError(f"config key `model.engine`: vllm cannot score {model_path}: {'; '.join(problems)}")
        self.model_path = str(model_path)
        self.batch_size = int(batch_size)
        self.max_length = resolve_max_length(path, max_length)
        self.dtype = dtype
        self.min_prompt_tokens = int(min_prompt_tokens)
        self.tokenizer = load_tokenizer(path, trust_remote_code)
        self.config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        self._fit_positions(self.config, resolve_overflow_length(path, overflow_length))
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._wrap_pre, self._wrap_post = (list(x) for x in special_wrap(self.tokenizer))
        self.model = None  # the weights live in vLLM's engine process
        self.autocast, self.autocast_reason = "none", "vLLM engine"
        self.full_padding_side, self.padding_side = "right", "right"
        self.shared_prefix, self.prefix_mode = False, None
        self.stats: Counter = Counter()
        self.device = engine_device()  # vLLM takes the GPU where there is one, `device` notwithstanding
        longest = max(self.max_length, self.overflow_length)
        self.llm = build_llm(path, engine_kwargs(tensor_parallel_size=1, max_model_len=longest, dtype=dtype,
                                                 trust_remote_code=trust_remote_code, seed=0, device=self.device),
                             config_key="model.engine", what="reward scoring (vLLM pooling runner)", runner="pooling")
        log.info("scorer %s: vLLM pooling runner, max_length %d (long calls up to %d), %s",
                 self.model_path, self.max_length, longest, dtype)

    def score_ids(self, seqs: Sequence[list[int] | None]) -> list[float]:
        """Rewards of whole token sequences (None -> NaN) from vLLM's classify pooler."""
        from vllm.inputs import TokensPrompt

        out = [NAN] * len(seqs)
        idx, prompts = [], []
        for i, s in enumerate(seqs):
            if s is None:
                continue
            ids = list(s)
            while ids and ids[-1] == self.pad_id:  # vLLM pools the last token, HF the last non-pad one
                ids.pop()
            if ids:
                idx.append(i)
                prompts.append(TokensPrompt(prompt_token_ids=ids))
        bar = _progress(len(prompts), "scoring sequences (vLLM)")
        for start in range(0, len(prompts), max(self.batch_size, 256)):  # vLLM batches internally
            chunk = prompts[start:start + max(self.batch_size, 256)]
            results = self.llm.classify(chunk, use_tqdm=False)
            for i, r in zip(idx[start:start + len(chunk)], results):
                out[i] = float(r.outputs.probs[0])
            if bar is not None:
                bar.update(len(chunk))
            self.stats["full_sequences"] += len(chunk)
            self.stats["tokens_run"] += sum(len(p["prompt_token_ids"]) for p in chunk)
        if bar is not None:
            bar.close()
        return out

    def model_info(self) -> dict:
        cfg = self.config
        return {"name": cfg.name_or_path or self.model_path, "path": self.model_path,
                "architecture": (cfg.architectures or ["?"])[0], "model_type": cfg.model_type,
                "max_length": self.max_length, "overflow_length": self.overflow_length, "dtype": self.dtype,
                "device": str(self.device), "engine": "vllm", "batch_size": self.batch_size,
                "padding_side": "right", "shared_prefix": False, "prefix_mode": None}


ENGINES = ("torch", "vllm")


def make_scorer(model_path: str, engine: str = "torch", **kwargs: Any) -> RewardScorer:
    """The scorer a stage config asks for (`model.engine`): the torch forward, or the same
    tokenisation and rules with the forward in vLLM's pooling runner (`VLLMRewardScorer`)."""
    if engine == "vllm":
        return VLLMRewardScorer(model_path, **kwargs)
    if engine != "torch":
        raise ValueError(f"scorer engine must be one of {ENGINES}, got {engine!r}")
    return RewardScorer(model_path, **kwargs)


# --- Ray Data ---------------------------------------------------------------------------------

class RewardScoringActor:
    """Ray Data `map_batches` callable holding one `RewardScorer` (one per actor of the pool).

    Batch columns: `prompt`, `completion` (rendered texts); adds `reward` (float, NaN = unscored).
    Rows with the same prompt in a batch are scored as one shared-prefix group; an optional
    `group_id` column further restricts sharing to rows of the same group. Works on dicts of
    numpy arrays and on pandas DataFrames (returns the same kind).

        ds.map_batches(RewardScoringActor, fn_constructor_kwargs={"model_path": path},
                       batch_size=64, compute=ray.data.ActorPoolStrategy(size=2))
    """

    def __init__(self, model_path: str, **scorer_kwargs: Any):
        self.scorer = make_scorer(model_path, **scorer_kwargs)

    def __call__(self, batch: Any) -> Any:
        for col in ("prompt", "completion"):
            if col not in batch:
                raise KeyError(f"RewardScoringActor: batch has no `{col}` column (columns: {list(batch.keys())})")
        prompts = [str(p) for p in list(batch["prompt"])]
        completions = [str(c) for c in list(batch["completion"])]
        gids = [str(g) for g in list(batch["group_id"])] if "group_id" in batch else [""] * len(prompts)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(gids, prompts)):
            groups.setdefault(key, []).append(i)
        keys = list(groups)
        scored = self.scorer.score_groups([(k[1], [completions[i] for i in groups[k]]) for k in keys])
        reward = np.full(len(prompts), np.nan, dtype=np.float64)
        for k, scores in zip(keys, scored):
            reward[groups[k]] = scores
        if hasattr(batch, "assign"):  # pandas
            return batch.assign(reward=reward)
        out = dict(batch)
        out["reward"] = reward
        return out


def score_dataset(ds: Any, model_path: str, scorer: Any, pool: Any) -> Any:
    """`ds` (a Ray Dataset with prompt/completion columns, optional group_id) with a `reward`
    column, scored by an actor pool of `RewardScoringActor`s: `scorer` is a
    `common.scorer.ScorerConfig` (the model's settings), `pool` a `common.ray_cluster.ActorPoolConfig`
    (actors, their CPUs/GPUs, rows per batch). Sort/group rows by prompt upstream to share more
    prefixes."""
    import ray.data  # local: see the module docstring

    return ds.map_batches(RewardScoringActor, fn_constructor_kwargs={"model_path": model_path, **scorer.scorer_kwargs()},
                          batch_size=pool.batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=pool.num_actors),
                          num_cpus=pool.num_cpus_per_actor, num_gpus=pool.num_gpus_per_actor or None)


def finite_or_none(x: Any) -> float | None:
    """JSON-safe reward: NaN/inf (unscored rows) -> None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


__all__ = ["RewardScorer", "VLLMRewardScorer", "make_scorer", "RewardScoringActor", "score_pairs", "score_dataset", "finite_or_none"]
