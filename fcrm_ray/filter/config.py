"""Typed config of `fcrm filter`: input corpus, the reward model (`model`) and how it is reached
(`scoring`: an in-job actor pool, `actors`, or a running `fcrm serve`), keep policy, output, Ray.

Loaded with `fcrm_ray.config.load_config(FilterConfig, yaml, overrides)`; see configs/filter.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fcrm_ray.common.ray_cluster import ActorPoolConfig, RayConfig
from fcrm_ray.common.scorer import ScorerConfig
from fcrm_ray.config import ConfigError
from fcrm_ray.data.sources import FORMATS as ROW_FORMATS

FORMATS = ("auto", *ROW_FORMATS)  # "auto" = sniffed per row
BACKENDS = ("actor", "serve")
POLICIES = ("threshold", "top_fraction", "per_source_top_fraction")


@dataclass
class InputConfig:
    path: str = ""  # Parquet/JSONL file or directory of them
    format: str = "auto"  # auto: per row by its keys (fcrm_ray.data.sources.sniff_format)
    source: str = ""  # `source` of rows without one ("" = the file name's stem)
    shard_rows: int = 2000  # rows per deterministic input shard (the unit of resume and of memory)
    limit: int = 0  # first N rows only (0 = all); smoke runs

    def validate(self) -> None:
        if not self.path:
            raise ConfigError("config key `input.path` is required")
        if self.format not in FORMATS:
            raise ConfigError(f"config key `input.format`: one of {FORMATS}, got {self.format!r}")
        if self.shard_rows < 1 or self.limit < 0:
            raise ConfigError("config key `input.shard_rows` must be >= 1 and `input.limit` >= 0")


@dataclass
class ScoringConfig:
    """Where the scores come from: `actor` = the `model` in an in-job actor pool (`actors`);
    `serve` = a running `fcrm serve` (the model is whatever it serves)."""

    backend: str = "actor"
    serve_url: str = ""  # serve backend: http://127.0.0.1:8000 (HTTP via fcrm_ray.serve.client)
    serve_app: str = "fcrm-rm"  # serve backend without serve_url: DeploymentHandle of this app
    serve_model: str = ""  # model name on the service ("" = its default)
    serve_token_env: str = "FCRM_SERVE_TOKEN"
    serve_concurrency: int = 2  # parallel request streams to the service

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key `scoring.backend`: one of {BACKENDS}, got {self.backend!r}")
        if self.serve_concurrency < 1:
            raise ConfigError("config key `scoring.serve_concurrency` must be >= 1")


@dataclass
class PolicyConfig:
    """threshold: keep reward >= threshold. top_fraction: keep the best `fraction` of all units.
    per_source_top_fraction: keep the best `fraction` of each source."""

    kind: str = "top_fraction"
    threshold: float = 0.0
    fraction: float = 0.5
    sketch_size: int = 200_000  # reservoir per source; quantiles are exact up to this many units

    def validate(self) -> None:
        if self.kind not in POLICIES:
            raise ConfigError(f"config key `policy.kind`: one of {POLICIES}, got {self.kind!r}")
        if not (0.0 < self.fraction <= 1.0):
            raise ConfigError(f"config key `policy.fraction` must be in (0, 1], got {self.fraction}")
        if self.sketch_size < 100:
            raise ConfigError("config key `policy.sketch_size` must be >= 100")


@dataclass
class OutputConfig:
    histogram: bool = True  # reward histogram (PNG) beside the output


@dataclass
class FilterConfig:
    input: InputConfig = field(default_factory=InputConfig)
    model: ScorerConfig = field(default_factory=lambda: ScorerConfig(batch_size=64))
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    out: str = ""  # kept/, dropped/, quarantine/, manifest.json (--out)
    output: OutputConfig = field(default_factory=OutputConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    RENAMED: ClassVar[dict[str, str]] = {
        "scoring.model_path": "`model.path` (the scoring model's key in every stage)",
        **{f"scoring.{k}": f"`model.{k}`" for k in ("batch_size", "max_length", "device", "dtype", "autocast")},
        **{f"scoring.{k}": f"`actors.{k}`" for k in ("num_actors", "num_cpus_per_actor", "num_gpus_per_actor")},
        "output.dir": "`out` (--out), the one output key of every stage",
        "ray_address": "`ray.address`",
        "ray_num_cpus": "`ray.num_cpus`",
    }

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("config key `out` is required (--out DIR)")
        if self.scoring.backend == "actor":
            if not self.model.path:
                raise ConfigError("config key `model.path` is required with scoring.backend=actor")
            if self.model.device.startswith("cuda") and self.actors.num_gpus_per_actor <= 0:
                raise ConfigError("config key `actors.num_gpus_per_actor` must be > 0 when model.device=cuda")
