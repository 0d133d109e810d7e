"""Generator backends behind one interface: `make_backend(cfg, index).apply(ds) -> ds`.

Every backend takes work rows (see `stages.py`) and returns them with `generator`, `unit`,
`candidates` (JSON list of `{text, tag}`) and `gen_error` added, so the judge stage downstream
does not care who produced a call:

- `mutation`: programmatic negatives from `toolcall.mutate` with a configurable mix per error
  type; a Ray Data task (or actor) stage.
- `hf`: transformers `generate` in a Ray actor pool (`map_batches(HFGenerator,
  compute=ActorPoolStrategy(min_size, max_size))`); the CPU path. Each prompt is generated alone
  under its own seed, so samples do not depend on how Ray Data batched the rows (resume needs
  the same rows again); use `vllm` for throughput on GPUs.
- `vllm`: a Ray Data LLM processor (`ray.data.llm.build_processor` + `vLLMEngineProcessorConfig`).
  Prompts are rendered here with each row's `tools=` (the built-in chat-template stage does not
  pass per-row tools) and sent as token ids (exactly the template's tokens: no second BOS), so
  the chat-template, tokenize and detokenize stages are disabled. vLLM returns one output per
  request, so n samples = n requests with their own seeds. On a GPU machine the engine actors hold
  GPUs; elsewhere they run vLLM's CPU build on CPU bundles (`vllm_engine.processor_resources`).

A batch that raises is retried `retries` times, then each row once alone; rows that still fail
carry `gen_error` and are counted, not fatal. Worker crashes are Ray's job: Ray Data restarts a
dead actor and resubmits its batch, or reruns a lost task (its defaults: actor pools
`max_restarts=-1, max_task_retries=-1`, tasks `max_retries=-1`; Ray 2.60 deprecates setting them per map).
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import ray.data

from fcrm_ray.generate.config import TINY_MODEL, GeneratorConfig
from fcrm_ray.generate.stages import WORK_COLUMNS, example_seed, render_generation_prompt, row_example
from fcrm_ray.paths import minilm_dir, resolve_model_path
from fcrm_ray.toolcall.mutate import mutate_all
from fcrm_ray.toolcall.schema import ERROR_TYPES
from fcrm_ray.vllm_engine import check_model_dir, engine_device, engine_kwargs, processor_resources, use_engine_env

log = logging.getLogger(__name__)

GEN_COLUMNS = ("generator", "unit", "candidates", "gen_error")
PREPROCESS_MEMORY = 3 * 2**29  # 1.5 GiB: a vLLM prompt-rendering task (see VLLMBackend.build_processor)


# --- shared batch plumbing ---------------------------------------------------------------------

def _rows(batch) -> list[dict]:
    return batch.to_pylist() if hasattr(batch, "to_pylist") else list(batch)


def _table(rows: list[dict]):
    return pa.Table.from_pylist(rows)


def generate_with_retries(generate_rows: Callable[[list[dict]], list[list[dict]]], rows: list[dict],
                          tag: str, retries: int) -> list[dict]:
    """Run `generate_rows` (rows -> candidates per row) with retries; a failure is recorded per
    row in `gen_error` instead of failing the job."""
    def finish(row, cands, err=""):
        return {**row, "generator": tag, "unit": int(row.get("unit") or 0),
                "candidates": json.dumps(cands, ensure_ascii=False), "gen_error": err}

    last = None
    for _attempt in range(retries + 1):
        try:
            cands = generate_rows(rows)
            return [finish(r, c) for r, c in zip(rows, cands, strict=True)]
        except Exception as e:  # noqa: BLE001 - any generator error is recorded, never fatal
            last = e
            log.warning("generator %s: batch of %d failed (%s: %s)", tag, len(rows), type(e).__name__, e)
    out = []
    for r in rows:  # isolate the bad rows so one poisoned prompt does not cost the whole batch
        try:
            out.append(finish(r, generate_rows([r])[0]))
        except Exception as e:  # noqa: BLE001
            out.append(finish(r, [], f"{type(e).__name__}: {e}"[:500] or repr(last)))
    return out


# --- mutation --------------------------------------------------------------------------------

class MutationGenerator:
    """Batch callable: `toolcall.mutate` negatives per example, seeded by (generator, example) so
    a rerun reproduces the same rows."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.tag = cfg["tag"]
        self.seed = int(cfg.get("seed", 0))
        mix = cfg.get("mix") or {}
        # Only listed types with a count > 0; mutate_all walks ERROR_TYPES in its canonical order,
        # so the rng stream does not depend on how the YAML mix was ordered.
        self.mix = [(et, int(mix[et])) for et in ERROR_TYPES if int(mix.get(et, 0)) > 0]
        self.per_type = int(cfg.get("per_type", 1))
        self.retries = int(cfg.get("retries", 2))

    def generate_rows(self, rows: list[dict]) -> list[list[dict]]:
        out = []
        for row in rows:
            ex = row_example(row)
            rng = random.Random(example_seed("mutation", self.tag, self.seed, ex.id))
            muts = mutate_all(ex, rng, per_type=dict(self.mix) if self.mix else self.per_type)
            out.append([{"text": m.text, "tag": f"{self.tag}:{m.kind}"} for m in muts])
        return out

    def __call__(self, batch):
        return _table(generate_with_retries(self.generate_rows, _rows(batch), self.tag, self.retries))


# --- hf (transformers) -----------------------------------------------------------------------

# A minimal tool-aware chat template for the tiny smoke-test model (real models ship their own).
TINY_CHAT_TEMPLATE = (
    "{%- if tools %}<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n{% endif %}"
    "{%- for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>\n{% endfor %}"
    "{%- if add_generation_prompt %}<assistant>{% endif %}"
)


def build_tiny_causal_lm(out_dir: str | Path) -> Path:
    """A random-init 2-layer Qwen3 causal LM with the packaged MiniLM WordPiece tokenizer and a
    tool-aware chat template, saved to `out_dir`; for tests and the CPU smoke config only."""
    # local: torch/transformers only where a model is built or run; mutation/vLLM workers import this module too
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    tok.chat_template = TINY_CHAT_TEMPLATE
    tok.model_max_length = 16384  # MiniLM's 512 is the encoder's limit, not this decoder's
    # head_dim 32: the smallest vLLM's CPU attention runs, so the vllm backend is tested on this model too
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=16384,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    tmp = out.with_name(out.name + ".tmp")
    Qwen3ForCausalLM(cfg).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(out)  # atomic: concurrent builders never see a half-written model
    return out


def resolve_generator_model(model: str, work_dir: str | Path) -> str:
    """Local model dir for a generator; `tiny:qwen3` is built under `work_dir` on first use."""
    if model == TINY_MODEL:
        return str(build_tiny_causal_lm(Path(work_dir) / "tiny-qwen3-lm"))
    return resolve_model_path(model)


def _cut_at_stop(text: str, stop) -> str:
    """`text` up to its first stop string (transformers stops after it, vLLM drops it)."""
    for x in stop or ():
        text = text.split(x, 1)[0]
    return text.strip()


class HFGenerator:
    """Ray actor (via `map_batches(HFGenerator, compute=ActorPoolStrategy(...))`): loads the model
    once, then answers each row's prompt with `sampling.n` samples."""

    def __init__(self, cfg: dict):
        # local: torch/transformers only where a model is built or run; mutation/vLLM workers import this module too
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.tag = cfg["tag"]
        self.retries = int(cfg.get("retries", 2))
        self.sampling = cfg["sampling"]
        self.kwargs = cfg.get("chat_template_kwargs") or {}
        path = cfg["model"]
        trust = bool(cfg.get("trust_remote_code", False))
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
        dtype = getattr(torch, cfg.get("dtype") or "float32")
        self.device = cfg.get("device") or "cpu"
        if self.device == "cpu":  # one actor per reserved CPU; more threads only oversubscribe the node
            torch.set_num_threads(max(1, int(cfg.get("num_cpus") or 1)))
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust).to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def generate_rows(self, rows: list[dict]) -> list[list[dict]]:
        import torch  # local, as in __init__

        s = self.sampling
        out = []
        for row in rows:
            ex = row_example(row)
            prompt = render_generation_prompt(self.tokenizer, ex.tools, ex.conversation, self.kwargs)
            enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
            n_prompt = enc["input_ids"].shape[1]
            if self.max_len and n_prompt + s["max_new_tokens"] > self.max_len:
                raise ValueError(f"prompt of {n_prompt} tokens + max_new_tokens exceeds the model's {self.max_len}")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            # Seed per (generator, example) so the samples do not depend on batch composition.
            torch.manual_seed(example_seed("hf", self.tag, s.get("seed", 0), ex.id) % (2**63 - 1))
            sample = s["temperature"] > 0
            gen_kwargs = dict(max_new_tokens=s["max_new_tokens"], num_return_sequences=s["n"], do_sample=sample,
                              pad_token_id=self.pad_id)
            if sample:
                gen_kwargs.update(temperature=s["temperature"], top_p=s["top_p"], top_k=s.get("top_k") or None)
            if s.get("stop"):
                gen_kwargs.update(stop_strings=list(s["stop"]), tokenizer=self.tokenizer)
            with torch.no_grad():
                seqs = self.model.generate(**enc, **gen_kwargs)
            texts = [_cut_at_stop(self.tokenizer.decode(q[n_prompt:], skip_special_tokens=True), s.get("stop"))
                     for q in seqs]
            out.append([{"text": t, "tag": self.tag} for t in texts])
        return out

    def __call__(self, batch):
        return _table(generate_with_retries(self.generate_rows, _rows(batch), self.tag, self.retries))


# --- vLLM (Ray Data LLM) -----------------------------------------------------------------------

def vllm_engine_kwargs(g: GeneratorConfig, device: str | None = None) -> dict:
    v = g.vllm
    return engine_kwargs(tensor_parallel_size=v.tensor_parallel_size, pipeline_parallel_size=v.pipeline_parallel_size,
                         max_model_len=v.max_model_len, gpu_memory_utilization=v.gpu_memory_utilization,
                         trust_remote_code=g.trust_remote_code,
                         enable_prefix_caching=True,  # every sample of a prompt shares its (long, tool-laden) prefix
                         device=device, extra=v.engine_kwargs)


def vllm_processor_config(g: GeneratorConfig, model: str, device: str | None = None):
    """The `vLLMEngineProcessorConfig` for one generator: TP/PP in engine kwargs, `replicas` engine
    actors (a fixed pool) on GPUs or CPU bundles, our own prompts (chat-template/tokenize/detokenize
    stages off), and per-row errors recorded instead of failing the job."""
    # local: the API of Ray's `llm` extra (vLLM), not a declared dependency; only the vllm backend uses it
    from ray.data.llm import vLLMEngineProcessorConfig

    device = device or engine_device()
    v = g.vllm
    replicas = v.replicas
    return vLLMEngineProcessorConfig(
        model_source=model,
        engine_kwargs=vllm_engine_kwargs(g, device),
        batch_size=g.batch_size,
        concurrency=(replicas, replicas),
        max_concurrent_batches=v.max_concurrent_batches,
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,
        should_continue_on_error=True,
        **processor_resources(device=device, tensor_parallel_size=v.tensor_parallel_size,
                              pipeline_parallel_size=v.pipeline_parallel_size, num_cpus=g.num_cpus,
                              accelerator_type=v.accelerator_type),
    )


def vllm_sampling_params(sampling: dict, example_id: str, tag: str, unit: int) -> dict:
    """vLLM `SamplingParams` kwargs for one request (n=1: samples are separate rows, each seeded)."""
    params = {
        "n": 1,
        "temperature": float(sampling["temperature"]),
        "top_p": float(sampling["top_p"]),
        "max_tokens": int(sampling["max_new_tokens"]),
        "seed": example_seed("vllm", tag, sampling.get("seed", 0), example_id, unit) % (2**31 - 1),
        "detokenize": True,
    }
    if sampling.get("top_k"):
        params["top_k"] = int(sampling["top_k"])
    if sampling.get("stop"):
        params["stop"] = list(sampling["stop"])
    return params


def fan_out_samples(row: dict, n: int) -> list[dict]:
    """One request row per sample slot (`unit`), since the engine stage keeps one output per row."""
    return [{**row, "unit": u} for u in range(n)]


class VLLMPreprocess:
    """Row -> `prompt` + `sampling_params` for the engine stage. The tokenizer is loaded once per
    worker (a callable class keeps it; Ray Data builds one per map worker)."""

    def __init__(self, model: str, sampling: dict, tag: str, chat_template_kwargs: dict | None = None,
                 trust_remote_code: bool = False, tokenizer=None):
        self.model, self.sampling, self.tag = model, sampling, tag
        self.kwargs = chat_template_kwargs or {}
        self.trust_remote_code = trust_remote_code
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            # local: transformers (which loads torch) only in the workers that tokenize prompts
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model, trust_remote_code=self.trust_remote_code)
        return self._tokenizer

    def __call__(self, row: dict) -> dict:
        ex = row_example(row)
        prompt = render_generation_prompt(self.tokenizer, ex.tools, ex.conversation, self.kwargs)
        return {
            # the template already holds any BOS: as in HFGenerator, no special tokens are added
            "tokenized_prompt": self.tokenizer(prompt, add_special_tokens=False)["input_ids"],
            "sampling_params": vllm_sampling_params(self.sampling, ex.id, self.tag, int(row.get("unit") or 0)),
        }


def vllm_outputs_to_work_rows(rows: list[dict], tag: str, work_columns: tuple[str, ...]) -> list[dict]:
    """Engine output rows (`generated_text` or `__inference_error__`) -> work rows with candidates."""
    out = []
    for r in rows:
        err = str(r.get("__inference_error__") or "")
        text = r.get("generated_text")
        cands = [] if err or text is None else [{"text": str(text), "tag": tag}]
        base = {c: r.get(c) for c in work_columns}
        out.append({**base, "generator": tag, "unit": int(r.get("unit") or 0),
                    "candidates": json.dumps(cands, ensure_ascii=False), "gen_error": err[:500]})
    return out


# --- the interface ---------------------------------------------------------------------------

class GeneratorBackend:
    """`apply(ds)` adds GEN_COLUMNS to a dataset of work rows."""

    def __init__(self, cfg: GeneratorConfig, index: int, work_dir: str | Path = "."):
        self.cfg = cfg
        self.index = index
        self.tag = cfg.tag()
        self.work_dir = Path(work_dir)

    def pool(self):
        return ray.data.ActorPoolStrategy(min_size=self.cfg.min_actors, max_size=self.cfg.max_actors)

    def apply(self, ds):
        raise NotImplementedError


class MutationBackend(GeneratorBackend):
    def callable_cfg(self) -> dict:
        c = self.cfg
        return {"tag": self.tag, "seed": c.seed, "mix": dict(c.mutation.mix), "per_type": c.mutation.per_type,
                "retries": c.retries}

    def apply(self, ds):
        kw: dict[str, Any] = dict(batch_format="pyarrow", batch_size=self.cfg.batch_size, num_cpus=self.cfg.num_cpus)
        if self.cfg.compute == "actors":
            return ds.map_batches(MutationGenerator, fn_constructor_kwargs={"cfg": self.callable_cfg()},
                                  compute=self.pool(), **kw)
        return ds.map_batches(MutationGenerator(self.callable_cfg()), **kw)


class HFBackend(GeneratorBackend):
    def callable_cfg(self) -> dict:
        c = self.cfg
        return {"tag": self.tag, "model": resolve_generator_model(c.model, self.work_dir),
                "sampling": {"n": c.sampling.n, "temperature": c.sampling.temperature, "top_p": c.sampling.top_p,
                             "top_k": c.sampling.top_k, "max_new_tokens": c.sampling.max_new_tokens,
                             "seed": c.sampling.seed, "stop": list(c.sampling.stop)},
                "chat_template_kwargs": dict(c.chat_template_kwargs), "dtype": c.dtype, "device": c.device,
                "trust_remote_code": c.trust_remote_code, "retries": c.retries, "num_cpus": c.num_cpus}

    def apply(self, ds):
        return ds.map_batches(HFGenerator, fn_constructor_kwargs={"cfg": self.callable_cfg()}, batch_format="pyarrow",
                              batch_size=self.cfg.batch_size, compute=self.pool(), num_cpus=self.cfg.num_cpus,
                              num_gpus=self.cfg.num_gpus)


class VLLMBackend(GeneratorBackend):
    def __init__(self, cfg: GeneratorConfig, index: int, work_dir: str | Path = "."):
        super().__init__(cfg, index, work_dir)
        self.device = engine_device()
        use_engine_env(self.device)  # this driver imports vLLM too (Ray's engine stage config)
        self.model = resolve_generator_model(cfg.model, self.work_dir)
        # before Ray Data starts engine actors: a model vLLM cannot run fails here, naming the key
        check_model_dir(self.model, config_key=f"generators[{index}].model", device=self.device,
                        max_model_len=cfg.vllm.max_model_len,
                        dtype=vllm_engine_kwargs(cfg, self.device).get("dtype", "float32"))

    def processor_config(self):
        return vllm_processor_config(self.cfg, self.model, self.device)

    def preprocess(self, tokenizer=None) -> VLLMPreprocess:
        s = self.cfg.sampling
        sampling = {"n": s.n, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                    "max_new_tokens": s.max_new_tokens, "seed": s.seed, "stop": list(s.stop)}
        return VLLMPreprocess(self.model, sampling, self.tag, dict(self.cfg.chat_template_kwargs),
                              self.cfg.trust_remote_code, tokenizer=tokenizer)

    def build_processor(self):
        # local: the API of Ray's `llm` extra (vLLM), not a declared dependency; only the vllm backend uses it
        from ray.data.llm import build_processor

        # Prompt rendering is light on CPU: a fraction of one, so a 2-CPU machine is not deadlocked
        # by the engine actor's bundle plus these tasks. Its memory is not light (a worker holding
        # transformers and a 33 MB tokenizer.json: ~0.9 GiB measured with Gemma 3), so it is asked for.
        return build_processor(self.processor_config(), preprocess=self.preprocess(),
                               preprocess_map_kwargs={"num_cpus": 0.25, "memory": PREPROCESS_MEMORY})

    def apply(self, ds):
        n, tag = self.cfg.sampling.n, self.tag
        ds = ds.flat_map(lambda row: fan_out_samples(row, n))
        ds = self.build_processor()(ds)
        return ds.map_batches(lambda b: _table(vllm_outputs_to_work_rows(_rows(b), tag, WORK_COLUMNS)),
                              batch_format="pyarrow")


BACKEND_CLASSES = {"mutation": MutationBackend, "hf": HFBackend, "vllm": VLLMBackend}


def make_backend(cfg: GeneratorConfig, index: int, work_dir: str | Path = ".") -> GeneratorBackend:
    return BACKEND_CLASSES[cfg.backend](cfg, index, work_dir)
