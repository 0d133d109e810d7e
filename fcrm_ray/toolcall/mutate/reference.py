"""A reference (BFCL-style lists of acceptable values per parameter) turned into concrete calls:
the canonical form, or a random acceptable one."""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from fcrm_ray.toolcall.schema import ReferenceCall, ToolCall


def _is_alt_dict(v: Any) -> bool:
    """BFCL writes nested dict answers as {key: [acceptable values]}."""
    return isinstance(v, Mapping) and all(isinstance(x, list) for x in v.values())


def resolve_reference(reference: Sequence[ReferenceCall], rng: random.Random | None = None) -> list[ToolCall]:
    """Concrete calls accepted by `reference`. `rng=None`: the canonical form (first value per
    parameter); otherwise a random acceptable value per parameter, omitted where "" allows."""
    return [ref.resolve(rng) for ref in reference]
