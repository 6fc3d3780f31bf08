#!/usr/bin/env bash
# GPU check, one command on a machine with an NVIDIA GPU: bash bench/gpu_check.sh
#
# Installs the project with PyPI's CUDA build of torch (in .venv-gpu, beside the CPU
# .venv of `make install`), builds the starter models, then bench/gpu_check.py trains a
# classification job through the service with use_gpu=true (bf16 mixed precision) and with
# use_gpu=false, serves chat on the GPU and on the CPU, and prints samples/s and tokens/s
# of each with the GPU ÷ CPU ratio (bench/results/gpu_check.json).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
PROFILE=${PROFILE:-full}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
# PyPI's Linux wheel of torch carries the CUDA runtime (the CPU .venv pins the CPU wheel)
"$VENV/bin/pip" install --quiet "torch==2.13.0"
"$VENV/bin/pip" install --quiet -e '.[dev]'
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'"
"$VENV/bin/tuneserve" models build --profile "$PROFILE" --only sentiment --only chat
"$VENV/bin/python" -m bench.gpu_check --profile "$PROFILE" "$@"
