"""Typed config of `fcrm filter`: input corpus, scoring backend, keep policy, output, Ray.

Loaded with `fcrm_ray.config.load_config(FilterConfig, yaml, overrides)`; see configs/filter.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    backend: str = "actor"  # actor: model in an in-job actor pool; serve: a running `fcrm serve`
    model_path: str = ""  # actor backend: reward-model folder
    batch_size: int = 64  # units per map_batches call = per forward pass (bounds memory)
    max_length: int | None = None  # None = the model's training max_length (its train_config.yaml)
    device: str = "cpu"
    dtype: str = "float32"
    autocast: str = "auto"  # bf16 autocast only where the device runs it natively (fcrm_ray/hardware.py)
    num_actors: int = 1  # actor pool size (one model copy each)
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    serve_url: str = ""  # serve backend: http://127.0.0.1:8000 (HTTP via fcrm_ray.serve.client)
    serve_app: str = "fcrm-rm"  # serve backend without serve_url: DeploymentHandle of this app
    serve_model: str = ""  # model name on the service ("" = its default)
    serve_token_env: str = "FCRM_SERVE_TOKEN"
    serve_concurrency: int = 2  # parallel request streams to the service

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key `scoring.backend`: one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "actor" and not self.model_path:
            raise ConfigError("config key `scoring.model_path` is required with scoring.backend=actor")
        if self.batch_size < 1 or self.num_actors < 1 or self.serve_concurrency < 1:
            raise ConfigError("config key `scoring.batch_size`/`num_actors`/`serve_concurrency` must be >= 1")
        if self.device.startswith("cuda") and self.num_gpus_per_actor <= 0:
            raise ConfigError("config key `scoring.num_gpus_per_actor` must be > 0 when scoring.device=cuda")


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
    dir: str = ""
    histogram: bool = True

    def validate(self) -> None:
        if not self.dir:
            raise ConfigError("config key `output.dir` is required")


@dataclass
class FilterConfig:
    input: InputConfig = field(default_factory=InputConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ray_address: str = ""  # "" = local Ray (or the job's cluster inside `ray job submit`)
    ray_num_cpus: int = 0  # local Ray only; 0 = all
