"""Typed config of `fcrm serve`: which reward models, how they batch and scale, where and how
the HTTP endpoint listens, and the request limits that keep the service up under bad input.

Loaded with `fcrm_ray.config.load_config(ServeConfig, yaml, overrides)`. Safe by default: the
proxy binds to 127.0.0.1; binding anywhere else without an auth token is a `ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from fcrm_ray.config import ConfigError

_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class AutoscalingConfig:
    """Serve's `autoscaling_config` for one model deployment (replicas scale on ongoing requests)."""

    min_replicas: int = 1
    max_replicas: int = 1
    # Ongoing requests per replica the autoscaler aims for. With batching a replica is only busy
    # when it holds about one batch, so this is sized from the batch, not Serve's default of 2.
    target_ongoing_requests: float = 0.0  # 0 = max_batch_size (one full batch in flight)
    upscale_delay_s: float = 10.0
    downscale_delay_s: float = 120.0

    def validate(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ConfigError("config key `models.*.autoscaling`: need 0 <= min_replicas <= max_replicas, max_replicas >= 1")
        if self.target_ongoing_requests < 0:
            raise ConfigError("config key `models.*.autoscaling.target_ongoing_requests` must be >= 0")


@dataclass
class ActorOptions:
    """Per-replica resources (Serve's `ray_actor_options`)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def validate(self) -> None:
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError("config key `models.*.ray_actor_options`: num_cpus/num_gpus must be >= 0")


@dataclass
class ModelConfig:
    """One reward model = one batched Serve deployment."""

    name: str = ""  # set from the key under `models:`; the `model` field of requests
    path: str = ""  # a trained RM folder (`fcrm train` output) or `pkg:...`
    max_batch_size: int = 32  # candidates per forward pass (@serve.batch)
    batch_wait_timeout_s: float = 0.01  # how long a partial batch waits for more candidates
    max_length: int = 512  # tokens per prompt+candidate (prompt side truncated from the left)
    device: str = "cpu"  # cpu | cuda
    dtype: str = "float32"
    trust_remote_code: bool = False
    # Requests (candidates) a replica accepts at once; must cover at least one full batch or the
    # batch queue never fills. 0 = 2 * max_batch_size (one batch running, one filling).
    max_ongoing_requests: int = 0
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    ray_actor_options: ActorOptions = field(default_factory=ActorOptions)

    def effective_max_ongoing_requests(self) -> int:
        return self.max_ongoing_requests or 2 * self.max_batch_size

    def effective_target_ongoing(self) -> float:
        return self.autoscaling.target_ongoing_requests or float(self.max_batch_size)

    def validate(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"config key `models.{self.name}`: model names use letters, digits, - and _ only")
        if not self.path:
            raise ConfigError(f"config key `models.{self.name}.path` is required (a trained reward-model folder)")
        if self.max_batch_size < 1:
            raise ConfigError(f"config key `models.{self.name}.max_batch_size` must be >= 1")
        if self.batch_wait_timeout_s < 0:
            raise ConfigError(f"config key `models.{self.name}.batch_wait_timeout_s` must be >= 0")
        if self.max_length < 16:
            raise ConfigError(f"config key `models.{self.name}.max_length` must be >= 16")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"config key `models.{self.name}.dtype`: one of {_DTYPES}, got {self.dtype!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"config key `models.{self.name}.device`: cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and self.ray_actor_options.num_gpus <= 0:
            raise ConfigError(f"config key `models.{self.name}.ray_actor_options.num_gpus` must be > 0 when device=cuda")
        if self.max_ongoing_requests and self.max_ongoing_requests < self.max_batch_size:
            raise ConfigError(f"config key `models.{self.name}.max_ongoing_requests` ({self.max_ongoing_requests}) "
                              f"must be >= max_batch_size ({self.max_batch_size}) or batches never fill")


@dataclass
class LimitsConfig:
    """Request limits enforced by the ingress before any model work (413/422 otherwise)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_candidates_per_item: int = 64
    max_items_per_request: int = 64
    max_queries_per_request: int = 256  # /get_reward
    request_timeout_s: float = 60.0  # Serve's end-to-end HTTP timeout

    def validate(self) -> None:
        for k in ("max_body_bytes", "max_candidates_per_item", "max_items_per_request", "max_queries_per_request"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key `limits.{k}` must be >= 1")
        if self.request_timeout_s <= 0:
            raise ConfigError("config key `limits.request_timeout_s` must be > 0")


@dataclass
class IngressConfig:
    """The FastAPI ingress deployment (parsing, validation, auth, fan-out to model deployments)."""

    num_replicas: int = 1
    num_cpus: float = 0.25  # mostly waiting on model replicas
    max_ongoing_requests: int = 256

    def validate(self) -> None:
        if self.num_replicas < 1 or self.max_ongoing_requests < 1 or self.num_cpus < 0:
            raise ConfigError("config key `ingress`: num_replicas/max_ongoing_requests >= 1, num_cpus >= 0")


@dataclass
class ServeConfig:
    """`fcrm serve` config; see configs/serve.yaml."""

    # name -> model; a mapping (not a list) so one key overrides one model: models.fcrm-rm.path=...
    models: dict[str, ModelConfig] = field(default_factory=dict)
    default_model: str = ""  # model used when a request names none; "" = the first
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "fcrm-rm"
    route_prefix: str = "/"
    # Bearer token: the literal value, or the name of an env var holding it (preferred: keeps the
    # secret out of YAML and out of `serve deploy` configs).
    auth_token: str = ""
    auth_token_env: str = "FCRM_SERVE_TOKEN"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    ray_address: str = ""  # "" = start/attach local Ray; "auto" = existing cluster
    blocking: bool = True  # `fcrm serve` keeps running until Ctrl-C

    def resolved_token(self) -> str:
        """The configured bearer token ("" = auth off)."""
        if self.auth_token:
            return self.auth_token
        return os.environ.get(self.auth_token_env, "") if self.auth_token_env else ""

    def model(self, name: str | None) -> ModelConfig | None:
        name = name or self.default_model or next(iter(self.models), "")
        return self.models.get(name)

    def validate(self) -> None:
        if not self.models:
            raise ConfigError("config key `models` must name at least one reward model (models.<name>.path=...)")
        names = list(self.models)
        for key, m in self.models.items():
            m.name = key
            m.validate()  # load_config only recurses into dataclass fields, not into mappings
        if self.default_model and self.default_model not in names:
            raise ConfigError(f"config key `default_model`: {self.default_model!r} is not one of {names}")
        if not (0 < self.port < 65536):
            raise ConfigError(f"config key `port`: 1..65535, got {self.port}")
        if not self.route_prefix.startswith("/"):
            raise ConfigError("config key `route_prefix` must start with /")
        if not is_loopback(self.host) and not self.resolved_token():
            raise ConfigError(
                f"config key `auth_token`: binding `host`={self.host!r} (not loopback) requires a bearer token; "
                f"set auth_token or export {self.auth_token_env or 'FCRM_SERVE_TOKEN'}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
