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


def test_extends_merges_the_base_file_first(tmp_path):
    (tmp_path / "family.yaml").write_text("lr: 0.5\ntags: [7]\n")
    (tmp_path / "size.yaml").write_text("extends: family.yaml\nlr: 0.25\n")
    cfg = load_config(_Cfg, tmp_path / "size.yaml", ["gens.0.n=3"])
    assert (cfg.lr, cfg.tags, cfg.gens[0].n) == (0.25, [7], 3)  # file wins over base, override over file
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(_Cfg, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nope.yaml\n")
    with pytest.raises(ConfigError, match="`extends` in .*c.yaml: no such file"):
        load_config(_Cfg, tmp_path / "c.yaml")


@dataclass
class _Renamed(_Cfg):
    RENAMED = {"old_lr": "`lr`", "gens.*.count": "`gens[].n`"}


def test_renamed_keys_fail_naming_the_new_key(tmp_path):
    with pytest.raises(ConfigError, match=r"`old_lr` \(override\) was renamed: use `lr`"):
        load_config(_Renamed, None, ["old_lr=1"])
    p = tmp_path / "old.yaml"
    p.write_text("gens:\n  - {name: x, count: 2}\n")
    with pytest.raises(ConfigError, match=r"renamed: use `gens\[\]\.n`"):
        load_config(_Renamed, p)
    assert load_config(_Renamed, None, ["lr=1"]).lr == 1  # the new key loads


def test_shipped_qwen3_sizes_share_one_family_file():
    from fcrm_ray.train.config import TrainConfig

    paths = ["data.train_path=tests", "model.path=tests"]
    sizes = {s: load_config(TrainConfig, f"configs/train/qwen3-{s}.yaml", paths) for s in ("1.7b", "4b", "8b", "14b")}
    assert {c.data.max_length for c in sizes.values()} == {4096}
    assert len({c.train.lr for c in sizes.values()}) == 4  # what each size sets itself
