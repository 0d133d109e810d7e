"""Our Ray Data stages run with Ray's deprecation warnings as errors where they point at our code,
so a Ray API on its way out fails here, in CI, before a user sees the warning (or the next Ray
minor removes it). Ray attributes these warnings to the caller's line (`stacklevel`), so the
filter below catches our call sites and not Ray's own internal calls."""

from __future__ import annotations

import json
import warnings

import pytest

from fcrm_ray.config import load_config
from fcrm_ray.data.splits import SplitConfig
from fcrm_ray.filter import run as filter_run
from fcrm_ray.filter.config import FilterConfig
from fcrm_ray.generate import run as generate_run
from fcrm_ray.generate.config import (ChosenConfig, DedupConfig, GenerateConfig, GeneratorConfig, MutationConfig,
                                      OutputConfig, RayDataConfig, SamplingConfig, SourceConfig)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def ray_deprecations_of_ours_are_errors():
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=RayDeprecationWarning, module=r"fcrm_ray(\.|$)")
        yield


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_filter_rule_catches_a_deprecated_call_from_our_code(ray_local):
    """The rule itself: a deprecated map_batches argument, called from a module named like ours."""
    import ray

    code = compile("ds.map_batches(lambda b: b, max_retries=1)", "<fcrm_ray.example>", "exec")
    ds = ray.data.range(4)
    with pytest.raises(DeprecationWarning, match="ray_remote_args"):
        exec(code, {"__name__": "fcrm_ray.example", "ds": ds})


def test_generate_backends_use_no_deprecated_ray_api(ray_local, tmp_path):
    """Mutation as tasks and as an actor pool, and the hf backend's actor pool, on 4 examples."""
    from fcrm_ray.generate.backends import build_tiny_causal_lm

    model = str(build_tiny_causal_lm(tmp_path / "lm"))
    gens = [GeneratorConfig(name="mutation", backend="mutation", batch_size=4,
                            mutation=MutationConfig(mix={"incorrect_function_name": 1})),
            GeneratorConfig(name="mutation-actors", backend="mutation", seed=1, batch_size=4, compute="actors",
                            num_cpus=0.5),
            GeneratorConfig(name="tiny", backend="hf", model=model, batch_size=4, retries=0, num_cpus=0.5,
                            sampling=SamplingConfig(n=1, max_new_tokens=4))]
    cfg = GenerateConfig(sources=[SourceConfig(kind="bfcl", categories=["simple_python"], limit=4)],
                         splits=SplitConfig(test_categories=[], validation_fraction=0.0),
                         generators=gens, chosen=ChosenConfig(variants=1), dedup=DedupConfig(max_per_example=4),
                         out=str(tmp_path / "gen"), output=OutputConfig(shard_size=4),
                         ray=RayDataConfig(progress_bars=False))
    stats = generate_run.run(cfg)
    assert stats["examples"] == 4 and all(stats["checks"].values()), stats["checks"]
    assert {g for g, c in stats["by_generator"].items() if c["candidates"]} == {"mutation", "mutation-actors", "tiny"}


def test_filter_scoring_pool_uses_no_deprecated_ray_api(ray_local, tiny_rm, tmp_path):
    tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                    "required": ["city"]}}]
    rows = [{"id": f"r{i}", "query": f"Weather in city {i}?", "tools": json.dumps(tools),
             "answers": json.dumps([{"name": "get_weather", "arguments": {"city": f"c{i}"}}])} for i in range(6)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(FilterConfig, None, [f"input.path={tmp_path / 'in'}", f"out={tmp_path / 'out'}",
                                           f"model.path={tiny_rm}", "model.max_length=128", "actors.batch_size=8",
                                           "actors.num_cpus_per_actor=1"])
    stats = filter_run.run(cfg)
    assert stats["units_in"] == 6
