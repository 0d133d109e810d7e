"""Crash injection for tests of `fcrm train`: with `train.fault_inject_step=K`, rank 0 dies at
optimizer step K of the first attempt, as a killed worker would, to exercise Ray Train's restart
(`scaling.max_failures`) and the resume from the last checkpoint."""

from __future__ import annotations

import os
import sys
import time

import ray.train

from fcrm_ray.train.config import TrainLoopConfig


def after_step(t: TrainLoopConfig, step: int, *, rank: int, resumed: bool) -> None:
    """Called by the training loop after each optimizer step; exits the process (`os._exit(1)`, no
    cleanup, like a SIGKILL) at `train.fault_inject_step` on rank 0, unless this attempt resumed
    from a checkpoint (the restarted run must be able to finish)."""
    if not t.fault_inject_step or step != t.fault_inject_step or resumed or rank != 0:
        return
    # Ray Train registers reported checkpoints when its controller polls the workers (every
    # RAY_TRAIN_HEALTH_CHECK_INTERVAL_S = 2 s); a crash within the same poll window as the last
    # report loses that report. Wait until the last report is committed so the test resumes from
    # it, as it would after a real crash.
    _wait_for_committed_checkpoints()
    _say(f"fault_inject_step={step}: rank 0 exits (test hook)")
    os._exit(1)


def _wait_for_committed_checkpoints(timeout_s: float = 120.0) -> None:
    try:
        ray.train.get_all_reported_checkpoints(
            consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED, timeout_s=timeout_s)
    except Exception as e:  # older Ray / timeout: fall back to waiting out a few polls
        _say(f"could not confirm committed checkpoints ({e}); waiting")
        time.sleep(3 * float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", 2.0)))


def _say(message: str) -> None:
    # as `loop.say` (not `print`, which Ray Train's workers echo twice); that module imports this one
    sys.stdout.write(f"[fcrm train] {message}\n")
    sys.stdout.flush()
