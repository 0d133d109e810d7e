"""One config system: OmegaConf YAML + `key=value` dotlist overrides, validated into dataclasses.

Every command takes `--config FILE` and trailing overrides; the result is a typed dataclass.
Unknown keys, wrong types and failed `validate()` checks raise `ConfigError` naming the key,
before any Ray cluster or worker starts.

A YAML may start from another one with `extends: other.yaml` (a path relative to the file; the
other file's keys are merged first, so one model family's shared settings live in one file). A
schema's `RENAMED` class attribute maps keys that no longer exist to what replaces them, so an
old config fails with a message naming the new key instead of "unknown key" (`RESHAPED`: the
same for a key that still exists with another shape, named when its old value does not fit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

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
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
        renamed, reshaped = getattr(schema, "RENAMED", {}), getattr(schema, "RESHAPED", {})
        if path is not None:
            raw = load_yaml(path)
            _check_renamed(renamed, _dotted_keys(OmegaConf.to_container(raw)), f"--config {path}")
            for key, hint in reshaped.items():  # a section given in its old, flat shape
                if (v := OmegaConf.select(raw, key)) is not None and not OmegaConf.is_dict(v):
                    raise ConfigError(f"config key `{key}` (--config {path}): {hint}")
            cfg = OmegaConf.merge(cfg, raw)
        _check_renamed(renamed, [o.split("=", 1)[0] for o in overrides], "override")
        for o in overrides:
            key = o.split("=", 1)[0]
            if key in reshaped and not OmegaConf.is_dict(OmegaConf.from_dotlist([o])[key]):
                raise ConfigError(f"config key `{key}` (override): {reshaped[key]}")
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


EXTENDS = "extends"


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> Any:
    """A config file as an OmegaConf node, with its `extends:` chain merged underneath it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: no such file: {p}" if not _seen else f"`{EXTENDS}` in {_seen[-1]}: no such file: {p}")
    if p.resolve() in _seen:
        raise ConfigError(f"`{EXTENDS}`: {p} extends itself (through {' -> '.join(str(x) for x in _seen)})")
    node = OmegaConf.load(p)
    base = node.pop(EXTENDS, None) if OmegaConf.is_dict(node) else None
    if base is None:
        return node
    if not isinstance(base, str) or not base:
        raise ConfigError(f"config key `{EXTENDS}` in {p}: expected a YAML path, got {base!r}")
    return OmegaConf.merge(load_yaml(p.parent / base, _seen + (p.resolve(),)), node)


def _dotted_keys(tree: Any, prefix: str = "") -> list[str]:
    """Every key path of a nested mapping (`a`, `a.b`, `gens.0.n`, ...): what a YAML file sets."""
    items = tree.items() if isinstance(tree, Mapping) else enumerate(tree) if isinstance(tree, list) else ()
    out = []
    for k, v in items:
        key = f"{prefix}{k}"
        out += [key, *_dotted_keys(v, key + ".")]
    return out


def _check_renamed(renamed: Mapping[str, str], keys: Sequence[str], where: str) -> None:
    """Fail on a key listed in `renamed` (a `*` segment matches any one key: `models.*.old`)."""
    hits = []
    for key in keys:
        parts = key.split(".")
        for old, new in renamed.items():
            pattern = old.split(".")
            if len(parts) >= len(pattern) and all(p in ("*", k) for p, k in zip(pattern, parts)):
                hits.append((len(pattern), len(parts), key, new))
    if hits:  # the most specific rename: `split.seed` says more than `split`
        _, _, key, new = max(hits, key=lambda h: h[:2])
        raise ConfigError(f"config key `{key}` ({where}) was renamed: use {new}")


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


def config_arg_parser(prog: str, description: str = "", out: bool = False) -> argparse.ArgumentParser:
    """Parser with the shared `--config FILE` option and trailing `key=value` overrides; with `out`,
    also `--out DIR`, the stage's `out` key."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", help="OmegaConf YAML file")
    if out:
        p.add_argument("--out", help="output folder (the config key `out`)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=1e-5")
    return p


def parse_config_args(schema: type[T], argv: Sequence[str] | None, prog: str, description: str = "",
                      parser: argparse.ArgumentParser | None = None) -> tuple[T, argparse.Namespace]:
    """Parse `--config` + overrides (+ any extra options on `parser`) into (config, args). `--out`
    sets the key `out` (explicit `out=...` overrides win)."""
    parser = parser or config_arg_parser(prog, description)
    args = parser.parse_intermixed_args(argv)  # `--out DIR` may come after key=value overrides
    flags = [f"out={json.dumps(args.out)}"] if getattr(args, "out", None) is not None else []
    return load_config(schema, args.config, [*flags, *args.overrides]), args


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
