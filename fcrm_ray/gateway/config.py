"""Typed config of `fcrm gateway` (configs/gateway.yaml): the upstream OpenAI-compatible server,
how many candidates to ask for and how to pick one, the reward model that scores them, and the
same listening, auth and limit settings as `fcrm serve`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from fcrm_ray.common.ray_cluster import RayConfig
from fcrm_ray.config import ConfigError
from fcrm_ray.serve.config import IngressConfig, LimitsConfig, ModelConfig, is_loopback

RULES = ("rm", "vote", "majority", "first")
N_MODES = ("auto", "n", "parallel")


@dataclass
class UpstreamConfig:
    """The OpenAI-compatible server the candidates come from."""

    url: str = ""  # base URL with /v1, e.g. http://127.0.0.1:8001/v1
    model: str = ""  # "" = the request's `model`
    # Bearer token for the upstream: the NAME of an env var (never the secret itself; never logged).
    api_key_env: str = "FCRM_UPSTREAM_API_KEY"
    # How n candidates are asked for: "n" = one request with `n`; "parallel" = n requests of n=1
    # (servers without `n`, or for independent seeds); "auto" = `n`, topped up with parallel
    # requests when the upstream returns fewer choices than asked (it ignored `n`).
    n_mode: str = "auto"
    timeout_s: float = 60.0  # per upstream call
    connect_timeout_s: float = 5.0
    retries: int = 2  # on 429 / 5xx / connection errors, with exponential backoff
    retry_backoff_s: float = 0.5
    max_connections: int = 64

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def validate(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"config key `upstream.url`: an http(s) base URL ending in /v1 is required "
                              f"(--upstream http://127.0.0.1:PORT/v1), got {self.url!r}")
        if self.n_mode not in N_MODES:
            raise ConfigError(f"config key `upstream.n_mode`: one of {N_MODES}, got {self.n_mode!r}")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigError("config key `upstream.timeout_s` / `upstream.connect_timeout_s` must be > 0")
        if self.retries < 0 or self.retry_backoff_s < 0 or self.max_connections < 1:
            raise ConfigError("config key `upstream.retries` / `retry_backoff_s` >= 0, `max_connections` >= 1")


@dataclass
class SelectionConfig:
    """Best-of-N: how many candidates and which rule picks one (requests may override both)."""

    n: int = 4
    max_n: int = 16  # a request's `n` above this is a 422
    # rule per n (the largest key <= n applies); `rule` when set overrides it for every n.
    # Chosen on the validation pools of benchmarks/RESULTS.md (real outputs of the train-side
    # questions, shipped MiniLM recipe K4, `fcrm eval bon`): the RM pick at n = 2 (0.795), then the
    # reward-weighted vote (T = 2: 0.810 / 0.805 / 0.811 at n = 4 / 8 / 16; majority 0.805 / 0.805 /
    # 0.809; the RM pick falls to 0.721 at 16).
    rule_by_n: dict[int, str] = field(default_factory=lambda: {1: "first", 2: "rm", 4: "vote"})
    rule: str = ""
    vote_temperature: float = 2.0  # the weighted vote's T (RESULTS.md: T = 2 on validation pools)
    min_candidates: int = 1  # fewer candidates received than this -> the request fails (502)
    request_timeout_s: float = 120.0  # the whole Best-of-N request (upstream + scoring)

    def rule_for(self, n: int, requested: str | None = None) -> str:
        if requested:
            return requested
        if self.rule:
            return self.rule
        keys = [k for k in sorted(self.rule_by_n) if k <= n]
        return self.rule_by_n[keys[-1]] if keys else "first"

    def validate(self) -> None:
        if not 1 <= self.n <= self.max_n:
            raise ConfigError(f"config key `selection.n`: 1 <= n <= selection.max_n ({self.max_n}), got {self.n}")
        for k, r in self.rule_by_n.items():
            if int(k) < 1 or r not in RULES:
                raise ConfigError(f"config key `selection.rule_by_n.{k}`: n >= 1 and a rule of {RULES}, got {r!r}")
        self.rule_by_n = {int(k): v for k, v in self.rule_by_n.items()}
        if self.rule and self.rule not in RULES:
            raise ConfigError(f"config key `selection.rule`: one of {RULES} or empty, got {self.rule!r}")
        if not self.vote_temperature > 0:
            raise ConfigError("config key `selection.vote_temperature` must be > 0")
        if self.min_candidates < 1 or self.request_timeout_s <= 0:
            raise ConfigError("config key `selection.min_candidates` >= 1, `selection.request_timeout_s` > 0")


@dataclass
class GatewayConfig:
    """`fcrm gateway` config; see configs/gateway.yaml."""

    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="fcrm-rm"))  # the reward model
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "fcrm-gateway"
    route_prefix: str = "/"
    auth_token: str = ""  # as `fcrm serve`: prefer the env var
    auth_token_env: str = "FCRM_GATEWAY_TOKEN"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    blocking: bool = True

    def resolved_token(self) -> str:
        if self.auth_token:
            return self.auth_token
        return os.environ.get(self.auth_token_env, "") if self.auth_token_env else ""

    def validate(self) -> None:
        self.model.name = self.model.name or "fcrm-rm"
        self.model.validate("model.")
        if not (0 < self.port < 65536):
            raise ConfigError(f"config key `port`: 1..65535, got {self.port}")
        if not self.route_prefix.startswith("/"):
            raise ConfigError("config key `route_prefix` must start with /")
        if not is_loopback(self.host) and not self.resolved_token():
            raise ConfigError(f"config key `auth_token`: binding `host`={self.host!r} (not loopback) requires a "
                              f"bearer token; set auth_token or export {self.auth_token_env or 'FCRM_GATEWAY_TOKEN'}")
