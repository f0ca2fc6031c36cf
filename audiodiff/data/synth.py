"""Procedural synthesiser of captioned sounds: fast test data and an endless training source.

Each sound class has a generator ``fn(rng, sample_rate, num_samples) -> wav (T,)`` and several
caption templates; ``{pitch}``-style slots are filled from the drawn parameters so captions
describe what was actually synthesised. Everything is drawn from a ``numpy`` Generator, so a
(seed, index) pair always gives the same clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

Synth = Callable[[np.random.Generator, int, int], tuple[np.ndarray, dict]]


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, int(attack_s * sr)), max(1, int(release_s * sr))
    env[:a] = np.linspace(0, 1, min(a, n))
    env[-r:] *= np.linspace(1, 0, min(r, n))
    return env


def _hum(rng, sr, n):
    f0 = rng.uniform(50, 130)
    t = np.arange(n) / sr
    wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k**1.5 for k in range(1, 5))
    return wav * 0.4 * _envelope(n, sr, 0.05, 0.05), {"freq_hz": f0}


def _beeps(rng, sr, n):
    f0 = rng.uniform(1500, 3500)
    period = rng.uniform(0.15, 0.4)
    t = np.arange(n) / sr
    gate = ((t % period) < period * 0.5).astype(float)
    gate = np.convolve(gate, np.ones(64) / 64, mode="same")  # soften the edges
    return 0.3 * np.sin(2 * np.pi * f0 * t) * gate, {"freq_hz": f0}


def _noise_burst(rng, sr, n):
    burst = rng.uniform(0.2, 0.6)
    wav = rng.standard_normal(n) * 0.25
    env = np.zeros(n)
    start = 0
    while start < n:
        length = int(burst * sr)
        env[start:start + length] = np.exp(-np.linspace(0, 4, len(env[start:start + length])))
        start += length + int(rng.uniform(0.05, 0.3) * sr)
    return wav * env, {}


def _sweep(rng, sr, n, rising=True):
    f_lo, f_hi = rng.uniform(150, 400), rng.uniform(2000, 5000)
    f = np.geomspace(f_lo, f_hi, n) if rising else np.geomspace(f_hi, f_lo, n)
    phase = 2 * np.pi * np.cumsum(f) / sr
    return 0.3 * np.sin(phase) * _envelope(n, sr, 0.02, 0.05), {}


def _clicks(rng, sr, n):
    rate = rng.uniform(3, 10)
    wav = np.zeros(n)
    step = int(sr / rate)
    click = rng.standard_normal(int(0.004 * sr)) * np.hanning(int(0.004 * sr))
    for start in range(int(rng.uniform(0, step)), n - len(click), step):
        wav[start:start + len(click)] += 0.6 * click
    return wav, {"rate_hz": rate}


def _drone(rng, sr, n):
    root = rng.uniform(110, 220)
    t = np.arange(n) / sr
    wav = sum(np.sin(2 * np.pi * root * r * t * (1 + 0.002 * np.sin(2 * np.pi * 0.3 * t)))
              for r in (1.0, 1.5, 2.0, 2.5))
    return 0.15 * wav * _envelope(n, sr, 0.3, 0.3), {"freq_hz": root}


@dataclasses.dataclass(frozen=True)
class SoundClass:
    name: str
    synth: Synth
    captions: tuple[str, ...]
    # Paraphrases never used for training, to test that text conditioning generalises.
    held_out: tuple[str, ...] = ()


SOUND_CLASSES: dict[str, SoundClass] = {c.name: c for c in [
    SoundClass("hum", _hum,
               ("a low hum", "a deep electrical hum", "low humming drone of a machine", "a low buzzing hum"),
               ("a bass hum from a transformer", "deep low-pitched humming")),
    SoundClass("beep", _beeps,
               ("a high beep", "high pitched beeping", "an electronic beep repeating", "a shrill beeping alarm"),
               ("a piercing high tone beeping", "high-pitched electronic beeps")),
    SoundClass("noise", _noise_burst,
               ("white noise burst", "bursts of hissing noise", "a noisy hiss", "static noise bursts"),
               ("a burst of white noise", "hissing static")),
    SoundClass("rising", lambda r, s, n: _sweep(r, s, n, True),
               ("a rising sweep", "a tone sweeping upward", "an upward pitch glide"),
               ("a sweep going up in pitch",)),
    SoundClass("falling", lambda r, s, n: _sweep(r, s, n, False),
               ("a falling sweep", "a tone sweeping downward", "a downward pitch glide"),
               ("a sweep going down in pitch",)),
    SoundClass("clicks", _clicks,
               ("rhythmic clicking", "a steady clicking sound", "clicks like a ticking clock"),
               ("regular ticking clicks",)),
    SoundClass("drone", _drone,
               ("a warm synthesizer drone", "a sustained chord drone", "an ambient pad drone"),
               ("a long droning synth chord",)),
]}


@dataclasses.dataclass
class SynthClip:
    wav: np.ndarray       # (T,) float32 in [-1, 1]
    sample_rate: int
    label: str
    captions: list[str]
    params: dict


def synth_clip(label: str, seed: int, sample_rate: int = 22050, duration_s: float = 1.0,
               held_out: bool = False) -> SynthClip:
    """One clip of class ``label``; the same (label, seed) always gives the same clip."""
    if label not in SOUND_CLASSES:
        raise ValueError(f"unknown sound class {label!r}; known: {', '.join(SOUND_CLASSES)}")
    if duration_s <= 0 or sample_rate <= 0:
        raise ValueError("duration_s and sample_rate must be positive")
    cls = SOUND_CLASSES[label]
    rng = np.random.default_rng([seed, sum(map(ord, label))])
    wav, params = cls.synth(rng, sample_rate, int(round(duration_s * sample_rate)))
    wav = np.clip(wav, -1, 1).astype(np.float32)
    captions = list(cls.held_out if held_out else cls.captions)
    return SynthClip(wav, sample_rate, label, captions, params)


def synth_dataset(labels: Sequence[str], per_class: int, seed: int = 0, **kw) -> list[SynthClip]:
    """``per_class`` clips of each label, deterministic for ``seed``."""
    return [synth_clip(label, seed * 100003 + i, **kw) for label in labels for i in range(per_class)]
