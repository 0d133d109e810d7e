"""`RayConfig` (the key `ray` of every stage) and `ray_init`, the one place a stage connects to or
starts Ray; `ActorPoolConfig` (the key `actors`): the Ray Data actor pool that holds the scorers."""

from __future__ import annotations

import logging
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
    runtime_env: dict[str, Any] = field(default_factory=dict)  # passed to ray.init (+ the State API address, below)

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
    initialised it. `dashboard` applies to a Ray started here (None = Ray's default); the State
    API is served by the dashboard, so a stage whose Ray libraries query it (Ray Train) needs it on.
    `kwargs` go to `ray.init`."""
    import ray  # here, not at the top: stage configs embed RayConfig and `fcrm cluster check` reads them without Ray

    if ray.is_initialized():
        return False
    hide_notices()
    kw = dict(kwargs)
    if cfg.address:
        kw["address"] = cfg.address
    runtime_env = dict(cfg.runtime_env)
    if not _job_sets_setup_hook():  # a user's own hook wins (Ray refuses two)
        runtime_env.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
    if cfg.starts_local():
        if dashboard is not None:
            kw.setdefault("include_dashboard", dashboard)
        if cfg.num_cpus:
            kw["num_cpus"] = cfg.num_cpus
        if dashboard is not False:
            runtime_env = _with_state_api_address(runtime_env, kw)
    if runtime_env:
        kw["runtime_env"] = runtime_env
    ray.init(**kw)
    return True


def _with_state_api_address(runtime_env: dict[str, Any], init_kw: dict[str, Any]) -> dict[str, Any]:
    """`runtime_env` telling this Ray's workers where its dashboard (the State API) listens.

    Ray's own actors (Ray Train's PlacementGroupCleaner) call the State API without an address,
    and a worker of a local Ray has no RAY_ADDRESS: Ray then scans the machine for GCS processes
    and raises "Found multiple active Ray instances" as soon as a second Ray runs here (another
    stage, `fcrm serve`, a test), which killed the cleaner with a traceback."""
    import socket

    port = init_kw.get("dashboard_port")
    if port is None:
        with socket.socket() as s:  # chosen here, not by Ray, because the workers' env must name it before ray.init
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        init_kw["dashboard_port"] = port
    host = init_kw.get("dashboard_host", "127.0.0.1")
    env_vars = {"RAY_API_SERVER_ADDRESS": f"http://{host}:{port}", **runtime_env.get("env_vars", {})}
    return {**runtime_env, "env_vars": env_vars}


# Start-up notices of Ray libraries that no user can act on, dropped by a filter on the logger that
# emits them (logger name -> message prefix); any other record of those loggers still shows.
# - Ray (2.59+) turns token authentication on for every new local cluster and says so at WARNING on
#   each start; the only action it names is opting out (RAY_AUTH_MODE=disabled), which leaves the
#   local Ray's ports open (`fcrm serve` warns about that). Setting RAY_AUTH_MODE=token would say the
#   same silently, but Ray reads it when it is imported, before any stage reaches `ray_init`. Ray's
#   other auth messages (auth off, a token generated) still show.
# - Ray LLM (`ray.data.llm`, the vLLM generator) logs at INFO, with its own console handler, that no
#   cloud mirror is configured (models here are local folders by design), in the driver and again in
#   the engine stage's workers, where it also says it is "Downloading model and tokenizer." (a local
#   folder: nothing is downloaded), that it exports vLLM metrics to Ray's Prometheus endpoint, its
#   queue size, and one line per batch with its time (its advice on batch sizes still shows).
#   Ray LLM's own `ray.init(ignore_reinit_error=True)` makes Ray say at INFO that init was called
#   twice. In workers, `fcrm_ray.vllm_engine.quiet_vllm_imports` (Ray's worker setup hook) applies
#   this table.
_NOTICES = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled for this Ray cluster",),
    "ray.llm.ray.llm._internal.common.utils.download_utils": ("No cloud storage mirror configured",),  # Ray LLM's get_logger
    "ray.llm._internal.batch.stages.vllm_engine_stage": ("Downloading model and tokenizer.",
                                                         "Enabling Ray metrics export for vLLM engine.",
                                                         "Max pending requests is set to",
                                                         "[vLLM] Elapsed time for batch"),
    "ray._private.worker": ("Calling ray.init() again after it has already been called.",),
}


def _not_a_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_NOTICES.get(record.name, ()))


WORKER_SETUP_HOOK = "fcrm_ray.common.ray_cluster.quiet_worker"


def _job_sets_setup_hook() -> bool:
    """Whether the `ray job submit` runtime_env this driver runs under names a worker setup hook
    (Ray merges it with ray.init's and refuses the same field twice)."""
    import json

    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return "worker_process_setup_hook" in (job.get("runtime_env") or {})


def quiet_worker() -> None:
    """Ray's worker setup hook for the jobs `ray_init` starts or joins (Ray runs job-level hooks
    only; an actor's own runtime_env cannot carry one): the `_NOTICES` filter, and vLLM's log level
    applied before its modules are imported (`fcrm_ray.vllm_engine.quiet_vllm_imports`)."""
    from fcrm_ray.vllm_engine import quiet_vllm_imports

    hide_notices()
    quiet_vllm_imports()


def hide_notices() -> None:
    """Drop the `_NOTICES` records in this process (the rest of those loggers' records still show)."""
    for name in _NOTICES:
        logger = logging.getLogger(name)
        if _not_a_notice not in logger.filters:
            logger.addFilter(_not_a_notice)
