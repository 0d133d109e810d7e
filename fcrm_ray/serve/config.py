"""Typed config of `fcrm serve`: which reward models, how they batch and scale, where and how
the HTTP endpoint listens, and the request limits that keep the service up under bad input.

Loaded with `fcrm_ray.config.load_config(ServeConfig, yaml, overrides)`. Safe by default: the
proxy binds to 127.0.0.1; binding anywhere else without an auth token is a `ConfigError`. "Anywhere
else" is every host that is not a loopback address or `localhost`: an empty host, `0.0.0.0`, `::`,
a hostname or an interface address all bind beyond loopback (Ray Serve binds 0.0.0.0 for "").
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import ClassVar

from fcrm_ray.common.ray_cluster import RayConfig
from fcrm_ray.common.scorer import ScorerConfig
from fcrm_ray.config import ConfigError


@dataclass
class AutoscalingConfig:
    """Serve's `autoscaling_config` for one model deployment (replicas scale on ongoing requests)."""

    min_replicas: int = 1
    max_replicas: int = 1
    # Ongoing requests per replica the autoscaler aims for. With batching a replica is only busy
    # when it holds about one batch, so this is sized from the batch, not Serve's default of 2.
    target_ongoing_requests: float = 0.0  # 0 = batch_size (one full batch in flight)
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
class ModelConfig(ScorerConfig):
    """One reward model = one batched Serve deployment: the scorer's settings (`path`, `max_length`,
    `device`, ... as in every scoring stage) plus how it batches and scales."""

    name: str = ""  # set from the key under `models:`; the `model` field of requests
    # Candidates per forward pass: the cap of a dynamic batch. An idle replica that gets a
    # candidate waits `batch_wait_timeout_s` for company before its forward; under load the next
    # batch is whatever queued during the previous forward (no wait).
    batch_size: int = 32
    batch_wait_timeout_s: float = 0.01
    # Requests (candidates) a replica accepts at once; must cover at least one full batch or the
    # batch queue never fills. 0 = 2 * batch_size (one batch running, one filling).
    max_ongoing_requests: int = 0
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    ray_actor_options: ActorOptions = field(default_factory=ActorOptions)

    def effective_max_ongoing_requests(self) -> int:
        return self.max_ongoing_requests or 2 * self.batch_size

    def effective_target_ongoing(self) -> float:
        return self.autoscaling.target_ongoing_requests or float(self.batch_size)

    def validate(self, prefix: str = "") -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"config key `models.{self.name}`: model names use letters, digits, - and _ only")
        if not self.path:
            raise ConfigError(f"config key `models.{self.name}.path` is required (a trained reward-model folder)")
        super().validate(prefix or f"models.{self.name}.")
        if self.batch_wait_timeout_s < 0:
            raise ConfigError(f"config key `models.{self.name}.batch_wait_timeout_s` must be >= 0")
        if self.device.startswith("cuda") and self.ray_actor_options.num_gpus <= 0:
            raise ConfigError(f"config key `models.{self.name}.ray_actor_options.num_gpus` must be > 0 when device=cuda")
        if self.max_ongoing_requests and self.max_ongoing_requests < self.batch_size:
            raise ConfigError(f"config key `models.{self.name}.max_ongoing_requests` ({self.max_ongoing_requests}) "
                              f"must be >= batch_size ({self.batch_size}) or batches never fill")


@dataclass
class LimitsConfig:
    """Request limits enforced by the ingress before any model work (413/422 otherwise)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_candidates_per_item: int = 64
    max_items_per_request: int = 64
    max_queries_per_request: int = 256  # /get_reward
    request_timeout_s: float = 60.0  # Serve's end-to-end HTTP timeout
    # Shape limits checked on the parsed body before validation, so nothing downstream recurses
    # or loops over a hostile value: nesting depth, any string, and names (object keys and
    # `name` values: tool, function, parameter names). A 3 MB tool name used to cost 1.8 s of
    # rendering and slowed every other request.
    max_json_depth: int = 48
    max_string_chars: int = 262144
    max_name_chars: int = 256
    # A model replica that dies mid-request: the ingress retries the call this many times (Serve
    # routes the retry to a live replica) before answering 503 + Retry-After.
    model_retries: int = 3
    model_retry_backoff_s: float = 0.2
    health_timeout_s: float = 2.0  # /healthz: how long a model deployment may take to answer

    def validate(self) -> None:
        for k in ("max_body_bytes", "max_candidates_per_item", "max_items_per_request", "max_queries_per_request",
                  "max_json_depth", "max_string_chars", "max_name_chars"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key `limits.{k}` must be >= 1")
        if self.request_timeout_s <= 0 or self.health_timeout_s <= 0:
            raise ConfigError("config key `limits.request_timeout_s` / `limits.health_timeout_s` must be > 0")
        if self.model_retries < 0 or self.model_retry_backoff_s < 0:
            raise ConfigError("config key `limits.model_retries` / `limits.model_retry_backoff_s` must be >= 0")


REWARD_MODES = ("rm", "verifier", "mix")
UNSCORED_RULES = ("penalty", "raw_text")


@dataclass
class RewardConfig:
    """How a response's rewards are made from the model's scores (and the verifier's verdicts).

    Unscorable candidates (empty, or longer than max_length; on /get_reward also a query that
    failed to render, flagged `error` too) get `unscorable_reward`, flagged `unscorable`:
      - "auto" (default): the reward model's own provable lower bound minus `unscorable_margin`.
        A linear head over a bounded representation cannot go below -(bound): BERT-style heads
        read a tanh pooler (|h_i| < 1, so r > -(|w|_1 + |b|)); heads over a final RMSNorm or
        LayerNorm read u * gamma (+ beta) with |u|_2 <= sqrt(d), so
        r >= -(sqrt(d) |w * gamma|_2 + |w . beta| + |b|).
        So "auto" is strictly below every reward any scorable input can get, whatever the input.
        (Heads we cannot bound fall back to -100.) The bound is reported in `GET /v1/models`.
      - a number: that penalty.
    Either way the value is also capped at (lowest scorable reward in the same response) -
    `unscorable_margin`, so within one response (an RL step's batch, a Best-of-N pool) an
    unscorable candidate always ranks last.
    """

    mode: str = "rm"  # rm | verifier | mix (see `combine` in serve/app.py)
    unscorable_reward: str = "auto"  # "auto" or a number
    unscorable_margin: float = 1.0
    # /get_reward queries whose prompt has no parsable tool catalog or whose response holds no call:
    # "penalty" = unscorable_reward (flagged), "raw_text" = the raw prompt/completion text scored
    # as before (off the training distribution; flagged too).
    unparsed: str = "penalty"
    chat_family: str = "auto"  # the policy's chat-template family for parsing rendered text
    # mode=mix: reward = rm + verifier_weight * (+1 correct / -1 wrong); mode=verifier: +1 / -1.
    verifier_weight: float = 2.0

    def floor_value(self) -> float | None:
        """The configured penalty, or None for "auto"."""
        return None if self.unscorable_reward == "auto" else float(self.unscorable_reward)

    def validate(self) -> None:
        if self.mode not in REWARD_MODES:
            raise ConfigError(f"config key `reward.mode`: one of {REWARD_MODES}, got {self.mode!r}")
        if self.unparsed not in UNSCORED_RULES:
            raise ConfigError(f"config key `reward.unparsed`: one of {UNSCORED_RULES}, got {self.unparsed!r}")
        if self.unscorable_reward != "auto":
            try:
                v = float(self.unscorable_reward)
            except ValueError:
                raise ConfigError(f"config key `reward.unscorable_reward`: \"auto\" or a number, got "
                                  f"{self.unscorable_reward!r}") from None
            if v != v or v in (float("inf"), float("-inf")):
                raise ConfigError("config key `reward.unscorable_reward` must be finite")
        if not self.unscorable_margin > 0:
            raise ConfigError("config key `reward.unscorable_margin` must be > 0")
        if self.verifier_weight < 0:
            raise ConfigError("config key `reward.verifier_weight` must be >= 0")
        from fcrm_ray.toolcall.chat_parse import ChatParseError, canonical_family

        try:
            canonical_family(self.chat_family)
        except ChatParseError as e:
            raise ConfigError(f"config key `reward.chat_family`: {e}") from None


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
    reward: RewardConfig = field(default_factory=RewardConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    blocking: bool = True  # `fcrm serve` keeps running until Ctrl-C

    RENAMED: ClassVar[dict[str, str]] = {
        "ray_address": "`ray.address`",
        "models.*.max_batch_size": "`models.<name>.batch_size` (candidates per forward pass, as in every scoring stage)",
    }

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
    """True only for hosts that bind loopback alone. "" is not: Ray Serve (uvicorn) binds an
    empty host on every interface. Hostnames other than `localhost` may resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
