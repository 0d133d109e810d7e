"""The reward-model side of the serve kit (runs inside model replicas): the reward floor a head
can provably not go below, and `RewardBackend`, which scores a batch of mixed units (tool-call
candidates rendered like training, or pre-rendered text) in as few forwards as possible, one bad
unit failing alone."""

import math
from typing import Any

from fcrm_ray.scoring import finite_or_none, make_scorer
from fcrm_ray.serve.config import ModelConfig
from fcrm_ray.toolcall.render import render

# Reward floor for heads whose range we cannot bound (see head_lower_bound); documented in
# RewardConfig. Any head fcrm trains (BERT-style encoders, causal LMs with a final RMSNorm or
# LayerNorm) gets its provable bound instead.
FALLBACK_FLOOR = -100.0


def head_lower_bound(model: Any) -> float | None:
    """B >= 0 such that the reward head cannot output less than -B for ANY input, from the head's
    weights (the representation it reads is bounded by construction), or None if unknown.

    - BERT-style: `classifier(tanh(pooler))` (or RoBERTa's `out_proj(tanh(dense))`): every input
      coordinate is in (-1, 1), so |r| < |w|_1 + |b|.
    - causal LM `score` over a final RMSNorm (weight * x / rms(x)) or LayerNorm: the normalised
      vector has L2 norm <= sqrt(d), so |r| <= sqrt(d) * |w * gamma|_2 + |w . beta| + |b|."""
    # local: only model replicas run this; the ingress replicas and `fcrm serve` import this module too
    import torch

    def lin(m):
        return m if isinstance(m, torch.nn.Linear) and m.out_features == 1 else None

    def wb(m):
        w = m.weight.detach().double().reshape(-1)
        b = float(m.bias.detach().double().abs().sum()) if m.bias is not None else 0.0
        return w, b

    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = getattr(model, "classifier", None)
    if lin(head) is not None:
        pooler = getattr(base, "pooler", None)
        if isinstance(getattr(pooler, "activation", None), torch.nn.Tanh):
            w, b = wb(head)
            return float(w.abs().sum()) + b
        return None
    if head is not None and lin(getattr(head, "out_proj", None)) is not None and hasattr(head, "dense"):
        w, b = wb(head.out_proj)  # RoBERTa-style: out_proj(tanh(dense(x)))
        return float(w.abs().sum()) + b
    score, norm = lin(getattr(model, "score", None)), getattr(base, "norm", None)
    if score is None or norm is None or getattr(norm, "weight", None) is None:
        return None
    w, b = wb(score)
    gamma = norm.weight.detach().double().reshape(-1)
    name = type(norm).__name__
    if "Gemma" in name or not ("RMSNorm" in name or isinstance(norm, torch.nn.LayerNorm)):
        return None  # Gemma scales by (1 + weight); other norms: unknown
    bound = math.sqrt(gamma.numel()) * float((w * gamma).norm()) + b
    beta = getattr(norm, "bias", None)
    if beta is not None:
        bound += abs(float((w * beta.detach().double().reshape(-1)).sum()))
    return bound


class RewardBackend:
    """A `RewardScorer` plus the glue to score a batch of mixed units in as few forwards as possible,
    one bad unit failing alone.

    Units: `("cand", tools, messages, candidate)` rendered with `toolcall.render` (the training
    rendering) and `("text", prompt, completion)` (pre-rendered text). Results per unit: a finite
    float, None (unscorable: empty, or too long for max_length) or `{"error": reason}` (the unit
    could not be rendered or scored; the rest of the batch is unaffected)."""

    def __init__(self, mcfg: ModelConfig):
        self.cfg = mcfg
        self.scorer = make_scorer(mcfg.path, **mcfg.scorer_kwargs())
        # vLLM holds its weights in its own process: no bound to read from a head there
        self.lower_bound = head_lower_bound(self.scorer.model) if self.scorer.model is not None else None

    def score_units(self, units: list[tuple]) -> list[Any]:
        out: list[Any] = [None] * len(units)
        groups: dict[str, list[tuple[int, str]]] = {}  # rendered prompt -> [(unit, completion)]
        for i, u in enumerate(units):
            try:
                if u[0] == "text":
                    prompt, completion = str(u[1]), str(u[2])
                else:
                    r = render(self.scorer.tokenizer, u[1], u[2], u[3])
                    prompt, completion = r.prompt, r.completion
            except Exception as e:  # a template or renderer exception: this unit only
                out[i] = unit_error("render", e)
                continue
            groups.setdefault(prompt, []).append((i, completion))
        specs = [(p, [c for _, c in members]) for p, members in groups.items()]
        try:  # one call: prefix sharing and length bucketing across the whole batch
            results = self.scorer.score_groups(specs)
        except Exception:  # isolate: score group by group, a failing group fails alone
            results = []
            for spec in specs:
                try:
                    results.append(self.scorer.score_groups([spec])[0])
                except Exception as e:
                    results.append([unit_error("score", e)] * len(spec[1]))
        for members, scores in zip(groups.values(), results):
            for (i, _), s in zip(members, scores):
                out[i] = s if isinstance(s, dict) else finite_or_none(s)
        return out

    def warm_up(self) -> None:
        """One forward before the replica reports ready (the first one pays lazy initialisation)."""
        self.score_units([("text", "[USER] warm up\n[CALL]", " ok")])

    def info(self) -> dict:
        info = getattr(self.scorer, "model_info", None)
        return dict(info()) if callable(info) else {}


def unit_error(stage: str, e: BaseException) -> dict:
    return {"error": f"{stage} failed: {type(e).__name__}: {str(e)[:300]}"}
