#!/usr/bin/env bash
# Build a candidate for the bundled model from a training run's export, the way v0.11-v0.12 were
# made: the bundle's folder with the run's denoiser (unet/) and text conditioner (text/), its
# vocoder, sound length head and pipeline.json kept, and v0.5 of the denoiser (commit 65bf3ac)
# re-attached as the autoguidance guide in 6 bits (weight 1, off in the melody mode).
#
#   bash scripts/bundle_candidate.sh runs/v13_cpu/model /tmp/v013
#   audiodiff evaluate --model /tmp/v013 --clips-per-category 4 --duration-s 4 -q [--seed 1]
#   # shipping it: copy unet/, text/ and guide/ over audiodiff/assets/default (see the model card)
#
# OUT must not exist; nothing under audiodiff/assets is touched.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: bash scripts/bundle_candidate.sh RUN_MODEL_DIR OUT_DIR" >&2
    exit 2
fi
run_model=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=$root/audiodiff/assets/default
guide_commit=${GUIDE_COMMIT:-65bf3ac}   # v0.5, the guide since v0.10
for part in unet text; do
    if [ ! -f "$run_model/$part/config.json" ]; then
        echo "error: $run_model/$part/config.json not found: RUN_MODEL_DIR must be a training export" \
             "(the model/ folder that scripts/gpu_train.py or audiodiff export writes)" >&2
        exit 2
    fi
done
if [ -e "$out" ]; then
    echo "error: $out exists; give a new folder" >&2
    exit 2
fi
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/guide_src" 2>/dev/null || true; rm -rf "$work"' EXIT

cp -r "$bundle" "$work/raw"
rm -rf "$work/raw/unet" "$work/raw/text" "$work/raw/guide"
cp -r "$run_model/unet" "$run_model/text" "$work/raw/"
git -C "$root" worktree add -q --detach "$work/guide_src" "$guide_commit"
"$python" "$root/scripts/attach_guide.py" --model "$work/raw" \
    --guide "$work/guide_src/audiodiff/assets/default" --bits 6 --weight 1 --melody-weight 0 \
    --out "$work/guided"
# keep the bundle's pipeline.json (attach_guide writes the code's defaults out explicitly)
cp "$bundle/pipeline.json" "$work/guided/pipeline.json"
mv "$work/guided" "$out"
echo "candidate: $out ($(du -sh "$out" | cut -f1))"
