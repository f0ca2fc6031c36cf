"""Audio I/O and features: the leaf of the package."""

from .features import Chroma, MelConfig, MelSpectrogram, denormalize_mel, normalize_mel
from .io import (
    WRITE_FORMATS,
    AudioError,
    check_waveform,
    load_audio,
    loudness,
    loudness_normalize,
    peak_normalize,
    resample,
    save_audio,
    to_mono,
)

__all__ = [
    "AudioError", "WRITE_FORMATS", "Chroma", "MelConfig", "MelSpectrogram", "check_waveform", "denormalize_mel",
    "load_audio", "loudness", "loudness_normalize", "normalize_mel", "peak_normalize", "resample",
    "save_audio", "to_mono",
]
