"""Our own canonical rows (`Example.to_dict()`; format name `canonical`, alias `examples`)."""

from __future__ import annotations

from typing import Any, Mapping

from fcrm_ray.data.sources.fields import _check_reference
from fcrm_ray.toolcall.schema import Example, SchemaError


def canonical_example(row: Any, index: int) -> Example:
    if not isinstance(row, Mapping):
        raise SchemaError("malformed row: not a JSON object")
    ex = Example.from_dict(row)
    _check_reference(ex.reference, ex.tools)
    return ex
