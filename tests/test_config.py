"""The shared config system: YAML <- dotlist overrides -> typed dataclass, errors name the key."""

from dataclasses import dataclass, field

import pytest

from fcrm_ray.config import ConfigError, load_config


@dataclass
class _Gen:
    name: str = "a"
    n: int = 1


@dataclass
class _Cfg:
    lr: float = 1e-5
    gens: list[_Gen] = field(default_factory=lambda: [_Gen()])
    tags: list = field(default_factory=lambda: [1, 2])

    def validate(self):
        if self.lr <= 0:
            raise ConfigError("config key `lr` must be > 0")


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.5\ngens:\n  - {name: x, n: 2}\n  - {name: y}\n")
    cfg = load_config(_Cfg, p, ["gens.1.n=7", "tags.0=9", "lr=2e-5"])
    assert cfg.lr == 2e-5 and cfg.tags == [9, 2]
    assert [(g.name, g.n) for g in cfg.gens] == [("x", 2), ("y", 7)]


@pytest.mark.parametrize("override, key", [
    ("lr=abc", "lr"), ("nope=1", "nope"), ("gens.0.q=1", "gens[0].q"), ("tags.5=1", "tags[5]"),
    ("gens.0.n=x", "gens[0].n"), ("lr=-1", "lr"),
])
def test_bad_overrides_raise_config_error_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"`{key}`".replace("[", r"\[").replace("]", r"\]")):
        load_config(_Cfg, None, [override])


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="no such file"):
        load_config(_Cfg, "/nonexistent.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(_Cfg, None, ["lr"])
