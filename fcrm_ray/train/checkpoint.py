"""Training checkpoint layout and the check that decides whether a checkpoint can be restored.

A checkpoint folder (one per `ray.train.report`) holds:

    meta.json               step, total_steps, world_size, history, run (rank 0)
    state.pt                model/optimizer/scheduler state (strategy `single`/`ddp`, rank 0)
    ds/state/...            DeepSpeed ZeRO shards (strategy `deepspeed`, every rank its own)
    hf/                     the final `save_pretrained` reward model (last checkpoint only)
    manifest-rank{R}.json   {relative path: size in bytes} of every file rank R wrote

Ray Train merges the ranks' folders in storage. A checkpoint is restorable when `meta.json`
parses, every rank's manifest is there and every file it lists exists with its recorded size. A
node that died mid-upload, a full disk or a hand-edited folder fails that check, and the loop
skips the checkpoint with the reason (see `loop.Trainer._restore`) instead of crashing on it in
every restart. `meta.json` also records the run's identity (`run_identity`: the model, data and
optimisation settings); a run that finds checkpoints of a different identity under its
`ckpt.storage_path`/`ckpt.name` stops with the keys that differ instead of resuming someone
else's model (`identity_changes`). Pure: no torch or Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

CKPT_META = "meta.json"
HF_DIR = "hf"
DS_DIR = "ds"
DS_TAG = "state"
TORCH_STATE = "state.pt"
MANIFEST = "manifest-rank{rank}.json"


# Keys that do not change what a run trains: evaluation sizes, logging, threads, precision (a resume
# on other hardware may resolve autocast differently), the fault-injection hook.
_NOT_IDENTITY = {"data.quarantine_path", "data.max_validation_rows", "data.max_eval_rows", "data.max_test_rows",
                 "data.extra_eval_splits", "train.eval_every", "train.log_every", "train.num_threads",
                 "train.autocast", "train.share_prompt", "train.fault_inject_step"}


def run_identity(cfg: dict) -> dict:
    """The flattened `model.*`, `data.*` and `train.*` settings of a training config (a plain
    dict) that decide which model a run produces; what a resume must agree with."""
    out = {}
    for section in ("model", "data", "train"):
        for key, value in (cfg.get(section) or {}).items():
            name = f"{section}.{key}"
            if name not in _NOT_IDENTITY:
                out[name] = value
    return out


def identity_changes(saved: dict | None, current: dict, defaults: dict | None = None) -> list[str]:
    """`key: saved -> current` for every identity key that differs (none for checkpoints written
    before identities were recorded). A key the saved identity lacks is a setting added since that
    checkpoint was written: the run had its default (`defaults`, the identity of a default config),
    so it differs only when the current value is not that default."""
    if not saved:
        return []
    defaults = defaults or {}
    was = {k: saved[k] if k in saved else defaults.get(k) for k in set(saved) | set(current)}
    return [f"{k}: {was[k]!r} -> {current.get(k)!r}" for k in sorted(was) if was[k] != current.get(k)]


def foreign_checkpoints(run_dir: str | Path, identity: dict, defaults: dict | None = None) -> list[str]:
    """For a local run folder (`<ckpt.storage_path>/<ckpt.name>`): one line per checkpoint in it
    whose recorded identity differs from `identity`, naming the keys that differ."""
    lines = []
    for meta_path in sorted(Path(run_dir).glob(f"checkpoint_*/{CKPT_META}")):
        try:
            saved = json.loads(meta_path.read_text()).get("run")
        except (OSError, ValueError, AttributeError):
            continue  # an unreadable checkpoint is skipped at restore with its reason
        changes = identity_changes(saved, identity, defaults)
        if changes:
            lines.append(f"{meta_path.parent.name}: {'; '.join(changes)}")
    return lines


def write_manifest(d: str | Path, rank: int, files: list[Path]) -> None:
    """Record the size of each file `rank` wrote under `d` (paths relative to `d`)."""
    d = Path(d)
    sizes = {str(f.relative_to(d)): f.stat().st_size for f in sorted(files) if f.is_file()}
    (d / MANIFEST.format(rank=rank)).write_text(json.dumps(sizes, indent=0, sort_keys=True))


def files_under(d: str | Path) -> list[Path]:
    return [p for p in Path(d).rglob("*") if p.is_file()]


def checkpoint_problem(d: str | Path) -> str | None:
    """None when the checkpoint at `d` looks complete, else a one-line reason."""
    d = Path(d)
    if not d.is_dir():
        return f"{d} is not a directory"
    try:
        meta = json.loads((d / CKPT_META).read_text())
        step, world = int(meta["step"]), int(meta.get("world_size", 1))
    except FileNotFoundError:
        return f"{CKPT_META} is missing"
    except (ValueError, KeyError, TypeError) as e:
        return f"{CKPT_META} is unreadable ({type(e).__name__}: {e})"
    if step < 0 or world < 1:
        return f"{CKPT_META} has step={step}, world_size={world}"
    for rank in range(world):
        path = d / MANIFEST.format(rank=rank)
        try:
            sizes = json.loads(path.read_text())
        except FileNotFoundError:
            return f"{path.name} is missing (rank {rank} of {world} did not finish writing)"
        except ValueError as e:
            return f"{path.name} is unreadable ({e})"
        if not isinstance(sizes, dict):
            return f"{path.name} is not a mapping"
        for rel, size in sizes.items():
            f = d / rel
            if not f.is_file():
                return f"{rel} is missing (listed by rank {rank})"
            if f.stat().st_size != size:
                return f"{rel} has {f.stat().st_size} bytes, {size} were written (truncated or changed)"
    return None
