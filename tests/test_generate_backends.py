"""Generator backends: the shared interface, mutation and hf batch callables, retries, and the
vLLM processor config / preprocess / postprocess (the engine itself runs in tests/test_vllm_engine.py)."""

from __future__ import annotations

import json

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.generate import backends as B
from fcrm_ray.generate.config import GenerateConfig, GeneratorConfig, SamplingConfig, VLLMConfig
from fcrm_ray.generate.stages import WORK_COLUMNS, render_generation_prompt, work_row
from fcrm_ray.toolcall.schema import ERROR_TYPES, Example, normalize_tools, reference_from_bfcl

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "dict", "required": ["city"],
                         "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}}}},
         {"name": "get_time", "description": "Local time",
          "parameters": {"type": "dict", "required": ["tz"], "properties": {"tz": {"type": "string"}}}}]


def make_example(i: int) -> Example:
    return Example(id=f"ex-{i}", tools=normalize_tools(TOOLS),
                   conversation=[{"role": "user", "content": f"What's the weather in city {i}?"}],
                   reference=reference_from_bfcl([{"get_weather": {"city": [f"city{i}"], "unit": ["C", ""]}}]),
                   source="bfcl", category="simple_python")


def rows(n=3):
    return [work_row(make_example(i), shard=0, split="train", obfuscated=False) for i in range(n)]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return B.build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


# --- config ----------------------------------------------------------------------------------

def test_config_files_load_and_name_generators():
    cpu = load_config(GenerateConfig, "configs/generate/cpu.yaml")
    gpu = load_config(GenerateConfig, "configs/generate/gpu.yaml")
    assert {g.backend for g in cpu.active_generators()} == {"mutation", "hf"}
    vllm = [g for g in gpu.active_generators() if g.backend == "vllm"]
    assert len(vllm) >= 4 and any(g.vllm.tensor_parallel_size > 1 for g in vllm)
    assert all(set(g.mutation.mix) <= set(ERROR_TYPES) for g in cpu.generators)


@pytest.mark.parametrize("override, key", [
    ("output.shard_size=0", "output.shard_size"),
    ("splits.mode=bogus", "splits.mode"),
    ("obfuscation.fraction=2", "obfuscation.fraction"),
])
def test_bad_config_names_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(GenerateConfig, "configs/generate/cpu.yaml", [override])


def test_generator_list_validation_names_index():
    cfg = GenerateConfig(generators=[GeneratorConfig(name="m"), GeneratorConfig(name="x", backend="hf", model="")])
    with pytest.raises(ConfigError, match=r"generators\[1\]\.model"):
        cfg.validate()
    cfg = GenerateConfig(generators=[GeneratorConfig(name="a"), GeneratorConfig(name="a")])
    with pytest.raises(ConfigError, match="duplicate generator name"):
        cfg.validate()
    bad = GenerateConfig(generators=[GeneratorConfig(name="m", sampling=SamplingConfig(n=0))])
    with pytest.raises(ConfigError, match=r"generators\[0\]\.sampling\.n"):
        bad.validate()


def test_units_per_example_fan_out_only_for_vllm():
    assert GeneratorConfig(backend="vllm", model="m", sampling=SamplingConfig(n=4)).units_per_example() == 4
    assert GeneratorConfig(backend="hf", model="m", sampling=SamplingConfig(n=4)).units_per_example() == 1


# --- interface + retries ---------------------------------------------------------------------

def test_make_backend_picks_class_and_tag():
    assert isinstance(B.make_backend(GeneratorConfig(backend="mutation"), 0), B.MutationBackend)
    assert isinstance(B.make_backend(GeneratorConfig(backend="hf", model="/m/qwen"), 1), B.HFBackend)



def test_vllm_backend_checks_its_model_before_any_work(tiny_lm, tmp_path):
    b = B.make_backend(GeneratorConfig(backend="vllm", model=str(tiny_lm)), 2)
    assert isinstance(b, B.VLLMBackend) and b.tag == "tiny"
    with pytest.raises(ConfigError, match=r"`generators\[2\]\.model`.*not a folder"):
        B.make_backend(GeneratorConfig(backend="vllm", model=str(tmp_path / "Qwen3-8B")), 2)


def test_retries_then_records_error_per_row():
    calls = {"n": 0}

    def flaky(rs):
        calls["n"] += 1
        if calls["n"] <= 2:  # batch fails twice (first try + 1 retry) ...
            raise RuntimeError("engine hiccup")
        if any(r["example_id"] == "ex-1" for r in rs) and len(rs) == 1:  # ... then ex-1 alone still fails
            raise ValueError("poisoned prompt")
        return [[{"text": "x", "tag": "g"}] for _ in rs]

    out = B.generate_with_retries(flaky, rows(3), "g", retries=1)
    assert [r["gen_error"] != "" for r in out] == [False, True, False]
    assert "poisoned prompt" in out[1]["gen_error"] and json.loads(out[1]["candidates"]) == []
    assert json.loads(out[0]["candidates"]) == [{"text": "x", "tag": "g"}]
    assert all(r["generator"] == "g" and r["unit"] == 0 for r in out)


def test_retry_succeeds_without_error():
    state = {"fail": 1}

    def once(rs):
        if state["fail"]:
            state["fail"] -= 1
            raise RuntimeError("transient")
        return [[] for _ in rs]

    out = B.generate_with_retries(once, rows(2), "g", retries=1)
    assert all(r["gen_error"] == "" for r in out)


# --- hf --------------------------------------------------------------------------------------

def hf_cfg(model, n=2, temperature=1.0):
    return {"tag": "tiny", "model": str(model), "retries": 0, "num_cpus": 1,
            "sampling": {"n": n, "temperature": temperature, "top_p": 0.95, "top_k": 0, "max_new_tokens": 6, "seed": 0}}


def test_hf_generator_n_samples_seeded_per_example(tiny_lm):
    gen = B.HFGenerator(hf_cfg(tiny_lm))
    rs = rows(3)
    a = gen.generate_rows(rs)
    assert [len(c) for c in a] == [2, 2, 2] and all(isinstance(c["text"], str) for cs in a for c in cs)
    # same example -> same samples whatever the batch around it (resume relies on this)
    b = gen.generate_rows([rs[2], rs[0]])
    assert b[0] == a[2] and b[1] == a[0]


def test_hf_generator_batch_call_adds_columns(tiny_lm):
    import pyarrow as pa

    gen = B.HFGenerator(hf_cfg(tiny_lm, n=1, temperature=0.0))
    out = gen(pa.Table.from_pylist(rows(2))).to_pylist()
    assert set(B.GEN_COLUMNS) | set(WORK_COLUMNS) <= set(out[0])
    assert [len(json.loads(r["candidates"])) for r in out] == [1, 1]


def test_tiny_model_prompt_carries_each_rows_tools(tiny_lm):
    from transformers import AutoTokenizer

    from fcrm_ray.generate.stages import render_generation_prompt

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    ex = make_example(0)
    p = render_generation_prompt(tok, ex.tools, ex.conversation)
    assert "get_weather" in p and "get_time" in p and p.endswith("<assistant>")
    assert "get_time" not in render_generation_prompt(tok, ex.tools[:1], ex.conversation)


# --- vLLM (config, preprocess, postprocess) --------------------------------------------------

def vllm_gen(model, **kw):
    return GeneratorConfig(name="Qwen3-8B", backend="vllm", model=str(model), batch_size=32,
                           sampling=SamplingConfig(n=3, temperature=0.8, top_p=0.9, max_new_tokens=128, seed=7),
                           vllm=VLLMConfig(tensor_parallel_size=2, replicas=3, max_model_len=4096,
                                           engine_kwargs={"enforce_eager": True}), **kw)


def test_vllm_processor_config_from_generator_config(tiny_lm):
    pytest.importorskip("ray.data.llm")
    pc = B.vllm_processor_config(vllm_gen(tiny_lm, num_cpus=2), str(tiny_lm), device="cuda")
    assert pc.model_source == str(tiny_lm)
    assert pc.engine_kwargs["tensor_parallel_size"] == 2 and pc.engine_kwargs["gpu_memory_utilization"] == 0.9
    assert pc.engine_kwargs["max_model_len"] == 4096 and pc.engine_kwargs["enforce_eager"] is True
    assert pc.concurrency == (3, 3) and pc.batch_size == 32 and pc.placement_group_config is None
    # we render prompts ourselves (per-row tools), so Ray's template/tokenize stages are off
    for stage in (pc.chat_template_stage, pc.tokenize_stage, pc.detokenize_stage):
        assert stage is False or getattr(stage, "enabled", True) is False
    assert pc.should_continue_on_error is True
    cpu = B.vllm_processor_config(vllm_gen(tiny_lm, num_cpus=2), str(tiny_lm), device="cpu")
    # CPU: a CPU bundle per TP worker instead of GPUs; no GPU memory fraction
    assert [b["CPU"] for b in cpu.placement_group_config["bundles"]] == [2.0, 2.0]
    assert not any(b.get("GPU") for b in cpu.placement_group_config["bundles"])
    assert "gpu_memory_utilization" not in cpu.engine_kwargs
    assert "VLLM_CPU_KVCACHE_SPACE" in cpu.runtime_env["env_vars"]


def test_vllm_build_processor_on_this_machine(ray_local, tiny_lm):
    pytest.importorskip("ray.data.llm")
    proc = B.make_backend(vllm_gen(tiny_lm), 1).build_processor()
    names = list(getattr(proc, "stages", {}))
    assert names == ["vLLMEngineStage"], names  # no ChatTemplateStage / TokenizeStage / DetokenizeStage
    stage = proc.stages["vLLMEngineStage"]
    assert stage.fn_constructor_kwargs["engine_kwargs"]["tensor_parallel_size"] == 2
    assert stage.map_batches_kwargs["compute"].min_size == 3 == stage.map_batches_kwargs["compute"].max_size
    assert stage.map_batches_kwargs.get("num_gpus", 0) == 0  # this machine has none: CPU bundles


def test_vllm_preprocess_renders_tools_and_seeds_each_sample(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    be = B.make_backend(vllm_gen(tiny_lm), 1)
    pre = be.preprocess(tokenizer=tok)
    fanned = B.fan_out_samples(rows(1)[0], 3)
    assert [r["unit"] for r in fanned] == [0, 1, 2]
    outs = [pre(r) for r in fanned]
    # token ids of exactly the rendered template: no special tokens added on top (no second BOS)
    ex = Example.from_dict(json.loads(fanned[0]["example"]))
    prompt = render_generation_prompt(tok, ex.tools, ex.conversation)
    assert "get_weather" in prompt and prompt.endswith("<assistant>")
    assert all(o["tokenized_prompt"] == tok(prompt, add_special_tokens=False)["input_ids"] for o in outs)
    assert tok.cls_token_id not in outs[0]["tokenized_prompt"]  # this tokenizer's BOS, not added
    sp = [o["sampling_params"] for o in outs]
    assert all(p["n"] == 1 and p["max_tokens"] == 128 and p["temperature"] == 0.8 for p in sp)
    assert len({p["seed"] for p in sp}) == 3  # each sample slot has its own reproducible seed
    assert sp == [pre(r)["sampling_params"] for r in fanned]


def test_vllm_outputs_become_candidates_or_errors():
    r = rows(2)
    out_rows = [{**r[0], "unit": 1, "generated_text": '[{"name": "get_weather"}]', "__inference_error__": "",
                 "prompt": "p", "sampling_params": {}},
                {**r[1], "unit": 0, "generated_text": "", "__inference_error__": "CUDA OOM"}]
    work = B.vllm_outputs_to_work_rows(out_rows, "Qwen3-8B", WORK_COLUMNS)
    assert json.loads(work[0]["candidates"]) == [{"text": '[{"name": "get_weather"}]', "tag": "Qwen3-8B"}]
    assert work[0]["unit"] == 1 and work[1]["gen_error"] == "CUDA OOM" and json.loads(work[1]["candidates"]) == []
    assert "prompt" not in work[0] and set(work[0]) == set(WORK_COLUMNS) | set(B.GEN_COLUMNS)


# --- mutation --------------------------------------------------------------------------------

def test_mutation_generator_mix_and_determinism():
    from fcrm_ray.toolcall.verify import verify

    cfg = {"tag": "mut", "seed": 3, "mix": {"incorrect_parameter_value": 2, "incorrect_function_name": 1},
           "per_type": 1, "retries": 0}
    rs = rows(3)
    a = B.MutationGenerator(cfg).generate_rows(rs)
    assert a == B.MutationGenerator(cfg).generate_rows(rs)  # seeded per (generator, example)
    assert a[1] == B.MutationGenerator(cfg).generate_rows([rs[1]])[0]  # batch composition does not matter
    for row, cands in zip(rs, a):
        ex = Example.from_dict(json.loads(row["example"]))
        types = [verify(c["text"], ex.reference, ex.tools).error_type for c in cands]
        assert set(types) <= {"incorrect_parameter_value", "incorrect_function_name"} and types
        assert types.count("incorrect_parameter_value") <= 2 and types.count("incorrect_function_name") <= 1
        assert all(c["tag"].startswith("mut:") for c in cands)
    other = B.MutationGenerator({**cfg, "seed": 4}).generate_rows(rs)
    assert other != a


def test_vllm_apply_builds_the_lazy_plan(ray_local, tiny_lm):
    """fan out n samples -> our preprocess -> the engine -> work rows (built, not run)."""
    import ray

    ds = B.make_backend(vllm_gen(tiny_lm), 1).apply(ray.data.from_items(rows(2)))
    op, names = ds._logical_plan.dag, []
    while op is not None:
        names.append(op.name)
        op = op.input_dependencies[0] if op.input_dependencies else None
    names = names[::-1]
    assert names[0] == "FromItems" and names[1].startswith("FlatMap")
    assert names[2:5] == ["Map(_preprocess)", "MapBatches(vLLMEngineStageUDF)", "Map(_postprocess)"], names
    assert not any("ChatTemplate" in n or "Tokenize" in n for n in names)


def test_stop_strings_end_samples_in_both_model_backends(tiny_lm):
    """`sampling.stop` reaches vLLM's SamplingParams and cuts transformers' samples the same way
    (the stop string itself is not kept)."""
    p = B.vllm_sampling_params({"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 8, "stop": ["\n"]}, "ex", "g", 0)
    assert p["stop"] == ["\n"]
    assert "stop" not in B.vllm_sampling_params({"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 8}, "ex", "g", 0)
    assert B._cut_at_stop(' [{"name": "f"}]\nmore\n', ["\n"]) == '[{"name": "f"}]'
    from collections import Counter

    gen = B.HFGenerator(hf_cfg(tiny_lm, n=2, temperature=1.0))  # seeded: the same samples on each call
    gen.sampling = {**gen.sampling, "max_new_tokens": 12}
    free = [c["text"] for cs in gen.generate_rows(rows(2)) for c in cs]
    stop = Counter("".join(free).replace(" ", "")).most_common(1)[0][0]  # a character the samples hold
    gen.sampling["stop"] = [stop]
    cut = [c["text"] for cs in gen.generate_rows(rows(2)) for c in cs]
    assert all(stop not in t for t in cut) and all(f.startswith(c) for f, c in zip(free, cut))
    assert cut != free

