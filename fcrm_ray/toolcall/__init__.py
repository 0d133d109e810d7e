"""The pure tool-call core: schema, parsing, verification, mutation, obfuscation, rendering.

Nothing under this package imports Ray or torch; every function works on plain data.
"""

from fcrm_ray.toolcall.schema import (
    ERROR_TYPES,
    Example,
    ReferenceCall,
    SchemaError,
    ToolCall,
    ToolSpec,
    calls_to_text,
    normalize_tool,
    normalize_tools,
    reference_from_bfcl,
    reference_to_bfcl,
)

__all__ = [
    "ERROR_TYPES",
    "Example",
    "ReferenceCall",
    "SchemaError",
    "ToolCall",
    "ToolSpec",
    "calls_to_text",
    "normalize_tool",
    "normalize_tools",
    "reference_from_bfcl",
    "reference_to_bfcl",
]
