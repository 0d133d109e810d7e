"""Typed configs of the evaluations (`fcrm eval pairwise / robustness / bon`), apart from the code
that runs them, so that reading a config (`fcrm cluster check`, `fcrm pipeline`) imports neither
Ray nor torch. Every scoring model is a `common.scorer.ScorerConfig` under the key `model`; the
Ray connection is `ray`, the scoring actor pool `actors`, as in every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fcrm_ray.common.ray_cluster import ActorPoolConfig, RayConfig
from fcrm_ray.common.scorer import ScorerConfig
from fcrm_ray.config import ConfigError
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.evaluate.perturb import PERTURBATIONS
from fcrm_ray.paths import BFCL_NON_LIVE

SCORERS = ("rm", "vllm_judge")
BACKENDS = ("local", "ray")


@dataclass
class JudgeConfig:
    """`scorer=vllm_judge`: vLLM engine and sampling settings of the judge (GPU, or vLLM's CPU build)."""

    tensor_parallel_size: int = 1
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    top_logprobs: int = 20
    max_tokens: int = 4
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false}


@dataclass
class PairwiseConfig:
    # The reward model (or, with scorer=vllm_judge, the judge LLM) and its scoring settings: the
    # same `model.*` keys as every scoring stage. `--model` sets model.path; repeated, the further
    # ones go to `compare`.
    model: ScorerConfig = field(default_factory=ScorerConfig)
    compare: list[str] = field(default_factory=list)  # more model folders, scored the same way, side by side
    data: str = ""  # pair file or folder (Parquet/JSONL)
    out: str = ""
    split: str = "test"  # "" = every row
    scorer: str = "rm"  # rm | vllm_judge
    backend: str = "local"  # local | ray  (rm scorer)
    max_rows: int = 0  # 0 = all; else a stable pseudo-random subset of this size
    n_boot: int = 1000
    seed: int = 0
    quarantine: str = ""  # default <out>/quarantine.jsonl
    plots: bool = True
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)  # backend=ray: one scoring pool per model
    ray: RayConfig = field(default_factory=RayConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    RENAMED: ClassVar[dict[str, str]] = {
        **{k: f"`model.{k}` (the scoring model's settings, as in every scoring stage)"
           for k in ("batch_size", "max_length", "device", "dtype", "autocast", "trust_remote_code")},
        **{f"ray.{k}": f"`actors.{k}` (`ray` is the Ray connection in every stage)"
           for k in ("num_actors", "batch_size", "num_cpus_per_actor", "num_gpus_per_actor")},
    }
    RESHAPED: ClassVar[dict[str, str]] = {
        "model": "`model` is the scoring model's section now: `model.path` (--model) for one model, `compare` for more",
    }

    def validate(self) -> None:
        if self.scorer not in SCORERS:
            raise ConfigError(f"config key `scorer`: expected one of {SCORERS}, got {self.scorer!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key `backend`: expected one of {BACKENDS}, got {self.backend!r}")
        if self.max_rows < 0 or self.n_boot < 0:
            raise ConfigError("config keys `max_rows`/`n_boot` must be >= 0")


@dataclass
class RobustnessConfig(PairwiseConfig):
    perturbations: list[str] = field(default_factory=lambda: list(PERTURBATIONS))
    distractors: int = 3  # extra tools per catalog for the `distractors` perturbation
    perturb_seed: int = 0

    def validate(self) -> None:
        super().validate()
        bad = [p for p in self.perturbations if p not in PERTURBATIONS]
        if bad or not self.perturbations:
            raise ConfigError(f"config key `perturbations`: expected a non-empty subset of {PERTURBATIONS}, got {bad or '[]'}")
        if self.distractors < 1:
            raise ConfigError("config key `distractors` must be >= 1")


POOL_BACKENDS = ("mutation", "hf", "vllm")
@dataclass
class PoolsConfig:
    """`--build-pools`: where examples come from and how candidates are made."""

    backend: str = "mutation"  # mutation | hf | vllm
    categories: list[str] = field(default_factory=lambda: list(BFCL_NON_LIVE))
    data_dir: str = ""  # BFCL data folder; default: the installed bfcl-eval wheel
    max_examples: int = 100  # total, spread evenly over categories (0 = all)
    pool_size: int = 8
    correct_fraction: float = 0.25  # mutation: P(a slot is correct)
    seed: int = 0
    # hf / vllm generation
    model: str = ""  # local causal LM folder; `tiny:qwen3` builds a tiny random one (hf smoke runs)
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 128
    device: str = "cpu"
    dtype: str = "float32"
    work_dir: str = ""  # where `tiny:qwen3` is built; default next to --out
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    tensor_parallel_size: int = 1  # vllm
    max_model_len: int = 8192  # vllm

    def validate(self) -> None:
        if self.backend not in POOL_BACKENDS:
            raise ConfigError(f"config key `pools.backend`: expected one of {POOL_BACKENDS}, got {self.backend!r}")
        if self.pool_size < 1:
            raise ConfigError("config key `pools.pool_size` must be >= 1")
        if not 0.0 <= self.correct_fraction <= 1.0:
            raise ConfigError("config key `pools.correct_fraction` must be in [0, 1]")
        if self.backend in ("hf", "vllm") and not self.model:
            raise ConfigError(f"config key `pools.model` is required with pools.backend={self.backend}")


@dataclass
class BonConfig:
    model: ScorerConfig = field(default_factory=ScorerConfig)  # the reward model (--model sets model.path)
    candidates: str = ""  # pool file or folder
    out: str = ""
    ns: list[int] = field(default_factory=lambda: list(M.BON_NS))
    max_pools: int = 0  # 0 = all
    n_boot: int = 1000
    seed: int = 0
    # vote_sum weights exp((reward - top) / vote_temperature): 1 = Bradley-Terry strengths,
    # larger = flatter (towards majority vote with reward tie-breaks); 2 chosen on the validation
    # pools (pools_real_validation.jsonl, benchmarks/RESULTS.md)
    vote_temperature: float = 2.0
    quarantine: str = ""  # default <out>/quarantine.jsonl
    pools: PoolsConfig = field(default_factory=PoolsConfig)

    RENAMED: ClassVar[dict[str, str]] = {
        k: f"`model.{k}` (the scoring model's settings, as in every scoring stage)"
        for k in ("batch_size", "max_length", "device", "dtype", "autocast", "trust_remote_code")}
    RESHAPED: ClassVar[dict[str, str]] = {"model": "`model` is the scoring model's section now: `model.path` (--model)"}

    def validate(self) -> None:
        if not self.ns or any(n < 1 for n in self.ns):
            raise ConfigError("config key `ns` must be a non-empty list of n >= 1")
        if self.max_pools < 0 or self.n_boot < 0:
            raise ConfigError("config keys `max_pools` >= 0, `n_boot` >= 0")
        if not self.vote_temperature > 0:
            raise ConfigError(f"config key `vote_temperature` must be > 0, got {self.vote_temperature!r}")
