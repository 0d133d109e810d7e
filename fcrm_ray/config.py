"""One config system: OmegaConf YAML + `key=value` dotlist overrides, validated into dataclasses.

Every command takes `--config FILE` and trailing overrides; the result is a typed dataclass.
Unknown keys, wrong types and failed `validate()` checks raise `ConfigError` naming the key,
before any Ray cluster or worker starts.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config value; the message names the key."""


def load_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = (),
                sections: Sequence[str] | None = None) -> T:
    """Merge defaults of `schema` <- YAML file <- dotlist overrides; return a `schema` instance.
    `sections`: validate only these top-level fields (a dataclass or a list of them) instead of the
    whole config (`fcrm cluster check` reads resource sections of configs whose paths exist only
    on the cluster)."""
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"--config: no such file: {p}")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(p))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
        for o in overrides:
            cfg = _apply_override(cfg, o)
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", None)
        msg = str(e).splitlines()[0]
        raise ConfigError(f"config key `{key}`: {msg}" if key else f"config: {msg}") from None
    if sections is None:
        _validate(obj, prefix="")
    for name in sections or ():
        part = getattr(obj, name)
        for p in part if isinstance(part, list) else [part]:
            _validate(p, name + ".")
    return obj


def _apply_override(cfg: Any, override: str) -> Any:
    """`cfg` with one `key=value` applied (value parsed as YAML, as in OmegaConf's dotlist).
    Keys may name new entries of typed dicts (`models.rm2.path=...`) or index into lists
    (`generators.0.n=4`, which a dotlist merge cannot do, so those go through `update`)."""
    key, value = override.split("=", 1)
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist([override]))
    except TypeError:  # "Cannot merge incompatible container types": the key indexes a list
        pass
    try:
        OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, merge=True)
    except OmegaConfBaseException:
        raise
    except (TypeError, IndexError, ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"config key `{key}`: cannot apply override {override!r}: {e}") from None
    return cfg


def _validate(obj: Any, prefix: str) -> None:
    """Call `validate()` on every nested dataclass; it raises ConfigError naming its keys."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        _validate(getattr(obj, f.name), f"{prefix}{f.name}.")
    check = getattr(obj, "validate", None)
    if callable(check):
        check()


def from_dict(schema: type[T], d: Any) -> T:
    """Rebuild a config dataclass from `to_dict` output (how configs travel to Ray workers and
    replicas; already validated on the driver, so paths are not re-checked here)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), d))


def to_dict(cfg: Any) -> dict:
    """A plain dict of a config dataclass (for logging and for shipping to Ray workers)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_arg_parser(prog: str, description: str = "") -> argparse.ArgumentParser:
    """Parser with the shared `--config FILE` option and trailing `key=value` overrides."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", help="OmegaConf YAML file")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=1e-5")
    return p


def parse_config_args(schema: type[T], argv: Sequence[str] | None, prog: str, description: str = "",
                      parser: argparse.ArgumentParser | None = None) -> tuple[T, argparse.Namespace]:
    """Parse `--config` + overrides (+ any extra options on `parser`) into (config, args)."""
    parser = parser or config_arg_parser(prog, description)
    args = parser.parse_args(argv)
    return load_config(schema, args.config, args.overrides), args


def require_path(value: str | None, key: str, kind: str = "any") -> None:
    """Raise ConfigError naming `key` if a path is unset or missing (kind: any|file|dir)."""
    if not value:
        raise ConfigError(f"config key `{key}` is required")
    p = Path(value)
    if "://" in str(value):  # remote URIs are checked by whoever opens them
        return
    ok = p.exists() if kind == "any" else (p.is_file() if kind == "file" else p.is_dir())
    if not ok:
        raise ConfigError(f"config key `{key}`: path does not exist: {value}")
