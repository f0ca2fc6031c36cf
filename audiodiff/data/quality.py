"""Spot-check a corpus as a new user would (``audiodiff prepare check MANIFEST -n 30``).

Draws clips at random (seeded) and measures what a listener notices first: is it silent, is it
clipped, is the rate right, how long, how loud, is it tonal or noisy, bright or dark, one event or
many. The numbers come from soundfile and librosa (and ``soxi`` when it is installed, as a
second opinion on the header), so they do not depend on audiodiff's own audio code.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .manifest import read_manifest


def _soxi_rate(path: str) -> int | None:
    exe = shutil.which("soxi")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-r", path], capture_output=True, text=True)
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None


def clip_report(path: str, expected_rate: int = 22050) -> dict:
    """Level, clipping, silence, rate and a few timbre measures of one file."""
    import librosa
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    peak = float(np.abs(x).max()) if x.size else 0.0
    rms = float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0
    frame = max(1, int(0.05 * sr))
    frames = x[: len(x) // frame * frame].reshape(-1, frame) if len(x) >= frame else x[None]
    frame_db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-12)
    flatness = float(np.median(librosa.feature.spectral_flatness(y=x, n_fft=1024, hop_length=256)))
    centroid = float(np.median(librosa.feature.spectral_centroid(y=x, sr=sr, n_fft=1024, hop_length=256)))
    onsets = len(librosa.onset.onset_detect(y=x, sr=sr, hop_length=256, units="frames"))
    soxi = _soxi_rate(path)
    flags = []
    if 20 * np.log10(rms + 1e-12) < -50:
        flags.append("silent")
    if np.mean(np.abs(x) >= 0.999) > 1e-3:
        flags.append("clipped")
    if sr != expected_rate or (soxi is not None and soxi != expected_rate):
        flags.append(f"rate {sr}")
    return {"duration_s": round(len(x) / sr, 3), "sample_rate": sr, "soxi_rate": soxi,
            "peak_db": round(20 * np.log10(peak + 1e-12), 1), "rms_db": round(20 * np.log10(rms + 1e-12), 1),
            "silent_frames": round(float(np.mean(frame_db < -60)), 2),
            "clipped_fraction": round(float(np.mean(np.abs(x) >= 0.999)), 5),
            "flatness": round(flatness, 3), "centroid_hz": round(centroid), "onsets": onsets,
            "character": ("noisy" if flatness > 0.1 else "tonal" if flatness < 0.01 else "mixed")
                         + (", bright" if centroid > 3000 else ", dark" if centroid < 800 else ""),
            "flags": flags}


def spot_check(manifest: str | Path, n: int = 30, seed: int = 0, split: str | None = None) -> list[dict]:
    """``n`` random clips of a manifest with their captions, origin and :func:`clip_report`."""
    entries = read_manifest(manifest, split=split)
    picks = random.Random(seed).sample(entries, min(n, len(entries)))
    return [{"path": e.path, "source": e.source, "origin": e.origin, "captions": list(e.captions),
             **clip_report(e.path, e.sample_rate)} for e in picks]


def format_spot_check(rows: list[dict]) -> str:
    lines = []
    for i, r in enumerate(rows, 1):
        flag = f" !! {', '.join(r['flags'])}" if r["flags"] else ""
        lines.append(f"{i:2d}. [{r['source']}] {r['origin']}\n"
                     f"    {r['duration_s']:.2f} s, {r['sample_rate']} Hz (soxi {r['soxi_rate']}), peak "
                     f"{r['peak_db']} dBFS, rms {r['rms_db']} dBFS, silent frames {r['silent_frames']:.0%}, "
                     f"{r['character']}, {r['onsets']} onsets{flag}\n"
                     f"    captions: {json.dumps(r['captions'], ensure_ascii=False)}")
    bad = sum(1 for r in rows if r["flags"])
    lines.append(f"{len(rows)} clips checked, {bad} flagged (silent, clipped or wrong rate)")
    return "\n".join(lines)
