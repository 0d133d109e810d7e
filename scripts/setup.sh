#!/usr/bin/env bash
# Sets up .venv for the CPU stack: torch's CPU wheel first (plain `torch` would pull a multi-GB
# CUDA build), then the project with its dev and CPU-demo extras, then the BFCL data files
# (bfcl-eval without its dependencies: we read its JSON files, never import its modules).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0
pip install -q -e '.[dev,cpu-demo]'
pip install -q --no-deps bfcl-eval==2026.3.23
