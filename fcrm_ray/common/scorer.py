"""`ScorerConfig`: the reward model a stage scores with, under the key `model` in every scoring
stage (eval pairwise / bon / robustness, filter) and as each entry of serve's `models.<name>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fcrm_ray.config import ConfigError

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
AUTOCAST_MODES = ("auto", "bf16", "none")  # what fcrm_ray.hardware.resolve_autocast accepts
ENGINES = ("torch", "vllm")  # fcrm_ray.scoring.make_scorer


@dataclass
class ScorerConfig:
    path: str = ""  # a trained RM folder (`fcrm train` output, a standard SeqCls checkpoint) or `pkg:...`
    # Tokens of prompt + candidate. None = the `data.max_length` the model was trained with (its
    # train_config.yaml): the one place a model family sets it is its training YAML.
    max_length: int | None = None
    # A call too long for max_length is scored at up to this many tokens instead of left unscored.
    # None = the model's training value (`data.overflow_length` in its train_config.yaml); 0 = off.
    overflow_length: int | None = None
    batch_size: int = 16  # sequences (candidates) per forward pass
    device: str = "cpu"  # cpu | cuda | cuda:N
    dtype: str = "float32"  # weights: float32 | bfloat16 | float16
    autocast: str = "auto"  # bf16 autocast only where the device runs it natively (fcrm_ray/hardware.py)
    trust_remote_code: bool = False
    # torch: our forward (shared-prefix KV reuse, autocast); vllm: the same token ids scored by
    # vLLM's pooling runner (CUDA or the CPU build), equal to torch's within 1e-4 in fp32
    engine: str = "torch"

    def validate(self, prefix: str = "model.") -> None:
        if self.batch_size < 1:
            raise ConfigError(f"config key `{prefix}batch_size` must be >= 1, got {self.batch_size}")
        if self.max_length is not None and self.max_length < 16:
            raise ConfigError(f"config key `{prefix}max_length` must be >= 16 (or null = the model's), got {self.max_length}")
        if self.overflow_length is not None and self.overflow_length < 0:
            raise ConfigError(f"config key `{prefix}overflow_length` must be >= 0 (0 = off, null = the model's), "
                              f"got {self.overflow_length}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"config key `{prefix}device`: expected cpu or cuda, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"config key `{prefix}dtype`: expected one of {DTYPES}, got {self.dtype!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"config key `{prefix}engine`: expected one of {ENGINES}, got {self.engine!r}")
        if self.autocast not in AUTOCAST_MODES:
            raise ConfigError(f"config key `{prefix}autocast`: expected one of {AUTOCAST_MODES}, got {self.autocast!r}")

    def scorer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `fcrm_ray.scoring.make_scorer(path, **kwargs)`."""
        return {"engine": self.engine, "batch_size": self.batch_size, "max_length": self.max_length,
                "overflow_length": self.overflow_length, "device": self.device,
                "dtype": self.dtype, "autocast": self.autocast, "trust_remote_code": self.trust_remote_code}
