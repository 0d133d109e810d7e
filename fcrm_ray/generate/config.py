"""Typed config of `fcrm generate`: sources, splits, obfuscation, generators, dedup, output, Ray.

Loaded with `fcrm_ray.config.load_config(GenerateConfig, yaml, overrides)`; every bad value is
rejected here, naming its key, before a Ray cluster starts. One YAML per setting lives in
`configs/generate/` (`cpu.yaml`: mutation + a tiny transformers model; `gpu.yaml`: vLLM models).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fcrm_ray.common.ray_cluster import RayConfig
from fcrm_ray.config import ConfigError
from fcrm_ray.data.splits import SplitConfig
from fcrm_ray.toolcall.schema import ERROR_TYPES

BACKENDS = ("mutation", "hf", "vllm")
# `tiny:qwen3` is not a model but a smoke-test stand-in: a random-init Qwen3 causal LM built on first
# use (see backends.build_tiny_causal_lm). Its outputs are garbage, which the verifier labels
# `incorrect_output_format`; it exercises the hf path end to end on a CPU machine.
TINY_MODEL = "tiny:qwen3"


@dataclass
class SourceConfig:
    """One input: BFCL categories from the packaged data, or a file/dir of examples."""

    kind: str = "bfcl"  # bfcl | file
    categories: list[str] = field(default_factory=list)  # bfcl: empty = all single-turn categories
    data_dir: str = ""  # bfcl: override the packaged bfcl-eval data folder
    path: str = ""  # file: Parquet/JSONL file or dir, local or any fsspec/pyarrow URI
    format: str = "auto"  # file: auto | bfcl | xlam | openai | sharegpt | canonical (data.sources.FORMATS)
    name: str = ""  # `source` column; default: bfcl / the reader's own source name
    limit: int = 0  # keep the first N examples of this source (0 = all); for smoke runs

    def validate(self) -> None:
        if self.kind not in ("bfcl", "file"):
            raise ConfigError(f"config key `sources[].kind`: expected bfcl|file, got {self.kind!r}")
        if self.kind == "file" and not self.path:
            raise ConfigError("config key `sources[].path` is required for kind=file")
        if self.limit < 0:
            raise ConfigError("config key `sources[].limit` must be >= 0")


@dataclass
class ObfuscationConfig:
    """Rename functions/parameters to random strings (the paper's anti-memorisation step) for a
    deterministic `fraction` of examples; generation then sees only the obfuscated catalog."""

    fraction: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"config key `obfuscation.fraction` must be in [0, 1], got {self.fraction}")


@dataclass
class SamplingConfig:
    """Decoding for model backends. `seed` makes samples reproducible per (example, sample)."""

    n: int = 1  # samples per prompt
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    seed: int = 0
    # strings that end a sample (not kept in its text), e.g. ["\n"] for a base model that answers
    # on one line and never emits its end-of-turn token
    stop: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if any(not x for x in self.stop):
            raise ConfigError("config key `generators[].sampling.stop`: empty stop string")
        if self.n < 1:
            raise ConfigError("config key `generators[].sampling.n` must be >= 1")
        if self.temperature < 0:
            raise ConfigError("config key `generators[].sampling.temperature` must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("config key `generators[].sampling.top_p` must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ConfigError("config key `generators[].sampling.max_new_tokens` must be >= 1")


@dataclass
class MutationConfig:
    """Programmatic negatives: `mix` maps error type -> mutations per example (empty: `per_type`
    of every type, via `mutate_all`)."""

    mix: dict[str, int] = field(default_factory=dict)
    per_type: int = 1

    def validate(self) -> None:
        bad = [k for k in self.mix if k not in ERROR_TYPES]
        if bad:
            raise ConfigError(f"config key `generators[].mutation.mix.{bad[0]}`: not an error type; expected one of {ERROR_TYPES}")
        if any(v < 0 for v in self.mix.values()) or self.per_type < 0:
            raise ConfigError("config key `generators[].mutation`: counts must be >= 0")


@dataclass
class VLLMConfig:
    """Ray Data LLM (`ray.data.llm`) engine settings; GPU only."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    replicas: int = 1  # engine actors (data parallelism); each holds tp*pp GPUs
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    accelerator_type: str = ""  # e.g. H100; empty = any GPU
    max_concurrent_batches: int = 8
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to vLLM as-is (wins over the above)

    def validate(self) -> None:
        for key in ("tensor_parallel_size", "pipeline_parallel_size", "replicas", "max_model_len", "max_concurrent_batches"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key `generators[].vllm.{key}` must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("config key `generators[].vllm.gpu_memory_utilization` must be in (0, 1]")


@dataclass
class GeneratorConfig:
    """One generator: a model (hf/vllm) or the mutation engine, tagged `name` in the output."""

    name: str = ""
    backend: str = "mutation"
    model: str = ""  # hf/vllm: local dir or cluster path (no hub downloads); `tiny:qwen3` for smoke runs
    enabled: bool = True
    seed: int = 0  # mutation: rng seed; mixed into every per-example seed
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    mutation: MutationConfig = field(default_factory=MutationConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false} for Qwen3
    batch_size: int = 16  # rows per map_batches call
    min_actors: int = 1  # hf: ActorPoolStrategy(min_size, max_size)
    max_actors: int = 1
    compute: str = "tasks"  # mutation: tasks | actors (actors: same pool sizes as hf)
    num_cpus: float = 1.0
    num_gpus: float = 0.0  # hf on GPU: 1
    dtype: str = "float32"  # hf: torch dtype name
    device: str = "cpu"  # hf: cpu | cuda
    trust_remote_code: bool = False
    retries: int = 2  # a batch that raises is retried this many times, then recorded as failed

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key `generators[].backend`: expected one of {BACKENDS}, got {self.backend!r}")
        if self.backend in ("hf", "vllm") and self.enabled and not self.model:
            raise ConfigError(f"config key `generators[].model` is required for backend={self.backend} (generator {self.name!r})")
        if self.batch_size < 1:
            raise ConfigError("config key `generators[].batch_size` must be >= 1")
        if not 1 <= self.min_actors <= self.max_actors:
            raise ConfigError("config key `generators[].min_actors/max_actors`: need 1 <= min_actors <= max_actors")
        if self.compute not in ("tasks", "actors"):
            raise ConfigError(f"config key `generators[].compute`: expected tasks|actors, got {self.compute!r}")
        if self.retries < 0:
            raise ConfigError("config key `generators[].retries` must be >= 0")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"config key `generators[].device`: expected cpu|cuda, got {self.device!r}")
        if ":" in self.name or "/" in self.name:
            raise ConfigError(f"config key `generators[].name`: {self.name!r} may not contain ':' or '/'")

    def tag(self) -> str:
        """The `generator` column value (mutations add `:<kind>`)."""
        if self.name:
            return self.name
        if self.backend == "mutation":
            return "mutation"
        return self.model.rstrip("/").split("/")[-1] or self.backend

    def units_per_example(self) -> int:
        """Work units one example produces in this generator's branch; vLLM returns one output per
        request, so its n samples are n rows (see backends.VLLMBackend)."""
        return self.sampling.n if self.backend == "vllm" else 1


@dataclass
class ChosenConfig:
    """`chosen_output`: the reference's canonical form, or (variants > 0) one of that many
    alternative acceptable forms (`mutate.chosen_variants`), drawn per pair, so the RM does not
    learn one surface form as "correct"."""

    variants: int = 0

    def validate(self) -> None:
        if self.variants < 0:
            raise ConfigError("config key `chosen.variants` must be >= 0")


@dataclass
class DedupConfig:
    """Exact dedup of rejected calls per example (on the normalised call), then caps (0 = none)."""

    exact: bool = True
    max_per_example: int = 0
    max_per_error_type: int = 0  # per example and error type

    def validate(self) -> None:
        if self.max_per_example < 0 or self.max_per_error_type < 0:
            raise ConfigError("config key `dedup.max_per_*` must be >= 0")


@dataclass
class OutputConfig:
    """How the run directory (`out`) is written."""

    shard_size: int = 256  # examples per input shard = unit of resume
    resume: bool = True  # false: wipe `out` and start over
    jsonl: bool = False  # also write a JSONL copy per shard
    # Test hook: the driver exits (os._exit(1), like a SIGKILL) right after flushing this many
    # shards, so resume tests kill it at a known point instead of racing a busy machine.
    fault_inject_after_shards: int = 0

    def validate(self) -> None:
        if self.shard_size < 1:
            raise ConfigError("config key `output.shard_size` must be >= 1")
        if self.fault_inject_after_shards < 0:
            raise ConfigError("config key `output.fault_inject_after_shards` must be >= 0")


@dataclass
class RayDataConfig(RayConfig):
    """The Ray connection (`address`, `num_cpus`, `runtime_env`: as in every stage) and Ray Data's
    execution settings for this pipeline."""

    progress_bars: bool = True
    max_errored_blocks: int = 0  # Ray Data: blocks allowed to fail for good before the job fails


@dataclass
class GenerateConfig:
    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    # The one split definition of every stage (`fcrm_ray.data.splits.SplitConfig`, same key and
    # defaults as `fcrm bench build`), so no bench-validation or test example is trained on
    # through `generate`.
    splits: SplitConfig = field(default_factory=SplitConfig)
    obfuscation: ObfuscationConfig = field(default_factory=ObfuscationConfig)
    generators: list[GeneratorConfig] = field(default_factory=lambda: [GeneratorConfig()])
    chosen: ChosenConfig = field(default_factory=ChosenConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    out: str = "runs/generate"  # the run directory (--out); on a multi-node cluster, storage every node sees
    output: OutputConfig = field(default_factory=OutputConfig)
    ray: RayDataConfig = field(default_factory=RayDataConfig)

    # Keys that moved; an old config fails naming the new one. `split` was generate's own split
    # section: `splits` is the bench's definition, so no bench-validation or test example is
    # trained on through `generate`.
    RENAMED: ClassVar[dict[str, str]] = {
        "output.dir": "`out` (--out), the one output key of every stage",
        "split.strategy": "`splits.mode` (out_of_domain -> by_category, random -> by_example)",
        "split.validation_fraction": "`splits.validation_fraction` (default 0.25, as in `fcrm bench build`)",
        "split.test_fraction": "`splits.test_fraction`",
        "split.test_categories": "`splits.test_categories`",
        "split.seed": "`splits.seed`",
        "split.fixed": "`splits.train_categories` + `splits.validation_fraction=0` (whole categories in train)",
        "split": "the `splits` section (fcrm_ray.data.splits.SplitConfig, the same split definition as `fcrm bench build`)",
        # Ray 2.60 deprecates passing them to map_batches (`ray_remote_args`, removed in 2.64) and
        # offers no replacement; its defaults are the values these keys had.
        "generators.*.max_restarts": "no key: Ray Data restarts a crashed actor and resubmits its batch (max_restarts=-1, max_task_retries=-1)",
        "generators.*.max_task_retries": "no key: Ray Data resubmits the batch of a crashed actor or task without limit",
    }

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("config key `out` is required (--out DIR)")
        if not self.sources:
            raise ConfigError("config key `sources` must list at least one source")
        # fcrm_ray.config validates nested dataclasses but not lists of them: do it here, with the index.
        for key, items in (("sources", self.sources), ("generators", self.generators)):
            for i, item in enumerate(items):
                try:
                    _validate_tree(item)
                except ConfigError as e:
                    raise ConfigError(str(e).replace(f"`{key}[]", f"`{key}[{i}]")) from None
        active = self.active_generators()
        if not active:
            raise ConfigError("config key `generators` must hold at least one enabled generator")
        tags = [g.tag() for g in active]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ConfigError(f"config key `generators[].name`: duplicate generator name {dup[0]!r}; give each a unique `name`")

    def active_generators(self) -> list[GeneratorConfig]:
        return [g for g in self.generators if g.enabled]


def _validate_tree(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _validate_tree(v)
    obj.validate()
