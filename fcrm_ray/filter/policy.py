"""Keep/drop policies over rewards: absolute threshold, global top fraction, per-source top fraction.

Quantile policies need the reward distribution before any decision, so the pipeline scores the
whole corpus first (writing scored shards) and feeds every reward into a `QuantileSketch` per
source while streaming over those shards once; then each unit is kept iff its reward is at least
its threshold. Ties at the threshold are all kept, so a top-fraction policy can keep slightly more
than `fraction` when many rewards are equal.

The sketch is a uniform reservoir sample (Vitter's algorithm R, seeded): exact - it holds every
value - while a source has at most `capacity` units (200k by default, 1.6 MB of float64), and an
unbiased sample beyond that, with a quantile rank error of about 1/sqrt(capacity) (~0.2% at 200k).
Memory is O(capacity), never O(corpus).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


class QuantileSketch:
    """Reservoir of rewards; `top_threshold` is exact while `count <= capacity`."""

    def __init__(self, capacity: int = 200_000, seed: int = 0):
        self.capacity = capacity
        self.count = 0
        self._values = np.empty(min(capacity, 1024), dtype=np.float64)
        self._rng = random.Random(seed)

    def add(self, x: float) -> None:
        if self.count < self.capacity:
            if self.count == len(self._values):
                self._values = np.resize(self._values, min(self.capacity, 2 * len(self._values)))
            self._values[self.count] = x
        else:
            j = self._rng.randrange(self.count + 1)
            if j < self.capacity:
                self._values[j] = x
        self.count += 1

    def extend(self, xs: Iterable[float]) -> None:
        for x in xs:
            self.add(float(x))

    @property
    def exact(self) -> bool:
        return self.count <= self.capacity

    def top_threshold(self, fraction: float) -> float:
        """The k-th largest value, k = ceil(fraction * n): `reward >= it` keeps exactly k of n
        distinct values (the top `fraction`)."""
        n = min(self.count, self.capacity)
        if n == 0:
            return float("inf")
        k = max(1, math.ceil(fraction * n - 1e-9))
        return float(np.partition(self._values[:n], n - k)[n - k])


@dataclass
class Policy:
    """A fitted policy: `keep(reward, source)`."""

    kind: str
    threshold: float = 0.0
    fraction: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)  # per source (quantile policies)
    exact: bool = True

    def keep(self, reward: float | None, source: str) -> bool:
        if reward is None:
            return False
        if self.kind == "threshold":
            return reward >= self.threshold
        if self.kind == "top_fraction":
            return reward >= self.thresholds["*"]
        return reward >= self.thresholds.get(source, float("inf"))

    def describe(self) -> dict:
        return {"kind": self.kind, "threshold": self.threshold, "fraction": self.fraction,
                "thresholds": self.thresholds, "exact": self.exact}


def needs_distribution(kind: str) -> bool:
    return kind in ("top_fraction", "per_source_top_fraction")


def fit_policy(kind: str, threshold: float = 0.0, fraction: float = 1.0,
               sketches: dict[str, QuantileSketch] | None = None) -> Policy:
    """Thresholds from the sketches: `sketches["*"]` (all units) and one per source. Keeping the
    top `fraction` means a threshold at the (1 - fraction) quantile (`top_threshold`)."""
    if kind == "threshold":
        return Policy(kind, threshold=threshold)
    sketches = sketches or {}
    if kind == "top_fraction":
        s = sketches.get("*") or QuantileSketch()
        return Policy(kind, fraction=fraction, thresholds={"*": s.top_threshold(fraction)}, exact=s.exact)
    per = {src: s.top_threshold(fraction) for src, s in sketches.items() if src != "*"}
    return Policy(kind, fraction=fraction, thresholds=per, exact=all(s.exact for s in sketches.values()))
