"""The one vLLM engine builder (`fcrm_ray/vllm_engine.py`) and the engine arguments each vLLM path
passes through it: generation (`ray.data.llm`), the pairwise judge, Best-of-N pools. vLLM is not
installed here: the in-process paths run against a stand-in `vllm` module that records its calls."""

import math
import sys
import types
from types import SimpleNamespace as NS

import pytest

from fcrm_ray.config import ConfigError
from fcrm_ray.vllm_engine import build_llm, engine_kwargs

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_engine_kwargs_pass_only_what_is_set_and_extra_wins():
    assert engine_kwargs(tensor_parallel_size=2, max_model_len=4096) == {"tensor_parallel_size": 2, "max_model_len": 4096}
    kw = engine_kwargs(tensor_parallel_size=1, max_model_len=8192, trust_remote_code=False, seed=0,
                       extra={"max_model_len": 2048, "enforce_eager": True})
    assert kw == {"tensor_parallel_size": 1, "max_model_len": 2048, "trust_remote_code": False, "seed": 0,
                  "enforce_eager": True}


def test_build_llm_without_vllm_names_the_config_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a CPU-only machine
    with pytest.raises(ConfigError, match=r"config key `pools.backend`: vllm needs vLLM on a GPU machine"):
        build_llm("m", {}, config_key="pools.backend", what="vllm")


@pytest.fixture()
def fake_vllm(monkeypatch):
    """A `vllm` module whose LLM answers "yes" (or the scripted outputs) and records every call."""
    calls: dict = {}

    class Tokenizer:
        chat_template = None  # generation prompts fall back to the plain template

        def apply_chat_template(self, messages, **kw):
            return "\n".join(m["content"] for m in messages)

    class LLM:
        def __init__(self, **kw):
            calls["llm"] = kw

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, params):
            calls["prompts"] = prompts
            calls["params"] = params.kw
            yes = {1: NS(decoded_token=" yes", logprob=math.log(0.75)), 2: NS(decoded_token="no", logprob=math.log(0.25))}
            n = params.kw.get("n", 1)
            return [NS(outputs=[NS(text=f"yes {i}", logprobs=[yes]) for i in range(n)]) for _ in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return calls


def test_judge_builds_its_engine_and_scores_from_logprobs(fake_vllm):
    from fcrm_ray.evaluate.judge import score_judge
    from fcrm_ray.evaluate.config import JudgeConfig

    rows = [{"tools": TOOLS, "conversation": [{"role": "user", "content": "weather in Paris?"}],
             "chosen_output": "a", "rejected_output": "b"}]
    jcfg = JudgeConfig(tensor_parallel_size=2, max_model_len=4096, gpu_memory_utilization=0.8, top_logprobs=5, max_tokens=3)
    chosen, rejected, stats = score_judge(rows, "/models/judge", jcfg, trust_remote_code=True)
    assert fake_vllm["llm"] == {"model": "/models/judge", "tensor_parallel_size": 2, "max_model_len": 4096,
                                "gpu_memory_utilization": 0.8, "trust_remote_code": True}
    assert fake_vllm["params"] == {"temperature": 0.0, "max_tokens": 3, "logprobs": 5}
    assert len(fake_vllm["prompts"]) == 2 and stats == {"backend": "vllm_judge", "prompts": 2}
    assert chosen == pytest.approx([0.75]) and rejected == pytest.approx([0.75])


def test_bon_pools_build_their_engine(fake_vllm):
    from fcrm_ray.evaluate.bon import vllm_pools
    from fcrm_ray.evaluate.config import PoolsConfig
    from fcrm_ray.toolcall.schema import Example, normalize_tools, reference_from_bfcl

    ex = Example(id="ex-0", tools=normalize_tools(TOOLS), conversation=[{"role": "user", "content": "weather in Paris?"}],
                 reference=reference_from_bfcl([{"get_weather": {"city": ["Paris"]}}]), source="bfcl", category="simple")
    p = PoolsConfig(backend="vllm", model="/models/gen", pool_size=3, temperature=0.7, top_p=0.9, max_new_tokens=64,
                    seed=5, tensor_parallel_size=2, max_model_len=4096)
    assert vllm_pools([ex], p) == [["yes 0", "yes 1", "yes 2"]]
    assert fake_vllm["llm"] == {"model": "/models/gen", "tensor_parallel_size": 2, "max_model_len": 4096, "seed": 5}
    assert fake_vllm["params"] == {"n": 3, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 5}
    assert "get_weather" in fake_vllm["prompts"][0]


def test_generation_engine_kwargs():
    from fcrm_ray.generate.backends import vllm_engine_kwargs
    from fcrm_ray.generate.config import GeneratorConfig, VLLMConfig

    g = GeneratorConfig(name="Qwen3-8B", backend="vllm", model="/models/Qwen3-8B", trust_remote_code=True,
                        vllm=VLLMConfig(tensor_parallel_size=2, pipeline_parallel_size=2, max_model_len=4096,
                                        gpu_memory_utilization=0.85, engine_kwargs={"enforce_eager": True,
                                                                                    "enable_prefix_caching": False}))
    assert vllm_engine_kwargs(g) == {"tensor_parallel_size": 2, "pipeline_parallel_size": 2, "max_model_len": 4096,
                                     "gpu_memory_utilization": 0.85, "trust_remote_code": True,
                                     "enable_prefix_caching": False, "enforce_eager": True}
