"""The per-worker training function that Ray Train runs on every worker.

Phases: set up (threads, seed, model, engine) -> restore from `ray.train.get_checkpoint()` ->
train (Bradley-Terry, chosen+rejected in one forward -- for causal LMs one packed row per pair
that runs the shared prompt once (`packing.py`, `train.share_prompt`) -- dropout off,
length-grouped micro-batches, gradient accumulation) -> every `train.eval_every` steps a
validation pass (accuracy overall and per error type) and a checkpoint reported with
`ray.train.report` -> at the end, full validation and test passes and a consolidated standard
HF checkpoint (`hf/`) in the last reported checkpoint.

Engines (`train.strategy`): `deepspeed` (ZeRO from `deepspeed_config.py`; the same code on CUDA
and on DeepSpeed's CPU accelerator), `ddp` (torch DDP through `ray.train.torch.prepare_model`),
`single` (one worker, plain module: the fastest CPU path for one process).

Every rank holds its shard of the train set in memory (token ids only) and cycles through it, so
all ranks take exactly the same number of steps (ZeRO-3's collectives deadlock otherwise). Eval
sets are not split by Ray; each rank scores rows `rank::world` and the results are all-gathered.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import wandb
from transformers import AutoConfig, AutoModelForSequenceClassification, get_scheduler
from transformers.integrations import HfDeepSpeedConfig

from fcrm_ray.config import to_dict
from fcrm_ray.data.pairs import stable_hash
from fcrm_ray.hardware import resolve_autocast, set_torch_threads
from fcrm_ray.models import forward_rewards, init_reward_model, keep_head_fp32, mark_reward_config
from fcrm_ray.train import faults
from fcrm_ray.train.checkpoint import (CKPT_META, DS_DIR, DS_TAG, HF_DIR, TORCH_STATE, checkpoint_problem,
                                       files_under, identity_changes, run_identity, write_manifest)
from fcrm_ray.train.config import config_from_dict
from fcrm_ray.train.data import collate_pairs, cycle_epochs, eval_batches
from fcrm_ray.train.deepspeed_config import build_deepspeed_config
from fcrm_ray.train.loss import bradley_terry_loss, listwise_loss, pair_metrics, pool_metrics
from fcrm_ray.train.packing import causal_blocker, collate_packed_pairs, packed_pair_rewards, packing_blocker
from fcrm_ray.train.pools import collate_pools, cycle_pools, pool_rewards


def say(message: str) -> None:
    """One progress line on the worker's stdout. Not `print`: Ray Train patches `print` in its
    workers to log AND (when stdout is wrapped, as Ray's workers' is) to print, so every line
    reached the driver twice."""
    sys.stdout.write(f"[fcrm train] {message}\n")
    sys.stdout.flush()


# --- small distributed helpers (no-ops on one process) -------------------------------------------

def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_int(value: int, op: str) -> int:
    if not _distributed():
        return value
    t = torch.tensor([value], dtype=torch.long, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.MAX)
    return int(t.item())


def _all_gather(obj: Any) -> list:
    if not _distributed():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _comm_device():
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def disable_dropout(model) -> None:
    """Dropout probability 0 everywhere: `nn.Dropout` modules (BERT also reads its attention dropout
    from one) and the float `attention_dropout` attribute that Llama/Qwen-style attention passes to
    the attention kernel. The saved config keeps its values, so the checkpoint is unchanged."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
        if isinstance(getattr(mod, "attention_dropout", None), float):
            mod.attention_dropout = 0.0


# --- metrics -------------------------------------------------------------------------------------

def summarize_scores(records: Sequence[dict]) -> dict:
    """records: {error_type, category, generator, chosen, rejected} -> accuracy overall / per
    error type / per category / per generator, and reward statistics."""
    out: dict[str, Any] = {"n": len(records)}
    if not records:
        return out
    rc = np.array([r["chosen"] for r in records], dtype=np.float64)
    rr = np.array([r["rejected"] for r in records], dtype=np.float64)
    win = rc > rr
    allr = np.concatenate([rc, rr])
    out.update(accuracy=float(win.mean()), margin=float((rc - rr).mean()),
               reward_mean=float(allr.mean()), reward_std=float(allr.std()),
               reward_chosen_mean=float(rc.mean()), reward_rejected_mean=float(rr.mean()))
    for key in ("error_type", "category", "generator"):
        groups: dict[str, list[bool]] = defaultdict(list)
        for r, w in zip(records, win):
            groups[str(r.get(key) or "unknown")].append(bool(w))
        out[f"by_{key}"] = {k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(groups.items())}
    return out


# --- the worker function -------------------------------------------------------------------------

def train_loop_per_worker(loop_config: dict) -> None:
    cfg = config_from_dict(loop_config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = set_torch_threads(cfg.train.num_threads) if not cfg.scaling.use_gpu else torch.get_num_threads()
    torch.manual_seed(cfg.train.seed + rank)
    if rank == 0:
        say(f"worker: {world} x {'GPU' if cfg.scaling.use_gpu else 'CPU'}, {threads} torch threads per worker")

    trainer = _WorkerTrainer(cfg, loop_config, rank, world)
    trainer.run()


class _WorkerTrainer:
    """State of one worker's run; methods are the phases of the recipe."""

    def __init__(self, cfg, loop_config: dict, rank: int, world: int):
        self.cfg, self.rank, self.world = cfg, rank, world
        self.model_path = loop_config["model_path"]
        self.run_name = loop_config.get("run_name", cfg.ckpt.name)
        self.dataset_names = set(loop_config.get("datasets", ["train", "validation", "test"]))
        self.wandb_dir = loop_config.get("wandb_dir")
        self.history: list[dict] = []
        self.step = 0
        self.share_prompt = self.causal = False  # decided once the model is built
        # bf16 autocast only where this worker's device runs it natively (`fcrm_ray/hardware.py`)
        device_type = "cuda" if cfg.scaling.use_gpu else "cpu"
        if cfg.train.strategy == "deepspeed":
            self.autocast, self.autocast_reason = "none", f"weights in {cfg.dtype} (DeepSpeed sets its own precision)"
        else:
            self.autocast, self.autocast_reason = resolve_autocast(cfg.train.autocast, device_type, cfg.dtype)
        if rank == 0:
            say(f"precision: {'bf16 autocast (fp32 weights, fp32 reward head)' if self.autocast == 'bf16' else 'fp32'}"
                f" - {self.autocast_reason}")

    # setup ---------------------------------------------------------------------------------
    def _load_rows(self, name: str, cap: int = 0) -> list[dict]:
        if name not in self.dataset_names:  # get_dataset_shard raises for datasets not passed in
            return []
        shard = ray.train.get_dataset_shard(name)  # the whole dataset (recipe: nothing is split)
        if name in ("train", "train_pools") and self.world > 1:  # this rank's part, the same on every attempt
            rows = [dict(r) for r in shard.iter_rows() if int(stable_hash(r["id"], n=8), 16) % self.world == self.rank]
        else:
            rows = [dict(r) for r in shard.iter_rows()]
        rows.sort(key=lambda r: r["id"])  # stream order varies between attempts; make it deterministic
        return rows[:cap] if cap else rows

    def _build_model(self):
        cfg = self.cfg
        self.ds_config = None
        if cfg.train.strategy == "deepspeed":
            mcfg = AutoConfig.from_pretrained(self.model_path, trust_remote_code=cfg.model.trust_remote_code)
            hidden = getattr(mcfg.get_text_config(), "hidden_size", None)
            # no world_size: DeepSpeed derives train_batch_size itself (HfDeepSpeedConfig checks the
            # batch arithmetic before deepspeed.comm knows the world size)
            self.ds_config = build_deepspeed_config(cfg, hidden_size=hidden)
        if self.ds_config is not None and cfg.deepspeed.zero_stage == 3 and cfg.scaling.use_gpu:
            # While this object lives, `from_pretrained` builds the model under `deepspeed.zero.Init`:
            # each rank materialises only its partition, so a 14B backbone never sits whole in
            # every rank's memory. Kept on self: transformers holds it through a weak reference.
            # GPU only: CPU runs use small models, and this path is not exercised by the CPU tests.
            self._hf_ds_config = HfDeepSpeedConfig(self.ds_config)
        model, tok = init_reward_model(self.model_path, dtype=cfg.dtype, trust_remote_code=cfg.model.trust_remote_code,
                                       note=say if self.rank == 0 else lambda _: None)
        if cfg.model.disable_dropout:
            disable_dropout(model)
        if cfg.model.freeze_embeddings:
            model.get_input_embeddings().requires_grad_(False)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(model.config, "use_cache"):
                model.config.use_cache = False
        self.pad_id = tok.pad_token_id
        self.tokenizer = tok
        if self.autocast != "none":
            keep_head_fp32(model)
        return model

    def _autocast(self):
        if self.autocast == "none":
            return contextlib.nullcontext()
        return torch.autocast(self._device().type, dtype=torch.bfloat16)

    def _build_engine(self, model, total_steps: int):
        t = self.cfg.train
        warmup = int(round(t.warmup_ratio * total_steps))

        def make_sched(opt):
            return get_scheduler(t.lr_scheduler if t.lr_scheduler != "constant" else "constant_with_warmup",
                                 optimizer=opt, num_warmup_steps=warmup, num_training_steps=total_steps)

        if t.strategy == "deepspeed":
            # Imported here, not with the module: importing deepspeed picks its accelerator and logs
            # the choice ("Setting accelerator to CPU" on every CPU process), which the driver and
            # single/ddp workers, which also import this module, have no use for.
            import deepspeed

            engine, opt, _, sched = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
                                                         config=self.ds_config, lr_scheduler=make_sched)
            self.engine, self.optimizer, self.scheduler = engine, opt, sched
            self.module = engine.module
            return
        model = ray.train.torch.prepare_model(model) if t.strategy == "ddp" else model.to(ray.train.torch.get_device())
        trainable = [p for p in model.parameters() if p.requires_grad]  # model.freeze_embeddings
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=tuple(t.adam_betas))
        self.engine, self.optimizer, self.scheduler = model, opt, make_sched(opt)
        self.module = model.module if hasattr(model, "module") else model

    # checkpoint ----------------------------------------------------------------------------
    def _restore(self) -> bool:
        """Restore the newest restorable checkpoint: Ray's latest first, then older kept ones
        (`ckpt.num_to_keep`). An incomplete or unreadable one is skipped with its reason, printed
        and recorded in the history; with none left the run starts from step 0."""
        skipped = []
        for ckpt in self._restore_candidates():
            with ckpt.as_directory() as d:
                problem = checkpoint_problem(d)
                if problem is None:
                    changes = identity_changes(json.loads((Path(d) / CKPT_META).read_text()).get("run"),
                                               run_identity(to_dict(self.cfg)), run_identity(to_dict(type(self.cfg)())))
                    if changes:  # the driver checks local storage first; this covers cloud storage
                        raise RuntimeError(f"checkpoint {ckpt.path} belongs to a run with other settings "
                                           f"({'; '.join(changes)}); use another ckpt.name")
                    try:
                        meta = self._load_state(Path(d))
                    except Exception as e:  # e.g. a corrupt state.pt of the recorded size
                        if self.cfg.train.strategy == "deepspeed":
                            # a partly loaded ZeRO engine cannot be trusted: fail with the reason
                            raise RuntimeError(f"checkpoint {ckpt.path} could not be loaded: {e}") from e
                        problem = f"unloadable ({type(e).__name__}: {str(e)[:200]})"
            if problem is not None:
                say(f"rank {self.rank}: skipping checkpoint {ckpt.path}: {problem}")
                skipped.append({"event": "checkpoint_skipped", "path": str(ckpt.path), "reason": problem,
                                "time": time.time()})
                continue
            self.step = int(meta["step"])
            self.history = list(meta.get("history", [])) + skipped
            self.history.append({"event": "resumed", "step": self.step, "time": time.time()})
            say(f"rank {self.rank} resumed from {ckpt.path} at step {self.step}")
            return True
        self.history = skipped
        if skipped:
            say(f"rank {self.rank}: no restorable checkpoint; starting from step 0")
            self.history.append({"event": "started_fresh", "step": 0, "time": time.time()})
        return False

    def _checkpoint_dir_name(self, final: bool) -> str:
        """`checkpoint_<step>`; after a restart `-r<n>` too, so a rerun that resumed from an older
        checkpoint (a newer one was skipped) never writes into the skipped one's folder."""
        n = sum(1 for h in self.history if h.get("event") in ("resumed", "started_fresh"))
        return f"checkpoint_{self.step:07d}{'_final' if final else ''}{f'-r{n}' if n else ''}"

    def _restore_candidates(self) -> list:
        latest = ray.train.get_checkpoint()
        if latest is None:
            return []
        try:  # older kept checkpoints, newest first (a Ray without this API: just the latest)
            reported = ray.train.get_all_reported_checkpoints()
            older = [r.checkpoint for r in reported if r.checkpoint.path != latest.path]
            # checkpoint_<step:07d>[_final][-r<n>]: name order = step order, then restart order
            older.sort(key=lambda c: c.path, reverse=True)
        except Exception:
            older = []
        return [latest] + older

    def _load_state(self, d: Path) -> dict:
        meta = json.loads((d / CKPT_META).read_text())
        if self.cfg.train.strategy == "deepspeed":
            self.engine.load_checkpoint(str(d / DS_DIR), tag=DS_TAG)
        else:
            state = torch.load(d / TORCH_STATE, map_location="cpu", weights_only=False)
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        return meta

    def _save_and_report(self, metrics: dict, final_hf: bool = False) -> None:
        with tempfile.TemporaryDirectory(prefix="fcrm-ckpt-") as d:
            if self.cfg.train.strategy == "deepspeed":
                # every rank writes its own ZeRO shard; Ray merges the per-rank dirs in storage
                self.engine.save_checkpoint(str(Path(d) / DS_DIR), tag=DS_TAG)
            elif self.rank == 0:
                torch.save({"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict()}, Path(d) / TORCH_STATE)
            if final_hf:
                self._save_hf(Path(d) / HF_DIR)
            if self.rank == 0:
                (Path(d) / CKPT_META).write_text(json.dumps(
                    {"step": self.step, "total_steps": self.total_steps, "world_size": self.world,
                     "history": self.history, "run": run_identity(to_dict(self.cfg))}, default=float))
            write_manifest(d, self.rank, files_under(d))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d),
                             checkpoint_dir_name=self._checkpoint_dir_name(final_hf))

    def _save_hf(self, out: Path) -> None:
        """A standard `save_pretrained` SeqCls checkpoint + tokenizer (rank 0 writes; under ZeRO-3
        all ranks take part in gathering the partitioned weights)."""
        if self.cfg.train.strategy == "deepspeed" and self.cfg.deepspeed.zero_stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()} if self.rank == 0 else None
        if self.rank != 0:
            return
        config = self.module.config
        with torch.device("meta"):
            fresh = AutoModelForSequenceClassification.from_config(config, dtype=getattr(torch, self.cfg.dtype))
        missing, unexpected = fresh.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if "position_ids" not in k]  # non-persistent buffers
        if missing or unexpected:
            raise RuntimeError(f"consolidated state dict does not match the model: missing={missing[:5]} "
                               f"unexpected={unexpected[:5]}")
        # buffers not in the state dict (non-persistent) are still on meta: recreate them on CPU
        for name, buf in list(fresh.named_buffers()):
            if buf.is_meta:
                mod_name, _, attr = name.rpartition(".")
                mod = fresh.get_submodule(mod_name) if mod_name else fresh
                src = self.module.get_buffer(name)
                mod.register_buffer(attr, src.detach().cpu().clone(), persistent=False)
        mark_reward_config(fresh.config, self.pad_id)  # problem_type/labels/pad for transformers and vLLM
        fresh.save_pretrained(out)
        self.tokenizer.save_pretrained(out)

    # forward/eval --------------------------------------------------------------------------
    def _rewards(self, batch: dict):
        device = self._device()
        mask = batch["attention_mask"]
        return forward_rewards(self.engine, batch["input_ids"].to(device), None if mask is None else mask.to(device))

    def _pair_rewards(self, examples: Sequence[dict], packed: bool | None = None):
        """(chosen rewards, rejected rewards, tokens run) of a micro-batch of pairs: one packed
        row per pair (prompt shared, `packing.py`) or chosen and rejected rows in one forward."""
        if self.share_prompt if packed is None else packed:
            batch = collate_packed_pairs(examples, self.pad_id)
            with self._autocast():
                rc, rr = packed_pair_rewards(self.engine, self.module, batch, self._device())
            return rc.float(), rr.float(), batch["n_tokens"]
        batch = collate_pairs(examples, self.pad_id)
        n_tokens = int(batch["attention_mask"].sum())
        if self.causal:
            # Right padding and causal attention: no real token attends to the pads after it, and
            # HF reads the reward at the last non-pad token from input_ids, so the mask can go and
            # attention takes its causal kernel (~1.3x faster steps on CPU, same rewards).
            batch["attention_mask"] = None
        with self._autocast():
            r = self._rewards(batch).float()
        b = batch["num_pairs"]
        return r[:b], r[b:], n_tokens

    def _listwise(self, pools: Sequence[dict]):
        """(listwise loss, pool counts, metrics, tokens run) of a few Best-of-N pools: every member
        a full row (right-padded; causal models without the mask, as in `_pair_rewards`)."""
        batch = collate_pools(pools, self.pad_id)
        n_tokens = int(batch["attention_mask"].sum())
        mask = None if self.causal else batch["attention_mask"].to(self._device())
        with self._autocast():
            rows = forward_rewards(self.engine, batch["input_ids"].to(self._device()), mask).float()
        r = pool_rewards(rows, batch)
        positive, valid = batch["positive"].to(r.device), batch["valid"].to(r.device)
        loss, counts = listwise_loss(r, positive, valid, self.cfg.train.listwise_loss)
        return loss, counts, pool_metrics(r.detach(), positive, valid), n_tokens

    def _resolve_share_prompt(self) -> bool:
        """train.share_prompt: auto -> on only where packing applies AND a probe pair gets the
        plain path's rewards; true -> the same checks, but failing them is an error."""
        self.causal = causal_blocker(self.module) is None
        setting = str(self.cfg.train.share_prompt).lower()
        if setting == "false":
            return False
        why_not = packing_blocker(self.module)
        if why_not is None:
            vocab = [i for i in range(min(int(self.module.config.vocab_size), 5000)) if i != self.pad_id]
            ids = [vocab[(37 * i + 11) % len(vocab)] for i in range(40)]
            probe = [{"chosen_ids": ids[:30], "rejected_ids": ids[:24] + ids[31:37]},
                     {"chosen_ids": ids[:12] + ids[20:23], "rejected_ids": ids[:12] + ids[5:9] + [self.pad_id]}]
            was_training = self.engine.training
            self.engine.eval()
            with torch.no_grad():
                plain = torch.cat(self._pair_rewards(probe, packed=False)[:2]).float().cpu()
                packed = torch.cat(self._pair_rewards(probe, packed=True)[:2]).float().cpu()
            self.engine.train(was_training)
            tol = 1e-4 if self.cfg.dtype == "float32" and self.autocast == "none" else 5e-2
            diff = float(((plain - packed).abs() / plain.abs().clamp(min=1.0)).max())
            if not diff <= tol:  # also NaN
                why_not = f"probe rewards differ from the plain path by {diff:.3g}"
        if why_not is not None and setting == "true":
            raise ValueError(f"train.share_prompt=true is not possible for {self.model_path}: {why_not}")
        if self.rank == 0:
            say(f"prompt-shared packing: {'on' if why_not is None else 'off (' + why_not + ')'}")
        return why_not is None

    def _device(self):
        if self.cfg.train.strategy == "deepspeed":
            return self.engine.device
        return ray.train.torch.get_device()

    def evaluate(self, rows: list[dict]) -> dict:
        """Scores of all `rows` (every rank scores `rank::world`, results gathered)."""
        mine = rows[self.rank::self.world]
        bs = 2 * self.cfg.train.micro_batch_size  # forward only: twice the training micro-batch fits
        batches = eval_batches([len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in mine], bs)
        n = _all_reduce_int(len(batches), "max")  # same number of forwards on every rank (ZeRO-3)
        records = []
        self.engine.eval()
        t0, marks = time.time(), {n * q // 4 for q in (1, 2, 3)} if len(rows) >= 400 else set()
        with torch.no_grad():
            for i in range(n):
                if i in marks and self.rank == 0:  # long passes: a line per quarter, so a slow run is not a hung one
                    say(f"  evaluating {len(rows)} pairs: {100 * i // n}% ({_hms(time.time() - t0)} elapsed, "
                        f"eta {_hms((time.time() - t0) / i * (n - i))})")
                real = i < len(batches)
                idx = batches[i] if real else [0]
                pool = mine if mine else rows
                examples = [pool[j] for j in idx]
                rc, rr, _ = self._pair_rewards(examples)
                if real and mine:
                    for e, c, rj in zip(examples, rc.float().cpu().tolist(), rr.float().cpu().tolist()):
                        records.append({"id": e["id"], "error_type": e["error_type"], "category": e["category"],
                                        "generator": e["generator"], "chosen": c, "rejected": rj})
        self.engine.train()
        merged = [rec for part in _all_gather(records) for rec in part]
        return summarize_scores(merged)

    # train ---------------------------------------------------------------------------------
    def run(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        train_rows = self._load_rows("train")
        val_rows = self._load_rows("validation")
        # held-out sets scored once at the end: test plus any extra eval splits (test_obfuscated)
        final_sets = {n: self._load_rows(n) for n in sorted(self.dataset_names)
                      if n not in ("train", "validation", "train_pools")}
        periodic_val = val_rows[:cfg.data.max_eval_rows] if cfg.data.max_eval_rows else val_rows

        # every rank must take the same number of steps: agree on the smallest shard
        local_batches = len(train_rows) // t.micro_batch_size
        batches_per_epoch = _all_reduce_int(local_batches, "min")
        if batches_per_epoch < t.gradient_accumulation_steps:
            raise ValueError(f"worker shard too small: {batches_per_epoch} micro-batches of "
                             f"{t.micro_batch_size} pairs < train.gradient_accumulation_steps")
        steps_per_epoch = batches_per_epoch // t.gradient_accumulation_steps
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))

        model = self._build_model()
        self._build_engine(model, self.total_steps)
        resumed = self._restore()
        self.share_prompt = self._resolve_share_prompt()
        self.engine.train()

        lengths = [len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in train_rows[:batches_per_epoch * t.micro_batch_size]]
        micro_stream = cycle_epochs(lengths, t.micro_batch_size, cfg.data.length_group_size, t.seed + self.rank)
        for _ in range(self.step * t.gradient_accumulation_steps):  # skip what the restored run consumed
            next(micro_stream)

        pool_rows = self._load_rows("train_pools") if t.listwise_weight > 0 else []
        pool_stream = None
        if t.listwise_weight > 0:
            if _all_reduce_int(len(pool_rows), "min") < t.pools_per_step:  # every rank runs the same forwards
                raise ValueError(f"a worker holds fewer than train.pools_per_step={t.pools_per_step} training pools")
            pool_stream = cycle_pools(len(pool_rows), t.pools_per_step, t.seed + self.rank)
            for _ in range(self.step * t.gradient_accumulation_steps):  # what the restored run consumed
                next(pool_stream)

        wandb_run = self._init_wandb() if self.rank == 0 else None
        window = defaultdict(float)
        t_window, pairs_window, tokens_window = time.time(), 0, 0
        t_start, start_step, eval_time = time.time(), self.step, 0.0
        ckpt_every = cfg.ckpt.every_steps or t.eval_every
        while self.step < self.total_steps:
            for micro in range(t.gradient_accumulation_steps):
                epoch, idx = next(micro_stream)
                rc, rr, n_tokens = self._pair_rewards([train_rows[i] for i in idx])
                b = len(idx)
                loss = bradley_terry_loss(rc, rr, t.margin, t.center_coef)
                m = pair_metrics(rc.detach(), rr.detach())
                if pool_stream is not None:
                    lw, lw_counts, lw_metrics, lw_tokens = self._listwise([pool_rows[i] for i in next(pool_stream)])
                    window["bt_loss"] += loss.item()
                    window["listwise_loss"] += lw.item()
                    loss = loss + t.listwise_weight * lw
                    for k, v in lw_counts.items():
                        window[f"pools_{k}"] += v  # sums over the window (not means)
                    for k, v in lw_metrics.items():
                        window[k] += v
                    n_tokens += lw_tokens
                self._backward(loss, last_micro=micro == t.gradient_accumulation_steps - 1)
                window["loss"] += loss.item()
                for k, v in m.items():
                    window[k] += v
                window["n"] += 1
                pairs_window += b
                tokens_window += n_tokens  # tokens run: a packed pair counts its prompt once
            self.step += 1
            faults.after_step(t, self.step, rank=self.rank, resumed=resumed)
            first = self.step == start_step + 1  # a line after the first step: the run is alive
            if self.step % max(1, t.log_every) == 0 or self.step == self.total_steps or first:
                now = time.time()
                dt = max(now - t_window, 1e-9)
                rec = {"step": self.step, "epoch": epoch, "lr": self._lr(), "time": now}
                rec.update({f"train/{k}": v if k.startswith("pools_") else v / window["n"]
                            for k, v in window.items() if k != "n"})
                # throughput of this worker times the number of workers (ranks run in lockstep)
                rec["train/pairs_per_s"] = pairs_window * self.world / dt
                rec["train/tokens_per_s"] = tokens_window * self.world / dt
                if self.rank == 0:
                    train_time = now - t_start - eval_time  # ETA from training time only
                    eta = train_time / (self.step - start_step) * (self.total_steps - self.step)
                    say(f"step {self.step}/{self.total_steps} loss {rec['train/loss']:.4f} "
                        f"acc {rec['train/accuracy']:.3f} {rec['train/pairs_per_s']:.1f} pairs/s "
                        f"{rec['train/tokens_per_s']:.0f} tok/s elapsed {_hms(now - t_start)} "
                        f"eta {_hms(eta)} (training steps; final evaluation after)")
                if not first or self.step % max(1, t.log_every) == 0 or self.step == self.total_steps:
                    # the log_every records (metrics.jsonl, wandb) keep their cadence and windows
                    self._log(rec, wandb_run)
                    window.clear()
                    t_window, pairs_window, tokens_window = time.time(), 0, 0
            do_eval = t.eval_every and self.step % t.eval_every == 0 and self.step < self.total_steps
            do_ckpt = ckpt_every and self.step % ckpt_every == 0 and self.step < self.total_steps
            if do_eval or do_ckpt:
                metrics = {"step": self.step}
                if do_eval and periodic_val:
                    t_eval = time.time()
                    ev = self.evaluate(periodic_val)
                    metrics.update(_flat("validation", ev))
                    self._log({"step": self.step, "time": time.time(), **_flat("validation", ev)}, wandb_run)
                    if self.rank == 0:
                        say(f"step {self.step} validation accuracy {ev.get('accuracy', float('nan')):.4f} "
                              f"({ev.get('n', 0)} pairs)")
                    t_window += time.time() - t_eval  # throughput counts training time only
                    eval_time += time.time() - t_eval
                if do_ckpt:
                    self._save_and_report(metrics)
                else:
                    ray.train.report(metrics)

        if self.rank == 0:
            say(f"final evaluation: validation {len(val_rows)} pairs, "
                + ", ".join(f"{n} {len(r)}" for n, r in final_sets.items()) + f" (elapsed {_hms(time.time() - t_start)})")
        final = {"step": self.step, "validation": self.evaluate(val_rows) if val_rows else {}, "test": {},
                 "precision": {"autocast": self.autocast, "reason": self.autocast_reason,
                               "torch_threads": torch.get_num_threads()}}
        for name, rows in final_sets.items():
            final[name] = self.evaluate(rows) if rows else {}
        flat = {}
        for name, ev in final.items():
            if isinstance(ev, dict):
                flat.update(_flat(name, ev))
        self._log({"step": self.step, "time": time.time(), **flat}, wandb_run)
        self._save_and_report({"step": self.step, "final": json.dumps(final)}, final_hf=True)
        if wandb_run is not None:
            wandb_run.finish()

    def _backward(self, loss, last_micro: bool) -> None:
        t = self.cfg.train
        if t.strategy == "deepspeed":
            self.engine.backward(loss)  # scales by 1/accumulation and steps at the boundary
            self.engine.step()
            return
        sync = contextlib.nullcontext() if last_micro or not hasattr(self.engine, "no_sync") else self.engine.no_sync()
        with sync:
            (loss / t.gradient_accumulation_steps).backward()
        if last_micro:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), t.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

    def _lr(self) -> float:
        try:
            return float(self.scheduler.get_last_lr()[0])
        except Exception:
            return float(self.optimizer.param_groups[0]["lr"])

    def _log(self, rec: dict, wandb_run) -> None:
        if self.rank != 0:
            return
        self.history.append(rec)
        if wandb_run is not None:
            wandb_run.log({k: v for k, v in rec.items() if isinstance(v, (int, float))}, step=rec["step"])

    def _init_wandb(self):
        lc = self.cfg.logging
        if lc.wandb_mode == "disabled":
            return None
        return wandb.init(project=lc.wandb_project, name=lc.run_name or self.run_name, mode=lc.wandb_mode,
                          config=to_dict(self.cfg), dir=os.environ.get("WANDB_DIR") or self.wandb_dir,
                          reinit="create_new")


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _flat(prefix: str, ev: dict) -> dict:
    """Scalar metrics of an evaluation summary, flattened for report()/wandb."""
    out = {}
    for k, v in ev.items():
        if isinstance(v, (int, float)):
            out[f"{prefix}/{k}"] = v
        elif k == "by_error_type":
            out.update({f"{prefix}/accuracy/{et}": g["accuracy"] for et, g in v.items()})
    return out
