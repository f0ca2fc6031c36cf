#!/usr/bin/env bash
# Fills gpu_carry/wheels (git-ignored, ~5 MB) with what scripts/gpu_latency.sh installs on the GPU
# machine, which has no internet: diffusers itself plus those of its requirements that the GPU
# image does not have.
#
#   bash scripts/gpu_latency_prepare.sh        # here, once (needs PyPI)
#   # then carry only gpu_carry/wheels, not all of gpu_carry/ (its training export is ~50 MB
#   # of the 64 MiB that a GPU call may carry)
#
# diffusers 0.42.1 requires importlib_metadata, filelock, huggingface-hub>=1.32, numpy, regex,
# requests, safetensors>=0.8, Pillow. The GPU image (python3.12, torch 2.11, transformers 5.17)
# has all of them (huggingface-hub 1.33, safetensors 0.8.0, zipp) except importlib_metadata, which
# diffusers imports only on Python < 3.8 but pip's resolver still wants, and importlib_metadata's
# own lazy-importer; zipp comes along in case the image's is older than importlib_metadata needs.
# All are pure-Python wheels, so the Python version they are downloaded from does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-gpu_carry/wheels}
DIFFUSERS=${DIFFUSERS:-diffusers==0.42.1}
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" "$DIFFUSERS"
for req in importlib_metadata lazy-importer zipp; do
    # the version installed here (the one the tests ran with), else the newest
    ver=$("$PY" -c "import importlib.metadata as m; print(m.version('$req'))" 2>/dev/null || true)
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" "$req${ver:+==$ver}"
done
git check-ignore -q "$DEST" || echo "warning: $DEST is not git-ignored" >&2
ls -l "$DEST"
du -sh "$DEST"
