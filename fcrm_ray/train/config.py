"""Typed config of `fcrm train`, grouped by concern: model / data / train / ckpt / scaling /
deepspeed / logging. Loaded with `fcrm_ray.config.load_config(TrainConfig, yaml, overrides)`;
every bad value or incompatible combination raises `ConfigError` naming the key, before Ray or
any worker starts. One YAML per model size lives in `configs/train/`."""

from __future__ import annotations

from dataclasses import dataclass, field

from fcrm_ray.common.ray_cluster import RayConfig
from fcrm_ray.config import ConfigError, from_dict, require_path
from fcrm_ray.data.pairs import PAIR_COLUMNS
from fcrm_ray.paths import resolve_model_path

STRATEGIES = ("deepspeed", "ddp", "single")
SCHEDULERS = ("cosine", "linear", "constant")
WANDB_MODES = ("offline", "online", "disabled")
LISTWISE_LOSSES = ("softmax", "hardest_negative")  # train/loss.py (not imported: no torch in the config)
DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class ModelConfig:
    path: str = ""  # local HF folder of the backbone (causal LM or encoder) or an RM; `pkg:minilm`
    dtype: str = "auto"  # auto = bfloat16 on GPU, float32 on CPU
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    # Keep the input embedding fixed (no gradient, no optimizer state). For a small causal LM with a
    # large vocabulary most weights are the embedding (Gemma 3 270M: 168M of 268M for 262k tokens)
    # and the candidates' tokens are a tiny part of that vocabulary; on CPU its dense gradient and
    # AdamW update cost time every step and two fp32 copies of memory.
    freeze_embeddings: bool = False
    # Dropout off while training the reward model (TRL's and OpenRLHF's default too): the reward is
    # a deterministic score, and on CPU dropout costs ~1.5x per step (masks on every activation and
    # on the attention probabilities, which also keeps SDPA off its fused kernel).
    disable_dropout: bool = True

    def validate(self) -> None:
        require_path(resolve_model_path(self.path) if self.path else self.path, "model.path", "dir")
        if self.dtype not in DTYPES:
            raise ConfigError(f"config key `model.dtype`: expected one of {DTYPES}, got {self.dtype!r}")


@dataclass
class DataConfig:
    train_path: str = ""  # pair file/dir (`fcrm bench build` / `fcrm generate` output)
    train_split: str = "train"  # rows with this `split` value; "" = all rows of train_path
    extra_train_paths: list[str] = field(default_factory=list)  # more pair sets; their train_split rows are added
    validation_path: str = ""  # default: train_path
    validation_split: str = "validation"
    test_path: str = ""  # default: train_path; held-out set scored once after training
    test_split: str = "test"
    # more held-out splits of test_path scored once at the end (e.g. `fcrm bench build`'s
    # `test_obfuscated`: the test pairs with random function/parameter names); absent ones are skipped
    extra_eval_splits: list[str] = field(default_factory=lambda: ["test_obfuscated"])
    max_length: int = 512  # tokens of prompt + call; the prompt (catalog side) is cut first
    min_prompt_tokens: int = 16  # a call longer than max_length - this -> quarantined as over-long
    # ... unless it fits this longer limit (0 = off): a long call (several parallel calls, a wide
    # schema) is kept at up to overflow_length tokens instead of dropped (`models.prompt_room`);
    # scoring reads it from train_config.yaml, so every stage applies the same rule
    overflow_length: int = 0
    max_train_rows: int = 0  # 0 = all (smoke runs: a few hundred; short runs: about max_steps x batch)
    # which rows a `max_train_rows` cap keeps (`train.data.balanced_subset`): strata by these
    # columns get shares proportional to count ** balance_power (1 = the natural mix, 0 = equal)
    balance_by: list[str] = field(default_factory=list)
    balance_power: float = 1.0
    # shares of `max_train_rows` per pair `source` (e.g. {bfcl: 0.7, bfcl_results: 0.3}: mutation
    # pairs vs real model outputs), normalised; each source's share is then balanced by `balance_by`.
    # Empty = one pool. Sources not named get no rows; a source short of its share gives the rest
    # to the others. Only with a `max_train_rows` cap (0 = every row of every source).
    source_weights: dict[str, float] = field(default_factory=dict)
    max_validation_rows: int = 0  # cap on the validation split (a stable subset; the final pass scores all of it); 0 = all
    max_eval_rows: int = 0  # cap for the periodic validation pass (the first rows of the validation subset); 0 = all
    max_test_rows: int = 0  # cap per final held-out split (test, extra_eval_splits): a stable subset; 0 = all
    length_group_size: int = 16  # length-sort within windows of this many micro-batches
    quarantine_path: str = ""  # default: <out>/quarantine.jsonl
    # Best-of-N pools of the train questions for the listwise objective (`train.listwise_weight`):
    # `fcrm bench build`'s `pools_real_train.jsonl` (real outputs of licence-permissive models;
    # built with sources.bfcl_results). "" = no pools.
    train_pools_path: str = ""
    max_pool_candidates: int = 8  # members per pool in a step (a seeded subset keeping a positive and a negative); 0 = all
    max_train_pools: int = 0  # a stable subset of the usable pools; 0 = all

    def validate(self) -> None:
        if not self.train_path:
            raise ConfigError("config key `data.train_path` is required")
        if "://" not in self.train_path:
            require_path(self.train_path, "data.train_path")
        for key in ("validation_path", "test_path"):
            v = getattr(self, key)
            if v and "://" not in v:
                require_path(v, f"data.{key}")
        for i, v in enumerate(self.extra_train_paths):
            if "://" not in v:
                require_path(v, f"data.extra_train_paths.{i}")
        if self.max_length < 32:
            raise ConfigError(f"config key `data.max_length` must be >= 32, got {self.max_length}")
        if not 0 <= self.min_prompt_tokens < self.max_length:
            raise ConfigError("config key `data.min_prompt_tokens` must be in [0, data.max_length)")
        if self.overflow_length and self.overflow_length <= self.max_length:
            raise ConfigError(f"config key `data.overflow_length` must be 0 (off) or > data.max_length "
                              f"({self.max_length}), got {self.overflow_length}")
        for key in ("max_train_rows", "max_validation_rows", "max_eval_rows", "max_test_rows"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key `data.{key}` must be >= 0")
        unknown = [c for c in self.balance_by if c not in PAIR_COLUMNS]
        if unknown:
            raise ConfigError(f"config key `data.balance_by`: {unknown} are not pair columns {list(PAIR_COLUMNS)}")
        if not 0.0 <= self.balance_power <= 1.0:
            raise ConfigError(f"config key `data.balance_power` must be in [0, 1], got {self.balance_power}")
        if self.length_group_size < 1:
            raise ConfigError("config key `data.length_group_size` must be >= 1")
        if self.train_pools_path:
            if "://" in self.train_pools_path:  # read by the driver with open()
                raise ConfigError("config key `data.train_pools_path` must be a local or shared-filesystem file")
            require_path(self.train_pools_path, "data.train_pools_path", "file")
        if self.max_pool_candidates == 1 or self.max_pool_candidates < 0:
            raise ConfigError(f"config key `data.max_pool_candidates` must be 0 (all) or >= 2, got {self.max_pool_candidates}")
        if self.max_train_pools < 0:
            raise ConfigError("config key `data.max_train_pools` must be >= 0")
        bad = [k for k, v in self.source_weights.items() if not v >= 0]
        if bad or (self.source_weights and not sum(self.source_weights.values()) > 0):
            raise ConfigError(f"config key `data.source_weights`: weights must be >= 0 with a positive sum (bad: {bad})")


@dataclass
class TrainLoopConfig:
    strategy: str = "deepspeed"  # deepspeed (ZeRO, the default everywhere) | ddp | single (1 worker, no wrapper)
    micro_batch_size: int = 8  # pairs per worker per forward (chosen+rejected -> 2x rows)
    gradient_accumulation_steps: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    epochs: float = 1.0
    max_steps: int = 0  # optimizer steps; 0 = derived from epochs
    max_grad_norm: float = 1.0
    margin: float = 0.0  # Bradley-Terry margin: -logsigmoid(r_c - r_r - margin)
    center_coef: float = 0.0  # reward centering: coef * mean((r_c + r_r)^2)
    # Listwise objective over Best-of-N pools (`train/loss.py`), added to the pairwise loss with
    # this weight: loss = BT + listwise_weight * listwise. 0 = off; > 0 needs data.train_pools_path.
    listwise_weight: float = 0.0
    listwise_loss: str = "softmax"  # softmax (the pool's mass on its correct members) | hardest_negative
    pools_per_step: int = 1  # pools per micro-batch, beside the micro_batch_size pairs
    eval_every: int = 50  # optimizer steps between validation passes (0 = only at the end)
    log_every: int = 10
    seed: int = 42
    num_threads: int = 0  # torch intra-op threads per worker (CPU); 0 = the CPUs Ray gave the worker (scaling.cpus_per_worker)
    # Causal LMs: chosen and rejected share the prompt, so each pair runs as ONE packed row
    # [prompt, chosen call, rejected call] with a block mask (`fcrm_ray/train/packing.py`).
    # auto = on where it applies (causal SeqCls, sdpa/eager attention) and a probe at start-up
    # reproduces the plain rewards; true = require it; false = two rows per pair.
    share_prompt: str = "auto"
    # Mixed precision for the `single`/`ddp` strategies: fp32 weights and optimizer, forward under
    # torch.autocast(bfloat16), the reward head in fp32. `auto` = bf16 only where the worker's
    # device runs it natively (CUDA with bf16; x86 CPUs with AVX512-BF16/AMX, see
    # `fcrm_ray/hardware.py`), else fp32 - on an AVX2-only CPU emulated bf16 is >10x slower than
    # fp32. `bf16` forces it (with a warning where it is emulated), `none` = plain fp32. The choice
    # and its reason are printed at start and written to train_config.yaml. DeepSpeed runs set their
    # precision from `model.dtype` (auto resolves to fp32 autocast-free there).
    autocast: str = "auto"
    # Test hook (`train/faults.py`): rank 0 calls os._exit(1) when it reaches this optimizer step on
    # the first attempt (no checkpoint to resume from yet beyond earlier ones), to exercise
    # FailureConfig + resume.
    fault_inject_step: int = 0

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"config key `train.strategy`: expected one of {STRATEGIES}, got {self.strategy!r}")
        if self.lr_scheduler not in SCHEDULERS:
            raise ConfigError(f"config key `train.lr_scheduler`: expected one of {SCHEDULERS}, got {self.lr_scheduler!r}")
        for key in ("micro_batch_size", "gradient_accumulation_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key `train.{key}` must be >= 1")
        if self.lr <= 0:
            raise ConfigError("config key `train.lr` must be > 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("config key `train.max_steps` or `train.epochs` must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("config key `train.warmup_ratio` must be in [0, 1)")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError("config key `train.adam_betas` must be two numbers in [0, 1)")
        if self.center_coef < 0:
            raise ConfigError("config key `train.center_coef` must be >= 0")
        if not self.listwise_weight >= 0:
            raise ConfigError(f"config key `train.listwise_weight` must be >= 0, got {self.listwise_weight}")
        if self.listwise_loss not in LISTWISE_LOSSES:
            raise ConfigError(f"config key `train.listwise_loss`: expected one of {LISTWISE_LOSSES}, got {self.listwise_loss!r}")
        if self.pools_per_step < 1:
            raise ConfigError("config key `train.pools_per_step` must be >= 1")
        if str(self.share_prompt).lower() not in ("auto", "true", "false"):
            raise ConfigError(f"config key `train.share_prompt`: expected auto, true or false, got {self.share_prompt!r}")
        if self.autocast not in ("auto", "none", "bf16"):
            raise ConfigError(f"config key `train.autocast`: expected auto, none or bf16, got {self.autocast!r}")
        for key in ("eval_every", "log_every", "num_threads", "fault_inject_step", "max_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key `train.{key}` must be >= 0")


@dataclass
class CheckpointConfig:
    storage_path: str = "runs/train"  # Ray Train storage (local dir or cloud URI); shared by all nodes
    name: str = "fcrm-rm"  # run name; re-running with the same storage_path+name resumes
    every_steps: int = 0  # 0 = checkpoint at every validation pass
    num_to_keep: int = 2

    def validate(self) -> None:
        if not self.storage_path:
            raise ConfigError("config key `ckpt.storage_path` is required")
        if not self.name:
            raise ConfigError("config key `ckpt.name` is required")
        if self.every_steps < 0 or self.num_to_keep < 1:
            raise ConfigError("config keys `ckpt.every_steps` >= 0 and `ckpt.num_to_keep` >= 1")


@dataclass
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # only with use_gpu
    max_failures: int = 1  # worker failures Ray Train recovers from (restart from the last checkpoint)

    def validate(self) -> None:
        if self.num_workers < 1:
            raise ConfigError("config key `scaling.num_workers` must be >= 1")
        if self.cpus_per_worker <= 0:
            raise ConfigError("config key `scaling.cpus_per_worker` must be > 0")
        if self.use_gpu and self.gpus_per_worker <= 0:
            raise ConfigError("config key `scaling.gpus_per_worker` must be > 0 with scaling.use_gpu")
        if self.max_failures < -1:
            raise ConfigError("config key `scaling.max_failures` must be >= -1 (-1 = unlimited)")


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 3
    offload_params: bool = False  # ZeRO-3 parameter offload to CPU (fits 8B/14B on fewer GPUs)
    offload_optimizer: bool = False  # optimizer state + step on CPU
    overlap_comm: bool = True
    reduce_bucket_size: int = 0  # 0 = "auto" (DeepSpeed sizes from the model's hidden size)
    stage3_max_live_parameters: int = 1_000_000_000
    stage3_prefetch_bucket_size: int = 0  # 0 = auto

    def validate(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"config key `deepspeed.zero_stage`: expected 0..3, got {self.zero_stage}")
        if self.offload_params and self.zero_stage != 3:
            raise ConfigError("config key `deepspeed.offload_params` needs deepspeed.zero_stage=3")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ConfigError("config key `deepspeed.offload_optimizer` needs deepspeed.zero_stage >= 1")


@dataclass
class LoggingConfig:
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "fcrm-ray"
    run_name: str = ""  # default: ckpt.name

    def validate(self) -> None:
        if self.wandb_mode not in WANDB_MODES:
            raise ConfigError(f"config key `logging.wandb_mode`: expected one of {WANDB_MODES}, got {self.wandb_mode!r}")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    ckpt: CheckpointConfig = field(default_factory=CheckpointConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    out: str = ""  # the final HF reward model and its reports (--out; required by `fcrm train`)
    ray: RayConfig = field(default_factory=RayConfig)

    def validate(self) -> None:
        """Cross-group checks (the groups validated themselves already)."""
        if self.train.strategy == "single" and self.scaling.num_workers != 1:
            raise ConfigError("config key `train.strategy=single` needs scaling.num_workers=1")
        if self.train.strategy != "deepspeed" and (self.deepspeed.offload_params or self.deepspeed.offload_optimizer):
            raise ConfigError("config keys `deepspeed.offload_*` need train.strategy=deepspeed")
        if self.train.autocast == "bf16" and self.train.strategy == "deepspeed":
            raise ConfigError("config key `train.autocast` is for strategies single/ddp; "
                              "DeepSpeed takes its precision from `model.dtype`")
        if self.train.autocast == "bf16" and self.dtype != "float32":
            raise ConfigError(f"config key `train.autocast` needs float32 weights (model.dtype), got {self.dtype}")
        if self.train.listwise_weight > 0 and not self.data.train_pools_path:
            raise ConfigError("config key `train.listwise_weight` > 0 needs `data.train_pools_path` "
                              "(a pools_real_train.jsonl of `fcrm bench build`)")
        if self.data.train_pools_path and not self.train.listwise_weight > 0:
            raise ConfigError("config key `data.train_pools_path` is set but `train.listwise_weight` is 0: "
                              "the pools would be read and never trained on")
        if self.model.dtype == "bfloat16" and not self.scaling.use_gpu:
            raise ConfigError("config key `model.dtype=bfloat16` is for GPUs; use float32 (or auto) on CPU")

    @property
    def dtype(self) -> str:
        if self.model.dtype != "auto":
            return self.model.dtype
        return "bfloat16" if self.scaling.use_gpu else "float32"


def config_from_dict(d: dict) -> TrainConfig:
    """Rebuild the typed config on a worker (paths may only exist on the driver's storage)."""
    return from_dict(TrainConfig, d)
