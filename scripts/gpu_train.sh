#!/usr/bin/env bash
# One command on a fresh GPU machine (repo + data/corpora/export copied in):
#   OUT=/some/dir bash scripts/gpu_train.sh [--max-minutes 8] [--compile] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PY" scripts/gpu_train.py "$@"
