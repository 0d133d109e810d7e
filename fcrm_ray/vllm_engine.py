"""The one place a vLLM engine is configured and built: the engine arguments of every vLLM path
(generation through `ray.data.llm`, the pairwise judge, Best-of-N pools) and the in-process
`vllm.LLM`. vLLM is imported only when an engine is built (GPU machines), so the arguments are
built and tested on CPU."""

from __future__ import annotations

from typing import Any, Mapping

from fcrm_ray.config import ConfigError


def engine_kwargs(*, tensor_parallel_size: int, max_model_len: int, pipeline_parallel_size: int | None = None,
                  gpu_memory_utilization: float | None = None, trust_remote_code: bool | None = None,
                  enable_prefix_caching: bool | None = None, seed: int | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict:
    """vLLM engine arguments (`vllm.LLM(model, **kw)`, or a `ray.data.llm` processor's
    `engine_kwargs`). A setting left None is not passed, so vLLM's own default applies; `extra`
    (a config's free-form `engine_kwargs`) wins over the named settings."""
    named = {"tensor_parallel_size": tensor_parallel_size, "pipeline_parallel_size": pipeline_parallel_size,
             "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
             "trust_remote_code": trust_remote_code, "enable_prefix_caching": enable_prefix_caching, "seed": seed}
    kw = {k: v for k, v in named.items() if v is not None}
    kw.update(dict(extra or {}))
    return kw


def import_vllm(config_key: str, what: str):
    """The `vllm` module; on a machine without it, a ConfigError naming the config key that asked for it."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"config key `{config_key}`: {what} needs vLLM on a GPU machine ({e})") from None
    return vllm


def build_llm(model: str, kwargs: Mapping[str, Any], *, config_key: str, what: str):
    """An in-process `vllm.LLM` for `model` with `kwargs` from `engine_kwargs`."""
    return import_vllm(config_key, what).LLM(model=model, **kwargs)


def sampling_params(**kwargs):
    """`vllm.SamplingParams(**kwargs)`; called after `build_llm`, which checked that vLLM is there."""
    import vllm

    return vllm.SamplingParams(**kwargs)
