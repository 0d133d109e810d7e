"""Composite parallel examples: two single-call tasks asked in one user turn.

BFCL's live categories, the default training split, are almost all single-call tasks (live_parallel
and live_parallel_multiple hold 40 of 1,351 examples), while the held-out non-live split has 400
parallel ones. A reward model trained on the live split sees `incorrect_number_of_functions` only as
"an extra call is wrong" and never learns that a call set *missing* a requested call is wrong too,
which is the more common real error. `compose_parallel` joins two training examples into one:

    tools      = A's tools + B's tools (B's duplicates of A's names dropped)
    user turn  = A's request + a connective + B's request
    reference  = A's call + B's call (any order, as BFCL's parallel categories)

The mutation generator then produces subsets, supersets, swapped arguments across calls and
the other error types from the composite like from any example. Pure: plain data in, plain data
out, deterministic given the seed. Only examples of one split are combined with each other, so
no held-out text reaches training.
"""

from __future__ import annotations

import copy
import random
from typing import Sequence

from fcrm_ray.data.splits import unit_hash
from fcrm_ray.toolcall.schema import Example

CATEGORY = "composed_parallel"
CONNECTIVES = (" Also, ", " And then: ", "\n", " Additionally, ", " After that, ")


def _single_request(ex: Example) -> str | None:
    """The user text of an example that is one user turn (optionally after system turns) with
    one reference call; None for anything else."""
    if len(ex.reference) != 1:
        return None
    turns = [m for m in ex.conversation if m.get("role") != "system"]
    if len(turns) != 1 or turns[0].get("role") != "user":
        return None
    text = turns[0].get("content")
    return text.strip() if isinstance(text, str) and text.strip() else None


def compose_pair(a: Example, b: Example, rng: random.Random) -> Example | None:
    """A's and B's requests as one parallel task, or None when they do not combine (not single
    requests, the same function, or a tool name that means different things in the two catalogs)."""
    qa, qb = _single_request(a), _single_request(b)
    if qa is None or qb is None or a.reference[0].name == b.reference[0].name:
        return None
    tools_a = {t.name: t for t in a.tools}
    extra = []
    for t in b.tools:
        if t.name in tools_a:
            if tools_a[t.name].to_dict() != t.to_dict():
                return None
        else:
            extra.append(t)
    connective = rng.choice(CONNECTIVES)
    qb_joined = qb if connective == "\n" or not qb[:1].isalpha() else qb[0].lower() + qb[1:]
    system = [copy.deepcopy(m) for m in a.conversation if m.get("role") == "system"]
    return Example(
        id=f"compose:{a.id}+{b.id}",
        tools=list(a.tools) + extra,
        conversation=system + [{"role": "user", "content": qa + connective + qb_joined}],
        reference=[copy.deepcopy(a.reference[0]), copy.deepcopy(b.reference[0])],
        source=a.source,
        category=CATEGORY,
    )


def compose_parallel(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """Up to `n` composites from disjoint pairs of `examples`, taken in a seeded hash order: each
    example is paired with the next; when the two do not combine, the first is passed over."""
    if n <= 0:
        return []
    pool = sorted((e for e in examples if _single_request(e) is not None),
                  key=lambda e: unit_hash(seed, f"compose\x00{e.id}"))
    out: list[Example] = []
    waiting: Example | None = None
    for e in pool:
        if len(out) >= n:
            break
        if waiting is None:
            waiting = e
            continue
        made = compose_pair(waiting, e, random.Random(f"compose:{seed}:{waiting.id}:{e.id}"))
        if made is None:
            waiting = e
        else:
            out.append(made)
            waiting = None
    return out
