"""Reading, writing, resampling and normalising audio.

Files are read with soundfile (wav, flac, ogg, mp3 where libsndfile supports it) and returned as
float32 tensors of shape (C, T) in [-1, 1]. Writes are atomic: a failed write never leaves a
partial output file behind. This module is a leaf: it imports nothing else of audiodiff.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from ..config import temp_file_beside

WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
# The subtype soundfile writes per container: float WAV keeps generated audio lossless.
_WRITE_SUBTYPES = {"WAV": "FLOAT", "FLAC": "PCM_24", "OGG": "VORBIS"}


class AudioError(ValueError):
    """An audio file or tensor cannot be used: the message names the problem."""


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = False,
    max_duration_s: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Load an audio file as a float32 tensor (C, T) in [-1, 1] and its sample rate.

    sample_rate: resample to this rate (None keeps the file's rate).
    mono: average the channels to one.
    max_duration_s: refuse files longer than this (checked before decoding them).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")
    if sample_rate is not None:
        _check_sample_rate(sample_rate)
    import soundfile as sf  # imported on use: training from stored mels needs no audio I/O

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        if _wav_header_sample_rate(path) == 0:
            raise AudioError(f"{path} declares a sample rate of 0 Hz; it must be positive") from None
        raise AudioError(
            f"cannot read {path} as audio ({err}); readable formats: wav, flac, ogg, mp3 "
            "and the others libsndfile supports"
        ) from None
    if info.samplerate <= 0:
        raise AudioError(f"{path} declares a sample rate of {info.samplerate}; it must be positive")
    if info.frames == 0:
        raise AudioError(f"{path} holds no audio (0 samples)")
    if max_duration_s is not None and info.frames / info.samplerate > max_duration_s:
        raise AudioError(
            f"{path} is {info.frames / info.samplerate:.1f} s long; at most {max_duration_s:g} s is accepted"
        )
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot decode {path}: {err}") from None
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if wav.shape[-1] == 0:
        raise AudioError(f"{path} holds no audio (0 samples)")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{path} contains NaN or infinite samples")
    if mono:
        wav = to_mono(wav)
    if sample_rate is not None and sample_rate != file_rate:
        wav = resample(wav, file_rate, sample_rate)
        file_rate = sample_rate
    return wav, int(file_rate)


def save_audio(
    path: str | os.PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    compression_level: float | None = None,
) -> Path:
    """Write (C, T) or (T,) audio to wav/flac/ogg, atomically; returns the path written.

    Samples are clipped to [-1, 1] for integer and lossy formats. The file appears only once it
    is complete: it is written to a temporary file in the same folder and renamed.
    subtype: soundfile's sample format (default: float WAV, 24-bit FLAC, Vorbis), e.g. "PCM_16"
    for smaller FLAC files; compression_level: soundfile's, in [0, 1] (FLAC / Vorbis).
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(
            f"cannot write {path.name}: unknown extension {path.suffix!r}; "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    _check_sample_rate(sample_rate)
    import soundfile as sf

    wav = check_waveform(wav, name="audio to save")
    if wav.dim() == 1:
        wav = wav[None]
    data = wav.detach().to("cpu", torch.float32).numpy().T
    if fmt != "WAV":
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file_beside(path, suffix=path.suffix)
    try:
        options = {} if compression_level is None else {"compression_level": compression_level}
        sf.write(tmp, data, sample_rate, format=fmt, subtype=subtype or _WRITE_SUBTYPES[fmt], **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_waveform(wav: torch.Tensor | np.ndarray, name: str = "waveform") -> torch.Tensor:
    """Return ``wav`` as a float tensor, refusing empty, NaN or infinite audio."""
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.asarray(wav, dtype=np.float32))
    if not isinstance(wav, torch.Tensor):
        raise AudioError(f"{name} must be a tensor or numpy array, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise AudioError(f"{name} must be floating point, got {wav.dtype}")
    if wav.numel() == 0 or wav.shape[-1] == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    return wav


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """(C, T) -> (1, T) by averaging channels."""
    return wav.mean(dim=-2, keepdim=True)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    _check_sample_rate(orig_sr)
    _check_sample_rate(new_sr)
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, int(orig_sr), int(new_sr))


def peak_normalize(wav: torch.Tensor, peak_db: float = -1.0) -> torch.Tensor:
    """Scale so the largest absolute sample is at ``peak_db`` dBFS; silence is left as is."""
    peak = wav.abs().amax(dim=(-2, -1) if wav.dim() > 1 else -1, keepdim=True)
    target = 10.0 ** (peak_db / 20.0)
    return torch.where(peak > 0, wav * (target / peak.clamp_min(1e-12)), wav)


def loudness(wav: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, via torchaudio) of (C, T) audio."""
    wav = check_waveform(wav)
    if wav.dim() == 1:
        wav = wav[None]
    min_len = int(0.4 * sample_rate)  # BS.1770 gates 400 ms blocks; pad very short clips
    if wav.shape[-1] < min_len:
        wav = torch.nn.functional.pad(wav, (0, min_len - wav.shape[-1]))
    return float(AF.loudness(wav.double(), sample_rate))


def loudness_normalize(
    wav: torch.Tensor, sample_rate: int, target_lufs: float = -23.0, peak_db: float = -1.0
) -> torch.Tensor:
    """Scale to ``target_lufs`` integrated loudness, then limit the peak to ``peak_db``.

    Silent audio (loudness -inf) is returned unchanged.
    """
    current = loudness(wav, sample_rate)
    if not math.isfinite(current):
        return wav
    out = wav * 10.0 ** ((target_lufs - current) / 20.0)
    limit = 10.0 ** (peak_db / 20.0)
    peak = out.abs().max()
    if peak > limit:
        out = out * (limit / peak)
    return out


def _wav_header_sample_rate(path: Path) -> int | None:
    """The sample rate field of a RIFF/WAVE header, or None if the file is not one."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"fmt " and pos + 16 <= len(head):
            return int.from_bytes(head[pos + 12:pos + 16], "little")
        pos += 8 + size + (size & 1)
    return None


def _check_sample_rate(sample_rate) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample rate must be a positive integer in Hz, got {sample_rate!r}")
