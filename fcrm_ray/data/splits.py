"""Seeded train / validation / test assignment, decided per example.

The split of an example depends only on (seed, example id, category) — never on which other
examples are present or in what order — so re-reading, filtering or obfuscating a data set keeps
every example in the same split, and no example (nor any pair or obfuscated copy built from it)
can end up in two splits.

Modes:
- `by_category` (the default, the paper's out-of-domain protocol):
  test = the named test categories (default: BFCL's non-live ones, so no tool catalog of the test
  set is seen in training); train/validation = the named train categories, or, when that list is
  empty (the default), every other category — for BFCL single-turn that is the live ones.
  Validation is carved out of the train categories by example hash. A category in neither list
  (only possible with a non-empty train list) is left out (`None`).
- `by_example`: the example hash alone picks train / validation / test by the
  fractions.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from fcrm_ray.config import ConfigError
from fcrm_ray.paths import BFCL_NON_LIVE

SPLITS = ("train", "validation", "test")
MODES = ("by_category", "by_example")
_OLD_MODES = {"out_of_domain": "by_category", "random": "by_example"}  # generate's former `split.strategy` values


@dataclass
class SplitConfig:
    mode: str = "by_category"
    seed: int = 0
    # by_category
    train_categories: list[str] = field(default_factory=list)  # empty = every category not in test
    test_categories: list[str] = field(default_factory=lambda: list(BFCL_NON_LIVE))
    # of the train categories' examples. 0.25, not 0.1: the real-output validation split
    # (`validation_real`) needs enough questions to choose on (0.1 gave 74, one question moved
    # its accuracy 3.5 points); training uses a capped subset of the train pairs anyway
    validation_fraction: float = 0.25
    # by_example
    train_fraction: float = 0.8
    test_fraction: float = 0.1  # validation gets the rest

    def validate(self) -> None:
        if self.mode in _OLD_MODES:
            raise ConfigError(f"config key `splits.mode`: {self.mode!r} was renamed: use {_OLD_MODES[self.mode]!r}")
        if self.mode not in MODES:
            raise ConfigError(f"config key `splits.mode`: {self.mode!r} is not one of {MODES}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError("config key `splits.validation_fraction`: must be in [0, 1)")
        if not (0.0 <= self.train_fraction <= 1.0 and 0.0 <= self.test_fraction <= 1.0
                and self.train_fraction + self.test_fraction <= 1.0):
            raise ConfigError("config keys `splits.train_fraction` + `splits.test_fraction`: must be in [0, 1] and sum to <= 1")
        both = sorted(set(self.train_categories) & set(self.test_categories))
        if both:
            raise ConfigError(f"config keys `splits.train_categories`/`splits.test_categories`: {both} in both")


def unit_hash(seed: int | str, key: str) -> float:
    """A uniform number in [0, 1) from (seed, key); stable across processes and Python versions."""
    h = hashlib.sha256(f"fcrm-split\x00{seed}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign_split(example: Any, category: str | None = None, cfg: SplitConfig | None = None) -> str | None:
    """`train` / `validation` / `test`, or None when `by_category` places the category nowhere.

    `example` is an example id (then pass `category`) or an object with `.id` and `.category`;
    settings come from `cfg` (default `SplitConfig()`)."""
    if isinstance(example, str):
        example_id, cat = example, category or ""
    else:
        example_id, cat = str(example.id), category if category is not None else str(getattr(example, "category", ""))
    cfg = cfg or SplitConfig()
    mode = cfg.mode
    u = unit_hash(cfg.seed, example_id)
    if mode == "by_example":
        if u < cfg.train_fraction:
            return "train"
        if u < cfg.train_fraction + cfg.test_fraction:
            return "test"
        return "validation"
    if cat in cfg.test_categories:
        return "test"
    if not cfg.train_categories or cat in cfg.train_categories:
        return "validation" if u < cfg.validation_fraction else "train"
    return None


def assign_splits(examples: Iterable, cfg: SplitConfig | None = None) -> dict[str, str | None]:
    """example id -> split for objects with `.id` and `.category` (Examples). An id seen twice
    with different categories is an error: it would make the split ambiguous."""
    out: dict[str, str | None] = {}
    cats: dict[str, str] = {}
    for ex in examples:
        if ex.id in cats and cats[ex.id] != ex.category:
            raise ValueError(f"example id {ex.id!r} appears in categories {cats[ex.id]!r} and {ex.category!r}")
        cats[ex.id] = ex.category
        out[ex.id] = assign_split(ex.id, ex.category, cfg)
    return out


def split_counts(assignment: dict[str, str | None]) -> Counter:
    return Counter(s if s is not None else "unassigned" for s in assignment.values())
