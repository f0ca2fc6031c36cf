"""Pictures and example clips for the web demo: a mel spectrogram as an image, synthetic inputs.

No matplotlib: a five-colour ramp (close to 'magma') interpolated in numpy and drawn with Pillow,
which gradio already depends on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..audio import MelSpectrogram, save_audio

# Dark purple -> red -> orange -> pale yellow, like matplotlib's perceptually uniform 'magma'.
_RAMP = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float32)
ROW_HEIGHT = 128
MAX_WIDTH = 1024
DYNAMIC_RANGE = 8.0  # natural-log units shown below each clip's peak (about 70 dB of amplitude)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> RGB uint8 (H, W, 3) along the ramp."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    frac = (x - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).round().astype(np.uint8)


@torch.inference_mode()
def spectrogram_image(waveforms: torch.Tensor, mel: MelSpectrogram, labels: list[str] | None = None) -> Image.Image:
    """Waveforms (B, C, T) -> one image with a log-mel row per item (low frequencies at the bottom)."""
    log_mel = mel(waveforms.float().mean(dim=1)).cpu().numpy()  # (B, n_mels, N)
    rows = []
    for i, item in enumerate(log_mel):
        peak = float(item.max())
        scaled = (item - (peak - DYNAMIC_RANGE)) / DYNAMIC_RANGE
        image = Image.fromarray(colorize(scaled[::-1]))
        width = min(MAX_WIDTH, max(256, item.shape[-1] * 2))
        image = image.resize((width, ROW_HEIGHT), Image.Resampling.BILINEAR)
        if labels:
            ImageDraw.Draw(image).text((4, 2), labels[i], fill=(255, 255, 255))
        rows.append(image)
    gap = 4
    canvas = Image.new("RGB", (max(r.width for r in rows), len(rows) * (ROW_HEIGHT + gap) - gap), (255, 255, 255))
    for i, row in enumerate(rows):
        canvas.paste(row, (0, i * (ROW_HEIGHT + gap)))
    return canvas


def _tone(freq: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
    return 0.4 * envelope * (np.sin(2 * math.pi * freq * t) + 0.3 * np.sin(4 * math.pi * freq * t))


def melody_clip(sample_rate: int, seconds: float = 4.0) -> np.ndarray:
    """A C-major arpeggio, up and down, as eighth notes at 120 bpm (mono float32)."""
    notes = [60, 64, 67, 72, 67, 64, 60, 64]
    step = 0.25
    out = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    for i in range(int(seconds / step)):
        freq = 440.0 * 2 ** ((notes[i % len(notes)] - 69) / 12)
        start = int(i * step * sample_rate)
        tone = _tone(freq, step * 1.5, sample_rate)[: len(out) - start]
        out[start:start + len(tone)] += tone
    return out


def drum_clip(sample_rate: int, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A kick-and-hat loop: decaying sine thumps on the beat, noise ticks between (mono float32)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    kick = 0.8 * np.sin(2 * math.pi * (50 + 80 * np.exp(-30 * t)) * t) * np.exp(-12 * t)
    hat = 0.2 * rng.standard_normal(int(0.05 * sample_rate)) * np.exp(-np.arange(int(0.05 * sample_rate)) / (0.01 * sample_rate))
    for beat in np.arange(0, seconds, 0.25):
        start = int(beat * sample_rate)
        sound = kick if beat % 0.5 == 0 else hat
        sound = sound[: len(out) - start]
        out[start:start + len(sound)] += sound
    return np.clip(out, -1, 1).astype(np.float32)


def write_example_clips(folder: Path, sample_rate: int) -> dict[str, str]:
    """Write the demo's example inputs (a melody and a drum loop) once; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {"arpeggio": melody_clip(sample_rate), "drum_loop": drum_clip(sample_rate)}
    return {name: str(save_audio(folder / f"{name}.wav", torch.from_numpy(wav)[None], sample_rate))
            for name, wav in clips.items()}
