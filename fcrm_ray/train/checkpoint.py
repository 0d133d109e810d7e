"""Training checkpoint layout and the check that decides whether a checkpoint can be restored.

A checkpoint folder (one per `ray.train.report`) holds:

    meta.json               step, total_steps, world_size, history (rank 0)
    state.pt                model/optimizer/scheduler state (strategy `single`/`ddp`, rank 0)
    ds/state/...            DeepSpeed ZeRO shards (strategy `deepspeed`, every rank its own)
    hf/                     the final `save_pretrained` reward model (last checkpoint only)
    manifest-rank{R}.json   {relative path: size in bytes} of every file rank R wrote

Ray Train merges the ranks' folders in storage. A checkpoint is restorable when `meta.json`
parses, every rank's manifest is there and every file it lists exists with its recorded size. A
node that died mid-upload, a full disk or a hand-edited folder fails that check, and the loop
skips the checkpoint with the reason (see `loop.Trainer._restore`) instead of crashing on it in
every restart. Pure: no torch or Ray.
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
