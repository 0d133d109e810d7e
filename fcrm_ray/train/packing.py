"""Prompt-shared packing of preference pairs for causal-LM reward models (`train.share_prompt`).

Chosen and rejected share the prompt (tool catalog + conversation), which is usually most of the
tokens. Instead of two rows `[prompt, chosen]` and `[prompt, rejected]`, a pair runs as ONE row

    [prompt | chosen call | rejected call]    positions 0..P-1 | P..P+a-1 | P..P+b-1

with a block attention mask: prompt tokens see the prompt causally, chosen tokens see the prompt
and the chosen call causally, rejected tokens see the prompt and the rejected call causally (not
the chosen call). Position ids of the rejected call restart at P, so every token has exactly the
attention inputs and rotary positions it has in its own plain row, and the rewards (read at each
call's last non-pad token, as HF's SeqCls head reads them) and their gradients are the plain ones
up to float rounding (tests/test_train_packing.py). The prompt's forward and backward run once
per pair instead of twice: for a 1000-token prompt and 50-token calls that is 2100 -> 1100 tokens.

The shared part is the longest common prefix of the two token lists, so pairs whose prompts were
truncated by different amounts (different call lengths) stay exact; they just share less.

Only for causal LMs. Encoders (BERT/MiniLM) attend bidirectionally: every prompt token's state
depends on the call after it, so a prompt encoded once cannot serve both calls; they keep the
plain path. Attention backends must take a custom 4D mask (`sdpa`: boolean, `eager`: additive);
flash-attention does not, and also keeps the plain path.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fcrm_ray.models import attention_mask_4d, causal_blocker

PACKABLE_ATTENTION = ("sdpa", "eager")


def packing_blocker(model: Any) -> str | None:
    """Why `model` cannot use prompt-shared packing (None if it structurally can)."""
    why = causal_blocker(model)
    if why is None:
        impl = getattr(model.config, "_attn_implementation", None) or "eager"
        if impl not in PACKABLE_ATTENTION:
            why = f"attention implementation {impl!r} takes no custom 4D mask"
    return why


def _last_non_pad(ids: Sequence[int], pad_id: int) -> int:
    """Where HF's SeqCls head reads the reward: the rightmost token that is not pad (0 if none)."""
    for j in range(len(ids) - 1, -1, -1):
        if ids[j] != pad_id:
            return j
    return 0


def pack_pair(chosen: Sequence[int], rejected: Sequence[int], pad_id: int) -> dict:
    """One pair -> {ids, seg, pos, chosen_at, rejected_at} of its packed row (numpy arrays).

    seg: 0 = shared prompt, 1 = chosen call, 2 = rejected call. Each side keeps at least one own
    token, so a call that is a prefix of the other still has its own row of the mask."""
    chosen, rejected = np.asarray(chosen, dtype=np.int64), np.asarray(rejected, dtype=np.int64)
    n = min(len(chosen), len(rejected)) - 1
    diff = np.nonzero(chosen[:n] != rejected[:n])[0]
    p = int(diff[0]) if len(diff) else max(n, 0)
    a, b = chosen[p:], rejected[p:]
    ids = np.concatenate([chosen[:p], a, b])
    seg = np.concatenate([np.zeros(p, np.int64), np.ones(len(a), np.int64), np.full(len(b), 2, np.int64)])
    pos = np.concatenate([np.arange(p), p + np.arange(len(a)), p + np.arange(len(b))])

    def reward_at(full: np.ndarray, own_start: int) -> int:
        j = _last_non_pad(full.tolist(), pad_id)  # index in the plain row
        return j if j < p else own_start + (j - p)  # in the prompt: the same shared state

    return {"ids": ids, "seg": seg, "pos": pos, "chosen_at": reward_at(chosen, p),
            "rejected_at": reward_at(rejected, p + len(a))}


def collate_packed_pairs(examples: Sequence[Mapping], pad_id: int) -> dict:
    """Pairs -> one packed row each, right-padded: input_ids/position_ids [B, L], a boolean
    `allowed` mask [B, 1, L, L] (True = may attend), reward indices `chosen_at`/`rejected_at` [B].
    Pad queries attend only to themselves (a fully masked row would give NaN in SDPA)."""
    packs = [pack_pair(e["chosen_ids"], e["rejected_ids"], pad_id) for e in examples]
    B, L = len(packs), max(len(pk["ids"]) for pk in packs)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    seg = torch.full((B, L), -1, dtype=torch.long)
    for i, pk in enumerate(packs):
        n = len(pk["ids"])
        ids[i, :n], pos[i, :n], seg[i, :n] = (torch.from_numpy(pk[k]) for k in ("ids", "pos", "seg"))
    q, k = seg[:, :, None], seg[:, None, :]
    causal = torch.ones((L, L), dtype=torch.bool).tril()
    allowed = causal & (k >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(L, dtype=torch.bool) & (q < 0)
    return {"input_ids": ids, "position_ids": pos, "allowed": allowed[:, None], "num_pairs": B,
            "chosen_at": torch.tensor([pk["chosen_at"] for pk in packs]),
            "rejected_at": torch.tensor([pk["rejected_at"] for pk in packs]),
            "n_tokens": int((seg >= 0).sum())}


def packed_pair_rewards(engine: Any, module: Any, batch: Mapping, device: Any):
    """(chosen rewards [B], rejected rewards [B]) of a packed batch, float32, with gradients.

    `engine` is what the loop calls (DeepSpeed engine, DDP wrapper or the plain module), so the
    wrappers' bookkeeping (ZeRO-3 gathering, DDP gradient sync) runs as for the plain path;
    `module` is the unwrapped SeqCls model. HF's head pools ONE position per row, so the per-token
    scores are taken from the `score` layer's output with a forward hook and indexed at both
    calls' last tokens."""
    captured: list = []
    handle = module.score.register_forward_hook(lambda _m, _inp, out: captured.append(out))
    try:
        ids = batch["input_ids"].to(device)
        pos = batch["position_ids"].to(device)
        engine(input_ids=ids, position_ids=pos, attention_mask=attention_mask_4d(batch["allowed"].to(device), module, pos, pos),
               use_cache=False)
    finally:
        handle.remove()
    logits = captured[-1][..., 0]  # [B, L] per-token reward
    rows = torch.arange(ids.shape[0], device=logits.device)
    return (logits[rows, batch["chosen_at"].to(logits.device)].float(),
            logits[rows, batch["rejected_at"].to(logits.device)].float())
