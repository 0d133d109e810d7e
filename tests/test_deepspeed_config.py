"""DeepSpeed config generation from TrainConfig, checked by DeepSpeed's own config parser (CPU)."""

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.train.config import TrainConfig
from fcrm_ray.train.deepspeed_config import build_deepspeed_config

GPU_CONFIGS = ["qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b"]


@pytest.fixture()
def paths(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "pairs").mkdir()
    return [f"model.path={tmp_path / 'model'}", f"data.train_path={tmp_path / 'pairs'}"]


def _ds_parse(ds: dict):
    from deepspeed.runtime.config import DeepSpeedConfig

    return DeepSpeedConfig(ds)  # validates keys (pydantic, extra=forbid) and the batch arithmetic


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_build_valid_zero3_bf16(name, paths):
    cfg = load_config(TrainConfig, f"configs/train/{name}.yaml", paths)
    assert cfg.scaling.use_gpu and cfg.model.gradient_checkpointing and cfg.dtype == "bfloat16"
    ds = build_deepspeed_config(cfg, hidden_size=2048, world_size=1)
    parsed = _ds_parse(ds)
    assert parsed.zero_optimization_stage == 3
    assert parsed.bfloat16_config.enabled and not parsed.float16_config.enabled
    assert parsed.gradient_clipping == cfg.train.max_grad_norm
    assert parsed.gradient_accumulation_steps == cfg.train.gradient_accumulation_steps
    assert parsed.train_micro_batch_size_per_gpu == cfg.train.micro_batch_size
    assert ds["zero_optimization"]["reduce_bucket_size"] == 2048 * 2048
    global_batch = cfg.train.micro_batch_size * cfg.train.gradient_accumulation_steps * cfg.scaling.num_workers
    assert global_batch == 128


def test_offload_settings_reach_the_zero_section(paths):
    cfg = load_config(TrainConfig, "configs/train/qwen3-14b.yaml", paths + ["deepspeed.offload_params=true"])
    ds = build_deepspeed_config(cfg, hidden_size=5120, world_size=8)
    z = ds["zero_optimization"]
    assert z["offload_param"]["device"] == "cpu" and z["offload_optimizer"]["device"] == "cpu"
    assert z["offload_optimizer"]["pin_memory"] is True
    assert ds["train_batch_size"] == 128
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    zc = DeepSpeedZeroConfig(**z)
    assert zc.offload_param is not None and zc.offload_optimizer is not None


def test_cpu_config_is_fp32_without_overlap(paths):
    cfg = load_config(TrainConfig, "configs/train/cpu-tiny-qwen3.yaml", paths)
    ds = build_deepspeed_config(cfg, hidden_size=64, world_size=2)
    assert cfg.dtype == "float32" and ds["bf16"]["enabled"] is False
    assert ds["zero_optimization"]["overlap_comm"] is False  # needs CUDA streams
    assert ds["train_batch_size"] == cfg.train.micro_batch_size * cfg.train.gradient_accumulation_steps * 2
    ds1 = build_deepspeed_config(cfg, hidden_size=64, world_size=1)
    ds1["train_batch_size"] = cfg.train.micro_batch_size * cfg.train.gradient_accumulation_steps
    _ds_parse(ds1)


def test_optimizer_hyper_parameters_come_from_train(paths):
    cfg = load_config(TrainConfig, "configs/train/qwen3-8b.yaml", paths + ["train.lr=7e-6", "train.weight_decay=0.1"])
    p = build_deepspeed_config(cfg)["optimizer"]["params"]
    assert p["lr"] == 7e-6 and p["weight_decay"] == 0.1 and p["betas"] == list(cfg.train.adam_betas)


def test_incompatible_deepspeed_settings_fail_naming_the_key(paths):
    with pytest.raises(ConfigError, match="deepspeed.offload_params"):
        load_config(TrainConfig, "configs/train/qwen3-8b.yaml", paths + ["deepspeed.zero_stage=2", "deepspeed.offload_params=true"])
    with pytest.raises(ConfigError, match="deepspeed.offload"):
        load_config(TrainConfig, "configs/train/qwen3-14b.yaml", paths + ["train.strategy=ddp"])
