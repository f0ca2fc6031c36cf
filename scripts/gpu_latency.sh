#!/usr/bin/env bash
# Latency of our default pipeline (benchmarks/latency.py) and of the peers AudioLDM-S and Stable
# Audio Open 1.0 (benchmarks/peers.py) on one GPU machine in one call of about 8 minutes, so both
# sets of numbers come from the same card. That machine has no internet: first, here,
#
#   bash scripts/gpu_latency_prepare.sh            # fills gpu_carry/wheels with diffusers (~5 MB)
#
# then on the GPU machine, carrying only gpu_carry/wheels:
#
#   OUT=/some/dir bash scripts/gpu_latency.sh
#
# Writes to $OUT: latency-cuda.json/.md (the defaults, autoguidance included, with the profile),
# no-autoguidance/latency-cuda.*, peers-cuda.json/.md (10 steps; rewritten after every peer row,
# so a run stopped by its time limit keeps what it measured), default-steps/peers-cuda.* (the
# peers' published step counts) and the logs. Time caps (seconds, overridable): OURS_S, NOAG_S,
# PEERS_S and PEERS_DEFAULT_S stop adding rows (--max-seconds), and `timeout` kills each benchmark
# OVERRUN_S after its cap (ours gets 20 s more for its profile: kernels, launch gaps, FLOPs and
# bytes against the card's measured peaks, in latency-cuda.md); versus-cuda.json/.md joins them
# (benchmarks/versus.py). Extra arguments (they come last, so they override the ones below):
# OURS_ARGS, PEERS_ARGS. A CPU smoke test of this script:
#   OUT=/tmp/x DEVICE=cpu OURS_ARGS="--batches 1 --durations 1 --steps 2 --repeats 1 --threads 1" \
#   PEERS_ARGS="--tiny --batches 1 --duration-s 1 --steps 2 --repeats 1 --threads 1" bash scripts/gpu_latency.sh
set -uo pipefail  # no -e: one failing benchmark must not stop the other
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
OURS_S=${OURS_S:-80}
NOAG_S=${NOAG_S:-15}
PEERS_S=${PEERS_S:-150}
PEERS_DEFAULT_S=${PEERS_DEFAULT_S:-40}
OVERRUN_S=${OVERRUN_S:-40}
WHEELS=${WHEELS:-gpu_carry/wheels}
mkdir -p "$OUT"

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    if "$PY" -c "import diffusers" 2>/dev/null; then
        echo "diffusers already importable"
    elif ls "$WHEELS"/diffusers-*.whl >/dev/null 2>&1; then
        # into the interpreter's own environment, resolving diffusers' requirements against what
        # is installed plus the carried wheels; failing that, the carried wheels alone on PYTHONPATH
        if ! "$PY" -m pip install -q --no-index --find-links "$WHEELS" diffusers; then
            echo "pip could not resolve diffusers' requirements offline; installing the wheels alone"
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/bench_site "$WHEELS"/*.whl
        fi
    else
        echo "no $WHEELS/diffusers-*.whl: run scripts/gpu_latency_prepare.sh here and carry $WHEELS"
    fi
} 2>&1 | tee "$OUT/gpu_latency.log"
if [ -d /tmp/bench_site ]; then export PYTHONPATH=/tmp/bench_site${PYTHONPATH:+:$PYTHONPATH}; fi
"$PY" -c "import diffusers; print('diffusers', diffusers.__version__)" 2>&1 | tee -a "$OUT/gpu_latency.log"

# ours: the bundled model's architecture at its defaults (8 steps, guidance for 0.1 < sigma <= 50,
# autoguidance 1, 8 frames of end margin), 10 s clips, the variants latency.py runs on CUDA; then
# the profile of the bf16 default
timeout $((OURS_S + OVERRUN_S + 20)) "$PY" benchmarks/latency.py --device "$DEVICE" --batches 1 8 --durations 10 \
    --steps 8 25 --guidance-interval 0.1 50 --repeats 5 --max-seconds "$OURS_S" --profile bf16 --out "$OUT" \
    ${OURS_ARGS:-} 2>&1 | tee "$OUT/latency.log"
echo "latency.py exit ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_latency.log"
# the same without autoguidance (half the denoiser's work), whole-call graphs, up to batch 32
timeout $((NOAG_S + OVERRUN_S)) "$PY" benchmarks/latency.py --device "$DEVICE" --variants bf16-fullgraph \
    --batches 1 8 32 --durations 10 --steps 8 --guidance-interval 0.1 50 --autoguidance 0 --repeats 5 \
    --max-seconds "$NOAG_S" --out "$OUT/no-autoguidance" ${OURS_ARGS:-} 2>&1 | tee "$OUT/latency-noag.log"
echo "latency.py (no autoguidance) exit ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_latency.log"

# peers at 10 steps: eager rows of both peers first, then the compiled (CUDA graph) ones while
# time is left; then their published step counts (AudioLDM-S 200, Stable Audio Open 100), eager,
# batch 1, into $OUT/default-steps
timeout $((PEERS_S + 2 * OVERRUN_S)) "$PY" benchmarks/peers.py --device "$DEVICE" --steps 10 --batches 1 8 \
    --repeats 3 --max-seconds "$PEERS_S" --out "$OUT" ${PEERS_ARGS:-} 2>&1 | tee "$OUT/peers.log"
echo "peers.py exit ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_latency.log"
timeout $((PEERS_DEFAULT_S + OVERRUN_S)) "$PY" benchmarks/peers.py --device "$DEVICE" --variants eager --batches 1 \
    --repeats 3 --max-seconds "$PEERS_DEFAULT_S" --out "$OUT/default-steps" ${PEERS_ARGS:-} 2>&1 | tee "$OUT/peers-default.log"
echo "peers.py (published steps) exit ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_latency.log"
"$PY" benchmarks/versus.py "$OUT" >>"$OUT/gpu_latency.log" 2>&1  # the one table: ours against the peers, ratios
date -u | tee -a "$OUT/gpu_latency.log"
