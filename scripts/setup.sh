#!/usr/bin/env bash
# Sets up .venv for the CPU stack: torch first, then the project with its dev and CPU-demo extras,
# then the BFCL data files (bfcl-eval without its dependencies: we read its JSON files, never
# import its modules).
#
# Where torch comes from (plain `torch==X` from PyPI is the multi-GB CUDA build on Linux):
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # an ordinary machine
#   bash scripts/setup.sh      # unset: pip's configured sources, e.g. a machine (like this one, and
#                              # CI) whose pip config offers a local CPU wheel that pip prefers
# VENV_DIR (default .venv) puts the environment elsewhere; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV_DIR=${VENV_DIR:-.venv}
TORCH_VERSION=2.13.0
[ -x "$VENV_DIR/bin/python" ] || "$PY" -m venv "$VENV_DIR"
. "$VENV_DIR/bin/activate"
pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    # --index-url, not --extra-index-url: with PyPI still in the list pip may take its CUDA build.
    pip install -q "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  else
    pip install -q "torch==$TORCH_VERSION"
  fi
fi
pip install -q -e '.[dev,cpu-demo]'
pip install -q --no-deps bfcl-eval==2026.3.23
