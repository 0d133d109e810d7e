"""Programmatic rejected calls that look like real model errors, and alternative chosen forms.

An RM trained on naive mutations (random strings, `x+1` everywhere, one output format) learns the
*surface* of the mutation and ranks real LLM errors below chance. So every mutation here imitates
an error real tool-calling models make, in FC-RewardBench's taxonomy (`schema.ERROR_TYPES`):

- incorrect_parameter_value: a value of the right type taken from the wrong span of the
  conversation (another number/entity/date the user mentioned, the value of a sibling call),
  a span one word too long or too short, an off-by-one or unit-scaled number, the same
  entity written differently ("NYC", "Boston, Massachusetts", "05/01/2023"), another enum value,
  the schema default instead of the asked value, two values swapped between parameters or calls.
- incorrect_function_name: a sibling tool of the catalog (weighted by name/description
  similarity) or a plausible hallucinated name (namespace dropped/added, snake vs camel case,
  verb synonym, "functions." prefix).
- incorrect_number_of_functions: a dropped, duplicated, merged or split call, an extra call of
  a sibling tool, a repeated call with another value.
- missing_required_parameter / missing_optional_parameter: a dropped (or renamed) required
  parameter; a dropped optional parameter the reference requires (its acceptable list lacks "").
- unexpected_parameter: a schema parameter the reference says must be absent, a parameter name
  borrowed from a sibling tool or a common one ("unit", "limit", ...), a renamed optional one.
- incorrect_parameter_type: numbers/booleans/lists as strings, int as float, a scalar for an
  array (and the reverse), a numeric-looking string as a number.
- incorrect_output_format: truncated JSON, a missing bracket (also inside a code fence),
  positional or unquoted Python arguments, prose instead of a call.

How: `candidates._Builder` lists every candidate rewrite of one example for the asked error type
(each with a `kind`, e.g. `wrong_span`, `sibling_tool`, `dropped_call`), `sampling._draw` samples
them by `GROUP_WEIGHTS` (families of kinds, weighted by how often real models make them), and each
draw is rendered in a random surface and checked with the verifier (`verify.verify`) on the exact
text: only candidates wrong with exactly the asked `error_type` are kept. The rejected side starts
from the canonical reference half the time and from another acceptable form otherwise, like the
chosen side (`chosen_variants`). Both sides share
`surface.format_calls`, which writes calls in the surfaces real models emit (JSON list, single JSON
object, `<tool_call>` blocks, Python calls, fenced JSON), so format is never a cue for which
side is which. Everything is driven by the `random.Random` passed in: same seed, same output.

Modules, each importing only those listed before it:

- `reference`: a reference's acceptable values -> concrete calls (`resolve_reference`).
- `spans`: what the conversation offers a model to (mis)copy: numbers, entities, dates, words.
- `values`: wrong values of the right type: other spans, reformatted entities/dates/times,
  off-by-one and unit mistakes, other enum values, the default.
- `names`: sibling tools by similarity, hallucinated tool and parameter names, parameters models
  add unasked (`COMMON_PARAMS`).
- `candidates`: `_Builder`, the candidate rewrites of one example per error type.
- `sampling`: `GROUP_WEIGHTS` and the verifier-checked draw: `mutate`, `mutate_all`,
  `chosen_variants`.
"""

from fcrm_ray.toolcall.mutate.names import COMMON_PARAMS
from fcrm_ray.toolcall.mutate.reference import resolve_reference
from fcrm_ray.toolcall.mutate.sampling import (
    ARG_SHUFFLE_P,
    GROUP_WEIGHTS,
    Mutation,
    chosen_variants,
    group_of,
    mutate,
    mutate_all,
)

__all__ = [
    "ARG_SHUFFLE_P",
    "COMMON_PARAMS",
    "GROUP_WEIGHTS",
    "Mutation",
    "chosen_variants",
    "group_of",
    "mutate",
    "mutate_all",
    "resolve_reference",
]
