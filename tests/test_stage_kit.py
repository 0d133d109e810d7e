"""One vocabulary for every stage (issue 18): the same concept has the same key in every stage
config, old spellings fail naming the new key, and a model family sets its token limit once."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from fcrm_ray.common.ray_cluster import ActorPoolConfig, RayConfig
from fcrm_ray.common.scorer import ScorerConfig
from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.evaluate.config import BonConfig, PairwiseConfig, RobustnessConfig
from fcrm_ray.filter.config import FilterConfig
from fcrm_ray.generate.config import GenerateConfig
from fcrm_ray.serve.config import ModelConfig, ServeConfig
from fcrm_ray.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"train": TrainConfig, "generate": GenerateConfig, "pairwise": PairwiseConfig, "robustness": RobustnessConfig,
          "bon": BonConfig, "filter": FilterConfig, "serve": ServeConfig}
SCORING = {"pairwise": PairwiseConfig, "robustness": RobustnessConfig, "bon": BonConfig, "filter": FilterConfig}


def _fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}



@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_has_ray_and_one_output_key(name):
    cfg = STAGES[name]()
    fields = _fields(STAGES[name])
    if name != "bon":  # eval bon scores in-process, without Ray
        assert isinstance(cfg.ray, RayConfig), name
    if name != "serve":  # the service writes no folder
        assert "out" in fields and "output_dir" not in fields, name
    assert not {"ray_address", "ray_num_cpus", "model_path"} & set(fields), name
    if "output" in fields:
        assert "dir" not in _fields(type(cfg.output)), name


@pytest.mark.parametrize("name", sorted(SCORING))
def test_every_scoring_stage_names_its_model_model_path(name):
    cfg = SCORING[name]()
    assert isinstance(cfg.model, ScorerConfig) and "path" in _fields(ScorerConfig)
    assert not {"batch_size", "max_length", "device", "dtype", "autocast", "trust_remote_code"} & set(_fields(SCORING[name]))
    if "actors" in _fields(SCORING[name]):
        assert isinstance(cfg.actors, ActorPoolConfig)
    assert issubclass(ModelConfig, ScorerConfig)  # serve: models.<name>.path, .max_length, ... the same keys


@pytest.mark.parametrize("cls, old, new", [
    (PairwiseConfig, "max_length=64", "`model.max_length`"),
    (PairwiseConfig, "ray.num_actors=2", "`actors.num_actors`"),
    (RobustnessConfig, "device=cuda", "`model.device`"),
    (BonConfig, "batch_size=4", "`model.batch_size`"),
    (FilterConfig, "scoring.model_path=m", "`model.path`"),
    (FilterConfig, "output.dir=x", "`out`"),
    (GenerateConfig, "output.dir=x", "`out`"),
    (GenerateConfig, "generators.0.max_restarts=3", "no key: Ray Data restarts"),
    (ServeConfig, "ray_address=auto", "`ray.address`"),
])
def test_old_spellings_fail_naming_the_new_key(cls, old, new):
    with pytest.raises(ConfigError, match=re.escape(f"`{old.split('=')[0]}`") + ".*renamed: use " + re.escape(new)):
        load_config(cls, None, [old])


@pytest.mark.parametrize("cls", [PairwiseConfig, BonConfig])
def test_model_given_as_a_bare_path_says_what_replaced_it(cls, tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("model: [runs/rm]\n" if cls is PairwiseConfig else "model: runs/rm\n")
    with pytest.raises(ConfigError, match="model.path"):
        load_config(cls, old)


def test_max_length_is_set_once_per_model_family():
    """A number for the token limit appears only in a family's training YAML; every scoring stage
    reads it from the trained model (null), and no pipeline override sets it again."""
    numeric = []
    for p in sorted((ROOT / "configs").rglob("*.yaml")):
        text = p.read_text()
        numeric += [(p.relative_to(ROOT / "configs").as_posix(), m) for m in re.findall(r"max_length[:=]\s*(\d+)", text)]
    assert sorted(f for f, _ in numeric) == ["train/cpu-gemma3-270m.yaml", "train/cpu-tiny-qwen3.yaml", "train/cpu.yaml",
                                            "train/qwen3.yaml"], numeric
    for name in ("1.7b", "4b", "8b", "14b"):
        raw = yaml.safe_load((ROOT / f"configs/train/qwen3-{name}.yaml").read_text())
        assert raw["extends"] == "qwen3.yaml" and "max_length" not in raw.get("data", {})
