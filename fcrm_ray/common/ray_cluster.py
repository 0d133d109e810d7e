"""`RayConfig` (the key `ray` of every stage) and `ray_init`, the one place a stage connects to or
starts Ray; `ActorPoolConfig` (the key `actors`): the Ray Data actor pool that holds the scorers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fcrm_ray.config import ConfigError


@dataclass
class RayConfig:
    # "" = the job's cluster inside `ray job submit` (RAY_ADDRESS), else a new local Ray;
    # "auto" = an existing cluster on this machine; "local" = always a new local Ray; ray://... or host:port
    address: str = ""
    num_cpus: int = 0  # a Ray this stage starts itself only; 0 = all CPUs
    runtime_env: dict[str, Any] = field(default_factory=dict)  # passed to ray.init as-is

    def validate(self) -> None:
        if self.num_cpus < 0:
            raise ConfigError(f"config key `ray.num_cpus` must be >= 0, got {self.num_cpus}")

    def starts_local(self) -> bool:
        """Whether `ray_init` would start a new local Ray (rather than join a cluster)."""
        return self.address == "local" or (not self.address and not os.environ.get("RAY_ADDRESS"))


@dataclass
class ActorPoolConfig:
    num_actors: int = 1  # scorer actors (one model copy each)
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    batch_size: int = 64  # rows per map_batches call (each actor scores them `model.batch_size` at a time)

    def validate(self) -> None:
        if self.num_actors < 1 or self.batch_size < 1:
            raise ConfigError("config keys `actors.num_actors` / `actors.batch_size` must be >= 1")
        if self.num_cpus_per_actor < 0 or self.num_gpus_per_actor < 0:
            raise ConfigError("config keys `actors.num_cpus_per_actor` / `actors.num_gpus_per_actor` must be >= 0")


def ray_init(cfg: RayConfig, dashboard: bool | None = False, **kwargs: Any) -> bool:
    """Connect to (or start) Ray as `cfg` says, unless this process already did; True if this call
    initialised it. `dashboard` applies to a Ray started here (None = Ray's default); `kwargs` go
    to `ray.init`."""
    import ray  # here, not at the top: stage configs embed RayConfig and `fcrm cluster check` reads them without Ray

    if ray.is_initialized():
        return False
    kw = dict(kwargs)
    if cfg.address:
        kw["address"] = cfg.address
    if cfg.starts_local():
        if dashboard is not None:
            kw.setdefault("include_dashboard", dashboard)
        if cfg.num_cpus:
            kw["num_cpus"] = cfg.num_cpus
    if cfg.runtime_env:
        kw["runtime_env"] = dict(cfg.runtime_env)
    ray.init(**kw)
    return True
