#!/usr/bin/env bash
# The default model's training run, as one command on a fresh GPU machine that got the repo plus
# gpu_carry/ (made here by scripts/gpu_prepare.py: export.tar.xz + text_cache.safetensors):
#
#   OUT=/some/dir bash scripts/gpu_train.sh [--max-minutes 7] [--set key=value ...]
#   CARRY=gpu_carry/device OUT=/some/dir bash scripts/gpu_train.sh --config configs/gpu_continue.toml --max-minutes 8.5
#
# The first form is configs/gpu_default.toml, the from-scratch recipe of v0.1; the second, the
# next run, continues the bundled model (audiodiff/assets/default, which travels with the repo)
# on the 6-bit export that fits beside it (the config's header has the whole procedure).
# Unpacks the export into $DATA, trains (run + latest export under $WORK; rerun = resume) and
# publishes each minute's fp16 export to $OUT as model-stepN.tar.part* (<= 15 MiB files, so a
# size-capped copy back still gets them) with metrics.jsonl and summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
DATA=${DATA:-/tmp/audiodiff_data}
WORK=${WORK:-/tmp/audiodiff_work}
CARRY=${CARRY:-gpu_carry}  # where scripts/gpu_prepare.py wrote export.tar.xz and text_cache.safetensors
if [ ! -f "$DATA/export/index.json" ]; then
    mkdir -p "$DATA"
    tar xJf "$CARRY/export.tar.xz" -C "$DATA"
fi
exec "$PY" scripts/gpu_train.py --export "$DATA/export" --out "$WORK" --publish "${OUT:?set OUT}" \
    --set "data.text_cache=\"$PWD/$CARRY/text_cache.safetensors\"" "$@"
