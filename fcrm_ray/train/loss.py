"""Reward-model losses: pairwise Bradley-Terry, and listwise objectives over Best-of-N pools.

Pairwise (every run):
    loss = mean(-logsigmoid(r_chosen - r_rejected - margin)) + center_coef * mean((r_chosen + r_rejected)^2)
The centering term (Eisenstein et al., "Helping or Herding?") keeps rewards near zero mean so
scores stay comparable across prompts; it is off by default.

Listwise (`train.listwise_weight` > 0): a pool is every candidate answer to one question (real
models' outputs, `pools_real_train.jsonl`), the correct ones positive. Best-of-N picks the top
reward of a pool, so what matters is that no wrong candidate outscores every right one; pairs
drawn at random rarely contain the one wrong answer that does.
- `softmax`: -log(sum over positives of exp(r) / sum over the pool of exp(r)), the pool's
  probability mass on its correct candidates (several positives: they share it).
- `hardest_negative`: Bradley-Terry between each positive and the pool's highest-scoring negative.
Pools are padded to one width; `valid` marks real members. A pool without a positive has nothing
to pull up and is skipped (so is one without a negative: its loss would be constant); the numbers
skipped are returned so the trainer can count them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LISTWISE_LOSSES = ("softmax", "hardest_negative")


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float | torch.Tensor = 0.0,
                       center_coef: float = 0.0) -> torch.Tensor:
    diff = r_chosen.float() - r_rejected.float() - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef:
        loss = loss + center_coef * (r_chosen.float() + r_rejected.float()).pow(2).mean()
    return loss


def listwise_loss(rewards: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor,
                  kind: str = "softmax") -> tuple[torch.Tensor, dict[str, int]]:
    """(mean loss over the usable pools, counts) for rewards [pools, width] with boolean masks
    `positive` and `valid` of the same shape (padding: valid False). Counts: `used`,
    `skipped_no_positive`, `skipped_no_negative`. With no usable pool the loss is a zero that
    still depends on `rewards` (so backward runs the same graph on every rank)."""
    if kind not in LISTWISE_LOSSES:
        raise ValueError(f"listwise loss must be one of {LISTWISE_LOSSES}, got {kind!r}")
    if rewards.shape != positive.shape or rewards.shape != valid.shape or rewards.ndim != 2:
        raise ValueError(f"rewards {tuple(rewards.shape)}, positive {tuple(positive.shape)} and valid "
                         f"{tuple(valid.shape)} must be the same [pools, width]")
    r = rewards.float()
    valid = valid.bool()
    pos = positive.bool() & valid
    neg = ~positive.bool() & valid
    has_pos, has_neg = pos.any(-1), neg.any(-1)
    use = has_pos & has_neg
    counts = {"used": int(use.sum()), "skipped_no_positive": int((~has_pos).sum()),
              "skipped_no_negative": int((has_pos & ~has_neg).sum())}
    if not counts["used"]:
        return (r * 0.0).sum(), counts
    r, pos, neg, valid = r[use], pos[use], neg[use], valid[use]
    very_low = torch.finfo(r.dtype).min  # masked members: exp() of them is exactly 0
    if kind == "softmax":
        per_pool = torch.logsumexp(r.masked_fill(~valid, very_low), -1) - torch.logsumexp(r.masked_fill(~pos, very_low), -1)
    else:
        hardest = r.masked_fill(~neg, very_low).max(-1).values
        per_pos = -F.logsigmoid(r - hardest[:, None])
        per_pool = (per_pos * pos).sum(-1) / pos.sum(-1)
    return per_pool.mean(), counts


@torch.no_grad()
def pool_metrics(rewards: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy of the usable pools of a batch: the highest reward is a positive."""
    valid = valid.bool()
    pos = positive.bool() & valid
    use = pos.any(-1) & (~positive.bool() & valid).any(-1)
    if not use.any():
        return {}
    top = rewards.float().masked_fill(~valid, float("-inf")).argmax(-1)
    hit = pos.gather(1, top[:, None]).squeeze(1)
    return {"pool_top1": hit[use].float().mean().item()}


@torch.no_grad()
def pair_metrics(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> dict[str, float]:
    """Pairwise accuracy (ties count as wrong), mean rewards and mean margin of a batch."""
    r_c, r_r = r_chosen.float(), r_rejected.float()
    return {
        "accuracy": (r_c > r_r).float().mean().item(),
        "reward_chosen": r_c.mean().item(),
        "reward_rejected": r_r.mean().item(),
        "margin": (r_c - r_r).mean().item(),
    }
