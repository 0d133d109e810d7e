"""Bradley-Terry pairwise loss for reward models, with optional margin and reward centering.

loss = mean(-logsigmoid(r_chosen - r_rejected - margin)) + center_coef * mean((r_chosen + r_rejected)^2)

The centering term (Eisenstein et al., "Helping or Herding?") keeps rewards near zero mean so
scores stay comparable across prompts; it is off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float | torch.Tensor = 0.0,
                       center_coef: float = 0.0) -> torch.Tensor:
    diff = r_chosen.float() - r_rejected.float() - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef:
        loss = loss + center_coef * (r_chosen.float() + r_rejected.float()).pow(2).mean()
    return loss


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
