#!/usr/bin/env bash
# Installs audiodiff and everything its tests use into ./.venv, on a fresh Debian/Ubuntu machine.
# System tools (espeak-ng, fluidsynth + a General MIDI soundfont, sox, chromium for the web demo's
# browser test) are installed with apt-get
# when we are root; without them the tests that need them are skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
APT_PACKAGES="espeak-ng fluidsynth fluid-soundfont-gm sox chromium"

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=""
    for pkg in $APT_PACKAGES; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "setup: apt-get install$missing"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
    fi
else
    echo "setup: not root; install these with your package manager for the full test suite: $APT_PACKAGES"
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,bench]"
# Test-only reference implementations, installed without their (heavy, unused) dependencies.
.venv/bin/python -m pip install -q --no-deps "k-diffusion==0.1.1.post1" "torchsde==0.2.6" "torchdiffeq==0.2.5" trampoline
# aiSFX sound embedding for `audiodiff evaluate` (MIT; its pins on old librosa/numpy are unused).
.venv/bin/python -m pip install -q --no-deps "aisfx==0.1.2"
echo "setup: done ($(du -sh .venv | cut -f1) in .venv)"
