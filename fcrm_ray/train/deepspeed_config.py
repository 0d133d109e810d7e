"""The DeepSpeed config dict of a training run, built from `TrainConfig` (never hand-written JSON).

ZeRO stage 3 by default: parameters, gradients and optimizer state are partitioned across the
Ray Train workers. bf16 on GPU, fp32 on CPU (DeepSpeed's CPU accelerator runs the same engine with
gloo/oneCCL collectives). Optional CPU offload of parameters and optimizer state for the 8B/14B
configs. Gradient clipping, accumulation and micro-batch size come from `train.*`; gradient
checkpointing is switched on the HF model (`model.gradient_checkpointing`), not here.

DeepSpeed takes no "auto" values (that is the HF Trainer's integration), so bucket sizes are
derived from the model's hidden size the way that integration does.
"""

from __future__ import annotations

from fcrm_ray.train.config import TrainConfig


def build_deepspeed_config(cfg: TrainConfig, hidden_size: int | None = None, world_size: int | None = None) -> dict:
    """The dict for `deepspeed.initialize(config=...)`; `hidden_size` sizes the ZeRO-3 buckets."""
    t, d = cfg.train, cfg.deepspeed
    on_gpu = cfg.scaling.use_gpu
    bf16 = cfg.dtype == "bfloat16"
    zero: dict = {
        "stage": d.zero_stage,
        "overlap_comm": d.overlap_comm and on_gpu,  # overlap needs CUDA streams; no-op risk on CPU
        "contiguous_gradients": True,
    }
    h = hidden_size or 0
    if d.reduce_bucket_size:
        zero["reduce_bucket_size"] = d.reduce_bucket_size
    elif h:
        zero["reduce_bucket_size"] = h * h
    if d.zero_stage == 3:
        zero["stage3_max_live_parameters"] = d.stage3_max_live_parameters
        zero["stage3_max_reuse_distance"] = d.stage3_max_live_parameters
        if d.stage3_prefetch_bucket_size:
            zero["stage3_prefetch_bucket_size"] = d.stage3_prefetch_bucket_size
        elif h:
            zero["stage3_prefetch_bucket_size"] = int(0.9 * h * h)
        if h:
            zero["stage3_param_persistence_threshold"] = 10 * h
        # The final HF checkpoint is consolidated by `_zero3_consolidated_16bit_state_dict`.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if d.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    if d.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    ds = {
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "gradient_clipping": t.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": t.lr, "betas": list(t.adam_betas), "eps": 1e-8, "weight_decay": t.weight_decay},
        },
        "steps_per_print": 1_000_000_000,  # our loop logs; keep DeepSpeed quiet
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    if world_size:
        ds["train_batch_size"] = t.micro_batch_size * t.gradient_accumulation_steps * world_size
    return ds
