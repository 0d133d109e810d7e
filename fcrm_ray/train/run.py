"""`fcrm train`: train a Bradley-Terry reward model on preference pairs with Ray Train.

    fcrm train --config configs/train/cpu.yaml --out runs/rm-minilm [key=value ...]
    python jobs/train_rm.py --config configs/train/qwen3-8b.yaml --out s3://.../rm   # ray job submit

Phases: validate config (bad keys fail here, before Ray starts) -> read pairs and tokenise them
with Ray Data (unusable rows counted and quarantined) -> TorchTrainer over `scaling.num_workers`
workers (`loop.train_loop_per_worker`) -> copy the final HF checkpoint to --out and write the
artifacts below.

Features and the flags that turn them on:

| feature                                   | flag(s)                                                   |
|-------------------------------------------|-----------------------------------------------------------|
| any HF backbone (causal LM or encoder)    | `model.path` (local folder; `pkg:minilm` = packaged MiniLM) |
| bf16 on GPU, fp32 on CPU                  | `model.dtype=auto` (or float32 / bfloat16)                |
| gradient checkpointing                    | `model.gradient_checkpointing=true`                       |
| input embedding kept fixed (large vocabularies) | `model.freeze_embeddings=true`                      |
| DeepSpeed ZeRO-3 (GPU and CPU)            | `train.strategy=deepspeed`, `deepspeed.zero_stage=3`      |
| CPU offload of params / optimizer         | `deepspeed.offload_params=true`, `deepspeed.offload_optimizer=true` |
| torch DDP / single process instead        | `train.strategy=ddp` / `train.strategy=single`            |
| gradient accumulation                     | `train.gradient_accumulation_steps=N`                     |
| Bradley-Terry margin                      | `train.margin=0.5`                                        |
| reward centering                          | `train.center_coef=0.01`                                  |
| listwise Best-of-N objective on real pools (softmax over a pool / hardest negative) | `train.listwise_weight`, `train.listwise_loss`, `data.train_pools_path`, `data.max_pool_candidates`, `train.pools_per_step` |
| chosen + rejected in one forward          | always                                                    |
| prompt shared by chosen/rejected (causal LMs: one packed row per pair, block mask) | `train.share_prompt=auto|true|false` |
| dropout off while training (as TRL/OpenRLHF) | `model.disable_dropout=true` (default)                 |
| length-grouped micro-batches              | `data.length_group_size=N` (1 = plain shuffle)            |
| truncation keeping the call (catalog cut) | `data.max_length`, `data.min_prompt_tokens`               |
| long calls kept at a longer limit         | `data.overflow_length` (0 = dropped as over-long)         |
| periodic validation (overall, per error type) | `train.eval_every=N`, `data.max_eval_rows=N`, `data.max_validation_rows=N` |
| a balanced subset of the train pairs      | `data.max_train_rows`, `data.balance_by`, `data.balance_power` |
| training on several pair sets (bench + generate) | `data.train_path`, `data.extra_train_paths=[...]`       |
| final held-out passes (test, test_obfuscated) | `data.test_split`, `data.extra_eval_splits`, `data.test_path`, `data.max_test_rows` |
| checkpoints + resume after failures       | `ckpt.storage_path`, `ckpt.name`, `ckpt.every_steps`, `scaling.max_failures` |
| multi-worker / GPU scaling                | `scaling.num_workers`, `scaling.use_gpu`, `scaling.cpus_per_worker` |
| torch threads per worker (CPU)            | `train.num_threads`                                       |
| wandb                                     | `logging.wandb_mode=offline|online|disabled`              |
| crash injection (test hook, `faults.py`)  | `train.fault_inject_step=K`                               |

Artifacts in --out: the reward model (`config.json`, weights, tokenizer; standard
`*ForSequenceClassification`, num_labels=1), `reward_stats.json` (validation reward mean/std),
`eval.json` (validation / test / extra held-out splits: accuracy overall, per error type /
category / generator, reward statistics),
`metrics.jsonl`, `learning_curve.png`, `data_stats.json` (rows kept / truncated / quarantined),
`train_config.yaml`, `quarantine.jsonl` (if any row was dropped).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import ray
import ray.data
from matplotlib.figure import Figure
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from fcrm_ray.common.ray_cluster import ray_init
from fcrm_ray.config import ConfigError, config_arg_parser, parse_config_args, to_dict, to_yaml
from fcrm_ray.data.pairs import read_pairs
from fcrm_ray.data.quarantine import Quarantine
from fcrm_ray.models import load_tokenizer
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.train.checkpoint import CKPT_META, HF_DIR, foreign_checkpoints, run_identity
from fcrm_ray.train.config import TrainConfig
from fcrm_ray.train.data import STATUS_OK, balanced_subset, tokenize_batch, weighted_subset
from fcrm_ray.train.loop import train_loop_per_worker
from fcrm_ray.train.pools import load_pools


def read_split_rows(d, quarantine: Quarantine) -> dict[str, list[dict]]:
    """Pair rows per split name (train, validation, test, extra eval splits) from the configured
    pair sets; each file is read once, so a bad row is quarantined once. Caps take a
    random-looking, stable subset (by pair id; the train cap balanced by `data.balance_by`)."""
    files: dict[str, list[dict]] = {}

    def rows_of(paths, split: str, cap: int, by=(), power: float = 1.0, weights=None) -> list[dict]:
        out = []
        for path in paths:
            if path not in files:
                files[path] = read_pairs(path, quarantine=quarantine)
            out += [r for r in files[path] if not split or r["split"] == split]
        if weights and cap:
            return weighted_subset(out, cap, weights, by, power)
        return balanced_subset(out, cap, by, power)

    test_path = d.test_path or d.train_path
    rows = {"train": rows_of([d.train_path, *d.extra_train_paths], d.train_split, d.max_train_rows,
                             d.balance_by, d.balance_power, dict(d.source_weights)),
            "validation": rows_of([d.validation_path or d.train_path], d.validation_split, d.max_validation_rows),
            "test": rows_of([test_path], d.test_split, d.max_test_rows)}
    for split in d.extra_eval_splits:
        rows.setdefault(split, rows_of([test_path], split, d.max_test_rows))
    return rows


def prepare_datasets(cfg: TrainConfig, model_path: str, quarantine: Quarantine) -> tuple[dict, dict]:
    """Ray Datasets of tokenised pairs per split, and counts {split: {read, kept, truncated, dropped:{reason: n}}}."""
    d = cfg.data
    datasets, stats = {}, {}
    train_paths = ", ".join([d.train_path, *d.extra_train_paths])
    for name, rows in read_split_rows(d, quarantine).items():
        if not rows:
            if name == "train":
                raise ConfigError(f"config key `data.train_path`: no rows with split={d.train_split!r} in {train_paths}")
            continue
        ds = ray.data.from_items(rows).map_batches(
            tokenize_batch, batch_format="pyarrow", batch_size=128,
            fn_kwargs={"tokenizer_path": model_path, "max_length": d.max_length,
                       "min_prompt_tokens": d.min_prompt_tokens, "overflow_length": d.overflow_length,
                       "trust_remote_code": cfg.model.trust_remote_code}).materialize()
        status = Counter()
        truncated = 0
        for batch in ds.select_columns(["status", "truncated"]).iter_batches(batch_format="pyarrow", batch_size=4096):
            status.update(batch.column("status").to_pylist())
            truncated += sum(batch.column("truncated").to_pylist())
        bad = ds.filter(expr=f"status != '{STATUS_OK}'") if sum(status.values()) != status[STATUS_OK] else None
        if bad is not None:
            for r in bad.select_columns(["id", "status", "detail", "error_type"]).take_all():
                quarantine.add(r, f"{r['status']}: {r['detail']}", source=f"train.{name}")
        kept = status[STATUS_OK]
        stats[name] = {"read": len(rows), "kept": kept, "truncated": truncated,
                       "dropped": {k: v for k, v in status.items() if k != STATUS_OK}}
        if kept == 0:
            if name == "train":
                raise ConfigError(f"no usable training pairs in {train_paths} (dropped: {stats[name]['dropped']})")
            continue
        # materialised: the shards must not need CPUs that the train workers already hold
        datasets[name] = ds.filter(expr=f"status == '{STATUS_OK}'").materialize() if kept != len(rows) else ds
    return datasets, stats


def prepare_pools(cfg: TrainConfig, model_path: str, quarantine: Quarantine) -> tuple[Any, dict | None]:
    """The Ray Dataset of tokenised Best-of-N pools for the listwise objective and their counts
    (`train/pools.py`), or (None, None) without `data.train_pools_path`."""
    d = cfg.data
    if not d.train_pools_path:
        return None, None
    tok = load_tokenizer(model_path, cfg.model.trust_remote_code)
    pools, stats = load_pools(d.train_pools_path, tok, d.max_length, d.min_prompt_tokens, d.overflow_length,
                              d.max_pool_candidates, d.max_train_pools, cfg.train.seed, quarantine)
    if len(pools) < cfg.scaling.num_workers * cfg.train.pools_per_step:
        raise ConfigError(f"config key `data.train_pools_path`: {len(pools)} usable pools in {d.train_pools_path}, "
                          f"fewer than scaling.num_workers x train.pools_per_step (counts: {stats})")
    return ray.data.from_items(pools), stats


def _quiet_ray_data() -> None:
    """Progress bars from every worker's dataset shard drown the training log."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _wandb_dir(cfg: TrainConfig) -> str | None:
    """Offline wandb runs go beside the checkpoints when storage is a local/shared folder."""
    if "://" in cfg.ckpt.storage_path:
        return None
    d = Path(cfg.ckpt.storage_path).resolve() / cfg.ckpt.name
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def _run_config(cfg: TrainConfig) -> RunConfig:
    storage = cfg.ckpt.storage_path
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    return RunConfig(name=cfg.ckpt.name, storage_path=storage,
                     checkpoint_config=CheckpointConfig(num_to_keep=cfg.ckpt.num_to_keep),
                     failure_config=FailureConfig(max_failures=cfg.scaling.max_failures))


def check_resumable(cfg: TrainConfig) -> None:
    """Re-running with the same `ckpt.storage_path` + `ckpt.name` resumes; refuse when the
    checkpoints there belong to a run with other model/data/optimisation settings (local storage;
    the workers check cloud storage at restore)."""
    if "://" in cfg.ckpt.storage_path:
        return
    run_dir = Path(cfg.ckpt.storage_path).resolve() / cfg.ckpt.name
    foreign = foreign_checkpoints(run_dir, run_identity(to_dict(cfg)), run_identity(to_dict(TrainConfig())))
    if foreign:
        raise ConfigError(f"{run_dir} holds checkpoints of a different run, which this one would resume from "
                          f"({' | '.join(foreign[:3])}); choose another ckpt.name or ckpt.storage_path, or "
                          f"delete that folder to start over")


def run_training(cfg: TrainConfig) -> dict:
    """Everything after config validation; returns the final evaluation dict."""
    check_resumable(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model_path(cfg.model.path)
    # Ray Train's PlacementGroupCleaner asks the State API every second whether the controller is
    # alive; a local Ray started without the dashboard does not serve that API, so each poll logged
    # "Failed to query Ray Train Controller actor state" for the whole run.
    ray_init(cfg.ray, dashboard=None)
    _quiet_ray_data()
    quarantine = Quarantine(cfg.data.quarantine_path or out / "quarantine.jsonl")
    with quarantine:
        datasets, stats = prepare_datasets(cfg, model_path, quarantine)
        pools, pool_stats = prepare_pools(cfg, model_path, quarantine)
        if pools is not None:
            datasets["train_pools"], stats["train_pools"] = pools, pool_stats
    stats["quarantine"] = dict(quarantine.counts)
    (out / "data_stats.json").write_text(json.dumps(stats, indent=2))
    (out / "train_config.yaml").write_text(to_yaml(cfg))
    print(f"[fcrm train] data: {json.dumps(stats)}", flush=True)

    resources = {"CPU": cfg.scaling.cpus_per_worker}
    if cfg.scaling.use_gpu:
        resources["GPU"] = cfg.scaling.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": to_dict(cfg), "model_path": model_path, "run_name": cfg.ckpt.name,
                           "datasets": sorted(datasets), "wandb_dir": _wandb_dir(cfg)},
        scaling_config=ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                                     resources_per_worker=resources),
        run_config=_run_config(cfg),
        datasets=datasets,
        # No Ray Data split: its streaming split hands blocks to whichever worker asks first, so a
        # restarted attempt could train each rank on other rows. Each worker streams the train set
        # and keeps its own part by pair-id hash (loop._load_rows): the same rows on every attempt.
        dataset_config=DataConfig(datasets_to_split=[]),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as d:
        d = Path(d)
        if not (d / HF_DIR).is_dir():
            raise RuntimeError(f"the last checkpoint {result.checkpoint.path} has no final model ({HF_DIR}/)")
        for f in (d / HF_DIR).iterdir():
            shutil.copy2(f, out / f.name)
        meta = json.loads((d / CKPT_META).read_text())
    final = json.loads(result.metrics["final"])
    precision = final.get("precision") or {}
    if precision.get("autocast") in ("bf16", "none"):  # what `auto` became on the workers' hardware
        cfg.train.autocast = precision["autocast"]
        (out / "train_config.yaml").write_text(f"# train.autocast resolved on the worker: {precision.get('reason', '')}; "
                                               f"{precision.get('torch_threads')} torch threads per worker\n"
                                               + to_yaml(cfg))
    write_artifacts(out, final, meta.get("history", []), stats)
    return final


def write_artifacts(out: Path, final: dict, history: list[dict], stats: dict) -> None:
    val = final.get("validation", {})
    (out / "reward_stats.json").write_text(json.dumps({
        "split": "validation", "n_pairs": val.get("n", 0), "mean": val.get("reward_mean"), "std": val.get("reward_std"),
        "chosen_mean": val.get("reward_chosen_mean"), "rejected_mean": val.get("reward_rejected_mean")}, indent=2))
    (out / "eval.json").write_text(json.dumps({**final, "data": stats}, indent=2))
    with open(out / "metrics.jsonl", "w") as fh:
        for rec in history:
            fh.write(json.dumps(rec, default=float) + "\n")
    plot_learning_curve(history, out / "learning_curve.png")


def plot_learning_curve(history: list[dict], path: Path) -> None:
    train = [h for h in history if "train/loss" in h]
    val = [h for h in history if "validation/accuracy" in h]
    # a bare Figure (no pyplot): no backend to choose, no global figure registry to close
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot([h["step"] for h in train], [h["train/loss"] for h in train], label="train loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("Bradley-Terry loss")
    ax1.legend()
    ax2.plot([h["step"] for h in train], [h["train/accuracy"] for h in train], label="train accuracy", alpha=0.6)
    ax2.plot([h["step"] for h in val], [h["validation/accuracy"] for h in val], "o-", label="validation accuracy")
    ax2.set_xlabel("step")
    ax2.set_ylabel("pairwise accuracy")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None, prog: str = "fcrm train") -> int:
    parser = config_arg_parser(prog, "Train a Bradley-Terry reward model with Ray Train.", out=True)
    cfg, _ = parse_config_args(TrainConfig, argv, prog, parser=parser)
    if not cfg.out:
        raise ConfigError("config key `out` is required: --out DIR (the final HF reward model and reports)")
    final = run_training(cfg)
    accs = ", ".join(f"{name} accuracy {ev.get('accuracy')}" for name, ev in final.items()
                     if isinstance(ev, dict) and "accuracy" in ev)
    print(f"[fcrm train] done: {accs} -> {cfg.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
