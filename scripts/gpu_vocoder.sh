#!/usr/bin/env bash
# Issue 7's HiFi-GAN fine-tune as one command on a fresh GPU machine that got the repo plus
# gpu_carry/vocoder/ (made here by scripts/vocoder_prepare.py: the fp16 universal HiFi-GAN,
# FLAC pieces + manifest.jsonl, soundfile/cffi wheels):
#
#   OUT=/some/dir bash scripts/gpu_vocoder.sh [--max-minutes 7] [--set key=value ...]
#
# Installs the carried soundfile wheel when the Python there cannot read FLAC, trains
# configs/vocoder_gpu.toml from the carried folder (run + latest export under $WORK; rerun =
# resume) and publishes each minute's fp16 vocoder export to $OUT as model-stepN.tar.part*
# (<= 15 MiB files) with metrics.jsonl and summary.json. Back here, unpack and compare:
#   .venv/bin/python -c "import sys; sys.path[:0] = ['scripts']; from pathlib import Path; \
#       from gpu_train import unpublish; print(unpublish(Path(sys.argv[1]), Path(sys.argv[2])))" OUTDIR runs/vocoder_ft
#   .venv/bin/python benchmarks/vocoder.py --vocoder finetuned=runs/vocoder_ft/model
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
CARRY=${CARRY:-$PWD/gpu_carry/vocoder}
WORK=${WORK:-/tmp/audiodiff_vocoder_work}
: "${OUT:?set OUT}"
if [ ! -f "$CARRY/manifest.jsonl" ] || [ ! -f "$CARRY/hifigan-universal/model.safetensors" ]; then
    echo "no $CARRY/manifest.jsonl or hifigan-universal/:" \
        "run scripts/vocoder_prepare.py here and carry gpu_carry/vocoder" >&2
    exit 2
fi
if ! "$PY" -c "import soundfile" 2>/dev/null; then
    SITE=${SITE:-/tmp/audiodiff_site}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        --find-links "$CARRY/wheels" soundfile cffi pycparser
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import soundfile as sf; print('[gpu_vocoder] soundfile', sf.__version__, 'from the carried wheels')"
fi
exec "$PY" scripts/gpu_train.py --config configs/vocoder_gpu.toml --export "" --out "$WORK" --publish "$OUT" \
    --set "data.manifest=\"$CARRY/manifest.jsonl\"" --set "init_from=\"$CARRY/hifigan-universal\"" "$@"
