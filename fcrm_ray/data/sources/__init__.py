"""Readers that turn public tool-calling datasets into canonical `Example`s: one module per input
format (`bfcl`, `xlam`, `openai_chat`, `sharegpt`, `canonical`), raw rows from files in `files`,
and the choice of reader by format in `dispatch` (`read_examples`, `convert_row`).

Accounting: a reader works on *items* — one per row for one-example-per-row formats, one per
call turn for chat formats (a chat row without any call turn is one quarantined item). Every item
is either kept (yielded) or quarantined with a reason, so `items == kept + quarantined` always
(`ReadStats.check()`). With `quarantine=None` a bad item raises `SchemaError` instead of being
dropped silently.
"""

from fcrm_ray.data.sources.bfcl import bfcl_example, read_bfcl, reference_from_exec
from fcrm_ray.data.sources.canonical import canonical_example
from fcrm_ray.data.sources.dispatch import (
    FORMATS,
    convert_row,
    example_row,
    read_examples,
    row_items,
    sniff_format,
    write_examples,
)
from fcrm_ray.data.sources.files import ReadStats, iter_rows
from fcrm_ray.data.sources.openai_chat import openai_examples
from fcrm_ray.data.sources.sharegpt import sharegpt_examples, tools_from_system_prompt
from fcrm_ray.data.sources.xlam import xlam_example, xlam_tool

__all__ = [
    "FORMATS", "ReadStats", "bfcl_example", "canonical_example", "convert_row", "example_row", "iter_rows",
    "openai_examples", "read_bfcl", "read_examples", "reference_from_exec", "row_items", "sharegpt_examples",
    "sniff_format", "tools_from_system_prompt", "write_examples", "xlam_example", "xlam_tool",
]
