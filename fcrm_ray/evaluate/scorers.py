"""The scoring backends of the pairwise evals (`pairwise`, `robustness`): rows of pairs ->
(chosen rewards, rejected rewards, scorer stats), in this process, in a Ray Data actor pool, or
by an LLM judge (`judge.py`).

`cfg` below is the eval's config (`config.PairwiseConfig` or a subclass): `score_rows` picks the
backend from its `scorer` / `backend` keys, and the backends read its `model` (scoring settings),
`actors`, `ray` and `judge` sections."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import ray
import ray.data

from fcrm_ray.common.ray_cluster import ray_init
from fcrm_ray.evaluate.judge import score_judge
from fcrm_ray.models import load_tokenizer
from fcrm_ray.scoring import make_scorer, score_dataset, score_pairs
from fcrm_ray.toolcall.render import render


def score_rows(rows: Sequence[Mapping], model_path: str, cfg, quarantine=None) -> tuple[list, list, dict]:
    if cfg.scorer == "vllm_judge":
        return score_judge(rows, model_path, cfg.judge, trust_remote_code=cfg.model.trust_remote_code)
    if cfg.backend == "ray":
        return score_ray(rows, model_path, cfg, quarantine)
    return score_local(rows, model_path, cfg, quarantine)


def score_local(rows: Sequence[Mapping], model_path: str, cfg, quarantine=None) -> tuple[list, list, dict]:
    """(chosen, rejected, scorer stats) with a RewardScorer in this process. Chosen and rejected
    share the prompt, so each pair is one shared-prefix group (`scoring.score_pairs`)."""
    scorer = make_scorer(model_path, **cfg.model.scorer_kwargs())
    chosen, rejected = score_pairs(scorer, rows, quarantine=quarantine)
    return chosen, rejected, {**dict(scorer.stats), "model_info": scorer.model_info()}


def render_batch(batch: dict, model_path: str, trust_remote_code: bool = False) -> dict:
    """Ray Data task: pair-side rows (tools, conversation, candidate) -> prompt/completion texts.
    A row that cannot be rendered gets `render_error` and empty texts (scored NaN downstream)."""
    tok = load_tokenizer(model_path, trust_remote_code)
    prompts, completions, errors = [], [], []
    for tools, conv, cand in zip(batch["tools"], batch["conversation"], batch["candidate"]):
        try:
            r = render(tok, tools, conv, cand)
            prompts.append(r.prompt)
            completions.append(r.completion)
            errors.append("")
        except (ValueError, TypeError) as e:  # SchemaError is a ValueError
            prompts.append("")
            completions.append("")
            errors.append(str(e) or type(e).__name__)
    return {"uid": batch["uid"], "group_id": batch["uid"] // 2, "prompt": prompts, "completion": completions,
            "render_error": errors}


def score_ray(rows: Sequence[Mapping], model_path: str, cfg, quarantine=None) -> tuple[list, list, dict]:
    """(chosen, rejected, stats) with Ray Data: render in tasks, score in an actor pool.

    Each pair becomes two rows (uid 2i = chosen, 2i+1 = rejected) with group_id i, so the actor
    scores a pair as one shared-prefix group when both sides land in the same batch."""
    ray_init(cfg.ray)
    items = []
    for i, r in enumerate(rows):
        for side, col in ((0, "chosen_output"), (1, "rejected_output")):
            items.append({"uid": 2 * i + side, "tools": r["tools"], "conversation": r["conversation"], "candidate": r[col]})
    ds = ray.data.from_items(items)
    ds = ds.map_batches(render_batch, fn_kwargs={"model_path": model_path, "trust_remote_code": cfg.model.trust_remote_code},
                        batch_size=cfg.actors.batch_size, batch_format="numpy")
    ds = score_dataset(ds, model_path, cfg.model, cfg.actors)
    out = ds.select_columns(["uid", "reward", "render_error"]).take_all()
    reward = [math.nan] * len(items)
    bad: dict[int, str] = {}
    for o in out:
        uid = int(o["uid"])
        if o["render_error"]:
            bad[uid // 2] = str(o["render_error"])
        else:
            reward[uid] = float(o["reward"])
    for i, reason in sorted(bad.items()):  # same contract as score_pairs: NaN both sides, quarantined
        reward[2 * i] = reward[2 * i + 1] = math.nan
        if quarantine is not None:
            quarantine.add(dict(rows[i]), reason, source="score_ray")
    return reward[0::2], reward[1::2], {"backend": "ray", "num_actors": cfg.actors.num_actors, "render_errors": len(bad)}
