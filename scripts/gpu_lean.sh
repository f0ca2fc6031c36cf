#!/usr/bin/env bash
# Keep the bundled vocoder's weights (27.9 MB) and the autoguidance guide's (8.2 MB) out of what a
# GPU call carries, and put them back.
#
#   bash scripts/gpu_lean.sh hide      # before the device call
#   bash scripts/gpu_lean.sh restore   # right after it (also safe to run twice)
#   bash scripts/gpu_lean.sh status
#
# The device tool copies the working tree (tracked files included) plus the carried paths, 64 MiB
# in all. The bundled model is 56 MiB of tracked files, which leaves too little for the training
# data; training the denoiser needs neither the vocoder (configs/gpu_continue.toml sets
# task.init_vocoder = false) nor the guide, and the latency benchmark builds random weights, so
# `hide` untracks those files in the index (not in any commit) and ignores them locally
# (.git/info/exclude); the files themselves stay where they are. `restore` undoes both. Never
# commit between the two: the commit would delete them.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES="audiodiff/assets/default/vocoder/model.safetensors audiodiff/assets/default/guide/model.safetensors"
EXCLUDE=.git/info/exclude
case "${1:-status}" in
    hide)
        for FILE in $FILES; do
            [ -f "$FILE" ] || { echo "no $FILE here" >&2; exit 1; }
            if git ls-files --error-unmatch "$FILE" >/dev/null 2>&1; then
                git rm -q --cached "$FILE"
            fi
            grep -qxF "/$FILE" "$EXCLUDE" 2>/dev/null || echo "/$FILE" >>"$EXCLUDE"
            echo "hidden: $FILE is untracked and ignored until 'bash scripts/gpu_lean.sh restore'"
        done
        ;;
    restore)
        for FILE in $FILES; do
            if [ -f "$EXCLUDE" ]; then
                grep -vxF "/$FILE" "$EXCLUDE" >"$EXCLUDE.tmp" || true
                mv "$EXCLUDE.tmp" "$EXCLUDE"
            fi
            git reset -q -- "$FILE"
            git ls-files --error-unmatch "$FILE" >/dev/null
            git diff --quiet -- "$FILE" || { echo "$FILE differs from the index" >&2; exit 1; }
            echo "restored: $FILE is tracked again"
        done
        ;;
    status)
        for FILE in $FILES; do
            if git ls-files --error-unmatch "$FILE" >/dev/null 2>&1; then echo "$FILE: tracked (travels)"; else echo "$FILE: hidden (stays here)"; fi
        done
        ;;
    *)
        echo "usage: bash scripts/gpu_lean.sh hide|restore|status" >&2
        exit 2
        ;;
esac
