#!/usr/bin/env bash
# Both GPU jobs in ONE device call, for a session that is lent a GPU once (15 minutes in all,
# the machine's start included, at most 10 minutes a call): first the latency table and profile
# of issue 10 (scripts/gpu_latency.sh, ours and the peers on the same card), then, for the time
# left, the continuation training of the bundled model of issue 6 (configs/gpu_continue.toml).
#
# Here, once:
#   python scripts/gpu_prepare.py --mel-bits 6 --out gpu_carry/device   # 6-bit mels + text cache
#   bash scripts/gpu_latency_prepare.sh                                 # gpu_carry/wheels (diffusers)
#   bash scripts/gpu_lean.sh hide        # the vocoder's and guide's weights stay here; `restore` right after
# The call (tree 22.1 + carried 40.6 = 62.7 MiB of the 64 a call may carry, measured 2026-12-04):
#   run: OUT=$OUT bash scripts/gpu_session.sh        timeout_s 600
#        carry: gpu_carry/device/export.tar.xz, gpu_carry/device/text_cache.safetensors, gpu_carry/wheels
# Back in $OUT (6 of the 8 files a call returns): latency.tar (latency-cuda.json/.md with the
# profile, the same without autoguidance, peers-cuda.json/.md at 10 and at their published steps,
# versus-cuda.json/.md, logs) and the training's model-stepN.tar.part0/1, .count, metrics.jsonl,
# summary.json; rebuild the model with the bundled vocoder as the header of
# configs/gpu_continue.toml says.
#
# BUDGET_S (default 560) bounds the whole script; the training gets what the latency part left,
# less TAIL_S (default 75: unpacking, building, the last export). Extra arguments go to
# gpu_train.sh. A CPU smoke test:
#   OUT=/tmp/s DEVICE=cpu BUDGET_S=200 OURS_ARGS="--batches 1 --durations 1 --steps 2 --repeats 1 --threads 1 --profile fp32" \
#   PEERS_ARGS="--tiny --batches 1 --duration-s 1 --steps 2 --repeats 1 --threads 1" bash scripts/gpu_session.sh \
#   --device cpu --set batch_size=2 --set data.crop_s=1.0 --set data.num_workers=0 --set data.max_valid_clips=2
set -uo pipefail  # no -e: the training runs whatever the latency part did
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT}
BUDGET_S=${BUDGET_S:-560}
TAIL_S=${TAIL_S:-75}
LAT=${LAT:-/tmp/audiodiff_latency}
T0=$(date +%s)
mkdir -p "$OUT" "$LAT"

OURS_S=${OURS_S:-50} NOAG_S=${NOAG_S:-10} PEERS_S=${PEERS_S:-110} PEERS_DEFAULT_S=${PEERS_DEFAULT_S:-30} \
    OUT="$LAT" bash scripts/gpu_latency.sh
tar cf "$OUT/latency.tar.tmp" -C "$LAT" . && mv "$OUT/latency.tar.tmp" "$OUT/latency.tar"

LEFT=$((BUDGET_S - ($(date +%s) - T0) - TAIL_S))
if [ "$LEFT" -lt 30 ]; then
    echo "[gpu_session] ${LEFT} s left after the latency part: no training" | tee -a "$OUT/session.log"
    exit 0
fi
MINUTES=$(awk "BEGIN { printf \"%.2f\", $LEFT / 60 }")
echo "[gpu_session] latency part took $(($(date +%s) - T0)) s; training for $MINUTES min"
CARRY=${CARRY:-gpu_carry/device} OUT="$OUT" bash scripts/gpu_train.sh --config configs/gpu_continue.toml \
    --max-minutes "$MINUTES" "$@"
echo "[gpu_session] done in $(($(date +%s) - T0)) s"
