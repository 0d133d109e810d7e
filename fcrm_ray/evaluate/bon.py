"""`fcrm eval bon`: Best-of-N reranking with a reward model, judged by the verifier.

    fcrm eval bon --model runs/rm-minilm --candidates pools.jsonl --out runs/eval/bon
    fcrm eval bon --build-pools --out pools.jsonl [pools.max_examples=200 pools.pool_size=16 pools.correct_fraction=0.3]

Evaluation. A pool is a row `{example_id, tools, conversation, reference, candidates: [text, ...]}`
(JSONL or Parquet; tools/conversation/reference as JSON values or JSON strings; candidates in
sampling order). Each pool is scored with ONE `RewardScorer.score_groups` call (the candidates
share the prompt prefix), every candidate is judged by `toolcall.verify.verify` against the
reference and keyed by `verify.canonical_key`. For n in {1, 2, 4, 8, 16, 32} up to the pool size,
the rerankers use the first n candidates: the RM pick (highest reward) and reward-weighted voting
over canonical calls (`vote_sum`: summed exp(reward) per call, `vote_max`: best reward per call);
the baselines on the same pools are the first sample, a random pick (expected value), majority
vote over canonical calls and the oracle; each accuracy with a bootstrap 95% CI, plus how often
each reranker is wrong where the first sample is right (rules and tie-breaks: `evaluate.metrics`).
Every candidate gets a reward: one the scorer cannot score (NaN: empty, over `max_length`) gets
`metrics.fill_unscorable_rewards`'s, below every scorable candidate of its pool, and is flagged
`unscorable`. Candidates that do not parse are scored like any text, judged
`incorrect_output_format`, and form no group in the weighted votes. The vote reuses the pool's
rewards: scoring stays one `score_groups` call per pool. Rows without a usable
catalog/reference/candidates go to `<out>/quarantine.jsonl`. Artifacts: `bon.json`, `bon.md`,
`accuracy_vs_n.png`, `pools_scored.jsonl` (per pool: rewards, unscorable flags, verdicts, picks).

Pool building (`--build-pools`), from BFCL examples (`data.sources.read_bfcl`, default the non-live
categories, i.e. the held-out test side of our splits) with `pools.backend`:
- `mutation` (CPU): each of `pool_size` slots is correct with probability `correct_fraction`
  (so pools vary and some hold no correct answer, as with real samples); correct slots get
  verified alternative forms of the reference (`mutate.chosen_variants`), wrong slots verified
  mutations (`mutate.mutate`) with error types drawn at FC-RewardBench's frequencies; the slots are
  then shuffled (seeded), so the first sample is correct with probability `correct_fraction`.
- `hf` (CPU or GPU): `pool_size` samples per prompt from a causal LM with transformers `generate`
  (`fcrm_ray.generate.backends.HFGenerator`; `pools.model=tiny:qwen3` builds a tiny random model).
- `vllm`: `pool_size` samples per prompt from vLLM (`SamplingParams(n=...)`), on a GPU or vLLM's CPU build.
"""

from __future__ import annotations

import json
import math
import random
import sys
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm import tqdm

from fcrm_ray.config import ConfigError, config_arg_parser, load_config, to_dict
from fcrm_ray.data.pairs import iter_raw_rows, stable_hash
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.data.sources import read_bfcl
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate.config import BonConfig, PoolsConfig
from fcrm_ray.evaluate.report import fmt_acc, md_table, model_name, save_lines
from fcrm_ray.generate.stages import render_generation_prompt
from fcrm_ray.models import RewardModelError, check_reward_model_dir
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.scoring import make_scorer
from fcrm_ray.toolcall.mutate import chosen_variants, mutate
from fcrm_ray.toolcall.schema import ERROR_TYPES, Example, SchemaError, normalize_tools, reference_from_bfcl
from fcrm_ray.toolcall.verify import canonical_key, verify
from fcrm_ray.vllm_engine import build_llm, engine_kwargs, sampling_params, token_prompts

# FC-RewardBench error-type counts (paper-notes.md), the mix of wrong candidates in mutation pools.
ERROR_WEIGHTS = {"incorrect_parameter_value": 650, "incorrect_function_name": 403, "incorrect_number_of_functions": 245,
                 "missing_optional_parameter": 78, "missing_required_parameter": 45, "incorrect_parameter_type": 43,
                 "unexpected_parameter": 21, "incorrect_output_format": 15}


# ----------------------------------------------------------------------------------------------
# Reading pools
# ----------------------------------------------------------------------------------------------


def _json_value(row: Mapping, key: str) -> Any:
    v = row.get(key)
    if v is None or v == "":
        raise SchemaError(f"pool row is missing `{key}`")
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise SchemaError(f"`{key}` is not valid JSON: {e.msg}") from None
    if hasattr(v, "tolist"):
        v = v.tolist()
    return v


def normalize_pool(row: Any) -> dict:
    """A pool row -> {example_id, tools (list[ToolSpec]), conversation, reference, candidates (list[str])}."""
    if not isinstance(row, Mapping):
        raise SchemaError("row is not a JSON object")
    tools = normalize_tools(_json_value(row, "tools"))
    conv = _json_value(row, "conversation")
    if not isinstance(conv, list) or not all(isinstance(m, Mapping) and "role" in m for m in conv):
        raise SchemaError("`conversation` must be a list of messages with a `role`")
    reference = reference_from_bfcl(_json_value(row, "reference"))
    if not reference:
        raise SchemaError("`reference` is empty")
    cands = _json_value(row, "candidates")
    if not isinstance(cands, list) or not cands:
        raise SchemaError("`candidates` must be a non-empty list")
    # A candidate may arrive decoded (a list of call dicts); score and verify its JSON text.
    cands = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in cands]
    ex_id = row.get("example_id") or row.get("id") or stable_hash(row.get("tools"), row.get("conversation"))
    return {"example_id": str(ex_id), "tools": tools, "conversation": [dict(m) for m in conv], "reference": reference,
            "candidates": cands, "category": str(row.get("category") or "")}


def read_pools(path: str | Path, quarantine: Quarantine) -> tuple[list[dict], int]:
    """(pools, rows read); unusable rows go to `quarantine`."""
    pools, n = [], 0
    for fname, raw in iter_raw_rows(path):
        n += 1
        try:
            pools.append(normalize_pool(raw))
        except SchemaError as e:
            quarantine.add(raw, str(e), source=fname)
    return pools, n


# ----------------------------------------------------------------------------------------------
# Scoring and judging
# ----------------------------------------------------------------------------------------------


def judge_pool(pool: Mapping) -> tuple[list[bool], list[str | None], list[str]]:
    """(correct, error_type, canonical key) per candidate."""
    correct, errors, keys = [], [], []
    for c in pool["candidates"]:
        v = verify(c, pool["reference"], pool["tools"])
        correct.append(bool(v.correct))
        errors.append(v.error_type)
        keys.append(canonical_key(c))
    return correct, errors, keys


def score_pools(pools: Sequence[Mapping], scorer: Any) -> list[list[float]]:
    """Rewards per pool: one `score_groups` call per pool, so the pool's prompt is shared."""
    out = []
    for p in tqdm(pools, desc="scoring pools", unit="pool", mininterval=5.0, disable=len(pools) < 20):
        tools = [t.to_dict() for t in p["tools"]]
        out.append([float(s) for s in scorer.score_groups([(tools, p["conversation"], list(p["candidates"]))])[0]])
    return out


def evaluate_pools(pools: Sequence[Mapping], rewards: Sequence[Sequence[float]], ns: Iterable[int],
                   n_boot: int = M.DEFAULT_N_BOOT, seed: int = 0, vote_temperature: float = 1.0) -> tuple[dict, list[dict]]:
    """(curve, per-pool records) from rewards + verifier verdicts. Missing rewards are filled by
    `metrics.fill_unscorable_rewards` (below every scorable candidate of the pool) and flagged."""
    scored, records = [], []
    for p, raw in zip(pools, rewards):
        r, unscorable = M.fill_unscorable_rewards(raw)
        correct, errors, keys = judge_pool(p)
        scored.append({"scores": r, "correct": correct, "keys": keys})
        picks = {n: M.pool_picks(r, keys, n, vote_temperature) for n in M.bon_ns(len(r), ns)}
        records.append({"example_id": p["example_id"], "category": p.get("category", ""), "rewards": r,
                        "unscorable": unscorable, "correct": correct, "error_types": errors,
                        **{f"{sel}_pick": {n: pk[sel] for n, pk in picks.items()} for sel in M.PICKERS}})
    return M.bon_curve(scored, ns=ns, n_boot=n_boot, seed=seed, vote_temperature=vote_temperature), records


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------

_LABELS = {"rm": "RM pick", "vote_sum": "RM-weighted vote (sum)", "vote_max": "RM-weighted vote (max)",
           "first": "first sample", "random": "random pick (expected)", "majority": "majority vote",
           "majority_rm": "majority vote (RM breaks ties)",
           "oracle": "oracle (any correct)"}


def bon_markdown(b: Mapping) -> str:

    sels = [s for s in M.SELECTORS if all(s in row for row in b["curve"].values())]
    curve = sorted(((int(k), v) for k, v in b["curve"].items()))
    rows = [[n, row["pools"]] + [fmt_acc(row[s]["accuracy"], row[s].get("ci95")) for s in sels] for n, row in curve]
    worse = [[n, row["pools"]] + [f"{w['fraction']:.3f} ({w['count']})" for w in
                                  (row["worse_than_first"][s] for s in M.RERANKERS if s in row["worse_than_first"])]
             for n, row in curve if "worse_than_first" in row]
    unscorable = b.get("unscorable_candidates", 0)
    lines = [
        f"# Best-of-N: {b['model']}", "",
        f"{b['pools']} pools from `{b['candidates']}` (mean size {b['mean_pool_size']:.1f}, "
        f"{b['fraction_correct']:.3f} of candidates correct; {b['quarantined']} rows quarantined; "
        f"{unscorable} candidates unscorable, ranked below every scorable one of their pool).", "",
        "Accuracy of the picked candidate as judged by the verifier, with 95% bootstrap CIs over pools. "
        "Weighted votes group the candidates by canonical call: `sum` = the group's summed "
        f"exp(reward / {b.get('config', {}).get('vote_temperature', 1.0):g}), "
        "`max` = its best reward (rules: `fcrm_ray/evaluate/metrics.py`).", "",
        md_table(["n", "pools"] + [_LABELS[s] for s in sels], rows), ""]
    if worse:
        lines += ["Pools where the reranker's pick is wrong while the first sample is right (share, count):", "",
                  md_table(["n", "pools"] + [_LABELS[s] for s in M.RERANKERS], worse), ""]
    return "\n".join(lines)


def plot_curve(curve: Mapping, path: Path, title: str) -> None:

    curve = {int(n): v for n, v in curve.items()}
    ns = sorted(curve)
    series = {_LABELS[s]: [curve[n][s]["accuracy"] for n in ns] for s in M.SELECTORS if all(s in curve[n] for n in ns)}
    bands = {_LABELS["rm"]: ([curve[n]["rm"]["ci95"][0] for n in ns], [curve[n]["rm"]["ci95"][1] for n in ns])}
    save_lines(ns, series, path, title=title, bands=bands)


def run_eval(cfg: BonConfig) -> dict:

    if not cfg.out:
        raise ConfigError("config key `out` is required (--out DIR)")
    if not cfg.candidates:
        raise ConfigError("config key `candidates` is required (--candidates FILE)")
    if not Path(cfg.candidates).exists():
        raise ConfigError(f"config key `candidates`: path does not exist: {cfg.candidates}")
    model_path = _check_model(cfg.model.path)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with Quarantine(cfg.quarantine or out / "quarantine.jsonl") as q:
        pools, n_read = read_pools(cfg.candidates, q)
        if cfg.max_pools and len(pools) > cfg.max_pools:
            pools = sorted(pools, key=lambda p: stable_hash(p["example_id"]))[:cfg.max_pools]
        if not pools:
            raise ConfigError(f"config key `candidates`: no usable pool in {cfg.candidates} "
                              f"({n_read} rows read, quarantined: {dict(q.counts)})")
        scorer = make_scorer(model_path, **cfg.model.scorer_kwargs())
        rewards = score_pools(pools, scorer)
        curve, records = evaluate_pools(pools, rewards, cfg.ns, n_boot=cfg.n_boot, seed=cfg.seed,
                                        vote_temperature=cfg.vote_temperature)
        quarantined = q.total
    sizes = [len(p["candidates"]) for p in pools]
    n_correct = sum(sum(r["correct"]) for r in records)
    b = {"model": model_name(model_path), "model_path": model_path, "candidates": str(cfg.candidates),
         "rows_read": n_read, "pools": len(pools), "quarantined": quarantined,
         "mean_pool_size": sum(sizes) / len(sizes), "fraction_correct": n_correct / max(1, sum(sizes)),
         "unscorable_candidates": sum(sum(r["unscorable"]) for r in records),
         "ns": sorted(int(n) for n in curve), "curve": {str(n): v for n, v in curve.items()},
         "scorer_stats": dict(scorer.stats), "config": to_dict(cfg)}
    (out / "bon.json").write_text(json.dumps(b, indent=2))
    (out / "bon.md").write_text(bon_markdown(b))
    with open(out / "pools_scored.jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    if curve:
        plot_curve(b["curve"], out / "accuracy_vs_n.png", title=f"Best-of-N: {b['model']} ({len(pools)} pools)")
    top = curve[max(curve)] if curve else {}
    print(f"[fcrm eval bon] {b['model']}: {len(pools)} pools; at n={max(curve) if curve else '-'}: "
          + ", ".join(f"{s} {top[s]['accuracy']:.3f}" for s in M.SELECTORS if s in top) + f" -> {out}", flush=True)
    return b


def _check_model(model: str) -> str:
    if not model:
        raise ConfigError("config key `model.path` is required (--model PATH)")
    path = resolve_model_path(model)
    if not Path(path).exists():
        raise ConfigError(f"config key `model.path`: path does not exist: {model}")
    try:
        check_reward_model_dir(path)
    except RewardModelError as e:
        raise ConfigError(f"config key `model.path`: {e}") from None
    return path


# ----------------------------------------------------------------------------------------------
# Building pools
# ----------------------------------------------------------------------------------------------


def bfcl_examples(p: PoolsConfig, quarantine: Quarantine) -> list[Example]:
    """Up to `max_examples` examples spread evenly over `categories` (the first ones of each file)."""
    per_cat = math.ceil(p.max_examples / len(p.categories)) if p.max_examples else None
    out: list[Example] = []
    for cat in p.categories:
        out.extend(islice(read_bfcl([cat], data_dir=p.data_dir or None, quarantine=quarantine), per_cat))
    return out[:p.max_examples] if p.max_examples else out


def mutation_pool(example: Example, size: int, correct_fraction: float, rng: random.Random) -> list[str]:
    """`size` candidates: each slot correct with P = correct_fraction, shuffled. Slots an example
    cannot fill (no variant / no mutation of the drawn type) are filled from the other side."""
    n_ok = sum(rng.random() < correct_fraction for _ in range(size))
    right = chosen_variants(example, rng, n_ok) if n_ok else []
    types = rng.choices(list(ERROR_WEIGHTS), weights=list(ERROR_WEIGHTS.values()), k=size - len(right))
    wrong: list[str] = []
    for et in sorted(set(types), key=types.index):
        wrong += [m.text for m in mutate(example, et, rng, n=types.count(et))]
    for et in ERROR_TYPES:  # top up from any error type the example admits
        if len(right) + len(wrong) >= size:
            break
        wrong += [m.text for m in mutate(example, et, rng, n=size - len(right) - len(wrong)) if m.text not in wrong]
    while right and len(right) + len(wrong) < size:  # tiny examples: repeat correct forms, as samples do
        right.append(rng.choice(right))
    cands = (right + wrong)[:size]
    rng.shuffle(cands)
    return cands


def hf_pools(examples: Sequence[Example], p: PoolsConfig, work_dir: Path) -> list[list[str]]:
    """`pool_size` samples per example from a causal LM (the generation developer's HF backend)."""
    # local: generate.backends imports Ray Data, which `fcrm eval bon` (in-process) otherwise never loads
    from fcrm_ray.generate.backends import HFGenerator, resolve_generator_model

    cfg = {"tag": "bon", "model": resolve_generator_model(p.model, work_dir), "device": p.device, "dtype": p.dtype,
           "chat_template_kwargs": dict(p.chat_template_kwargs), "num_cpus": 1,
           "sampling": {"n": p.pool_size, "temperature": p.temperature, "top_p": p.top_p, "top_k": 0,
                        "max_new_tokens": p.max_new_tokens, "seed": p.seed}}
    gen = HFGenerator(cfg)
    samples = gen.generate_rows([{"example": json.dumps(ex.to_dict())} for ex in examples])
    return [[s["text"] for s in row] for row in samples]


def vllm_pools(examples: Sequence[Example], p: PoolsConfig, work_dir: Path) -> list[list[str]]:
    """`pool_size` samples per example from vLLM (a GPU, or vLLM's CPU build: `vllm_engine`)."""
    # local: generate.backends imports Ray Data (see hf_pools)
    from fcrm_ray.generate.backends import resolve_generator_model

    model = resolve_generator_model(p.model, work_dir)
    llm = build_llm(model, engine_kwargs(tensor_parallel_size=p.tensor_parallel_size, max_model_len=p.max_model_len,
                                         seed=p.seed),
                    config_key="pools.model", what="Best-of-N pools")
    tok = llm.get_tokenizer()
    prompts = token_prompts(tok, [render_generation_prompt(tok, ex.tools, ex.conversation, p.chat_template_kwargs)
                                  for ex in examples])
    params = sampling_params(n=p.pool_size, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_new_tokens,
                             seed=p.seed)
    return [[o.text for o in r.outputs] for r in llm.generate(prompts, params, use_tqdm=False)]


def build_pools(cfg: BonConfig, out_file: str | Path) -> dict:
    """Write pool rows (JSONL) to `out_file`; returns counts."""
    p = cfg.pools
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    q = Quarantine(cfg.quarantine or out_file.with_name(out_file.stem + ".quarantine.jsonl"))
    with q:
        examples = bfcl_examples(p, q)
    if not examples:
        raise ConfigError(f"config key `pools.categories`: no examples read from {p.categories}")
    if p.backend == "mutation":
        pools = [mutation_pool(ex, p.pool_size, p.correct_fraction, random.Random(stable_hash("bon-pool", p.seed, ex.id)))
                 for ex in examples]
    elif p.backend == "hf":
        pools = hf_pools(examples, p, Path(p.work_dir) if p.work_dir else out_file.parent)
    else:
        pools = vllm_pools(examples, p, Path(p.work_dir) if p.work_dir else out_file.parent)
    n = 0
    with open(out_file, "w", encoding="utf-8") as fh:
        for ex, cands in zip(examples, pools):
            if not cands:
                continue
            d = ex.to_dict()
            fh.write(json.dumps({"example_id": ex.id, "category": ex.category, "tools": d["tools"],
                                 "conversation": d["conversation"], "reference": d["reference"],
                                 "candidates": cands, "generator": p.backend if p.backend == "mutation" else p.model},
                                ensure_ascii=False) + "\n")
            n += 1
    counts = {"examples": len(examples), "pools": n, "quarantined": q.total, "backend": p.backend}
    print(f"[fcrm eval bon --build-pools] {json.dumps(counts)} -> {out_file}", flush=True)
    return counts


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None, prog: str = "fcrm eval bon") -> int:
    parser = config_arg_parser(prog, "Best-of-N reranking with a reward model, judged by the verifier.")
    parser.add_argument("--model", help="reward model folder")
    parser.add_argument("--candidates", help="pool file or folder (JSONL/Parquet)")
    parser.add_argument("--out", required=True, help="output folder (eval) or pool JSONL file (--build-pools)")
    parser.add_argument("--build-pools", action="store_true", help="build candidate pools from BFCL instead")
    args = parser.parse_intermixed_args(argv)  # flags may follow key=value overrides
    flags = [f"{k}={json.dumps(v)}" for k, v in (("model.path", args.model), ("candidates", args.candidates)) if v]
    if not args.build_pools:
        flags.append(f"out={json.dumps(args.out)}")
    cfg = load_config(BonConfig, args.config, flags + list(args.overrides))
    if args.build_pools:
        build_pools(cfg, args.out)
    else:
        run_eval(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
