"""Mel spectrograms and chroma, the features the denoisers and the vocoder share.

The default :class:`MelConfig` reproduces the mel of the original HiFi-GAN (Kong et al. 2020),
so the packaged universal HiFi-GAN vocoder can turn our mels back into audio: 22.05 kHz,
n_fft 1024, hop 256, 80 slaney mels up to 8 kHz, magnitude (not power), center=False with a
reflect pad of (n_fft - hop) / 2 on each side, and log(clamp(mel, 1e-5)). With that padding a
clip of T samples gives exactly T // hop_length frames, and the vocoder returns N * hop_length
samples, so durations round-trip exactly on multiples of the hop.

This module is a leaf of the package: it imports nothing else of audiodiff.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from ..config import Config, check, register_config


@register_config
@dataclasses.dataclass(frozen=True)
class MelConfig(Config):
    """One mel definition, stored with every model that reads or writes mels."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5
    # Normalisation for diffusion: log-mel in [norm_min, norm_max] maps linearly to [-1, 1].
    # norm_min is log(log_floor) (silence); norm_max ~ the loudest bins seen on full-scale music.
    norm_min: float = math.log(1e-5)
    norm_max: float = 2.5

    def __post_init__(self):
        check(self.sample_rate > 0, f"MelConfig.sample_rate must be positive, got {self.sample_rate}")
        check(self.n_fft > 0, f"MelConfig.n_fft must be positive, got {self.n_fft}")
        check(0 < self.hop_length <= self.n_fft, f"MelConfig.hop_length must be in (0, n_fft], got {self.hop_length}")
        check(0 < self.win_length <= self.n_fft, f"MelConfig.win_length must be in (0, n_fft], got {self.win_length}")
        check((self.n_fft - self.hop_length) % 2 == 0, "MelConfig: n_fft - hop_length must be even (symmetric padding)")
        check(self.n_mels > 0, f"MelConfig.n_mels must be positive, got {self.n_mels}")
        check(0 <= self.f_min < self.f_max <= self.sample_rate / 2,
              f"MelConfig needs 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.f_max}")
        check(self.log_floor > 0, f"MelConfig.log_floor must be positive, got {self.log_floor}")
        check(self.norm_max > self.norm_min, "MelConfig.norm_max must exceed norm_min")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    def num_frames(self, duration_s: float) -> int:
        """Frames for a duration (rounded to the nearest frame, at least 1)."""
        return max(1, round(duration_s * self.frame_rate))

    def mismatch(self, other: MelConfig) -> list[str]:
        """The fields on which two mel definitions differ (normalisation constants included)."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


class MelSpectrogram(nn.Module):
    """Waveform -> log-mel spectrogram, HiFi-GAN convention.

    forward: wav (B, T) or (B, 1, T) float in [-1, 1] -> log-mel (B, n_mels, T // hop_length),
    natural log of the magnitude mel, floored at log(config.log_floor).
    """

    def __init__(self, config: MelConfig | None = None):
        super().__init__()
        self.config = config or MelConfig()
        c = self.config
        fb = AF.melscale_fbanks(c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate,
                                norm="slaney", mel_scale="slaney")
        self.register_buffer("mel_basis", fb.T.contiguous(), persistent=False)  # (n_mels, F)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> linear magnitude mel (B, n_mels, N), before the log."""
        c = self.config
        if wav.dim() == 3:
            if wav.shape[1] != 1:
                raise ValueError(f"MelSpectrogram expects mono audio (B, 1, T), got {tuple(wav.shape)}")
            wav = wav[:, 0]
        if wav.dim() != 2:
            raise ValueError(f"MelSpectrogram expects (B, T) or (B, 1, T), got {tuple(wav.shape)}")
        pad = (c.n_fft - c.hop_length) // 2
        if wav.shape[-1] <= pad:
            raise ValueError(f"audio of {wav.shape[-1]} samples is too short for a mel frame; "
                             f"need more than {pad} samples")
        x = F.pad(wav.float()[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(x, c.n_fft, c.hop_length, c.win_length, window=self.window,
                          center=False, return_complex=True)
        mag = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        return torch.matmul(self.mel_basis, mag)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.magnitude(wav).clamp_min(self.config.log_floor))


def normalize_mel(log_mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Log-mel -> roughly [-1, 1] for diffusion (silence maps to -1)."""
    scale = config.norm_max - config.norm_min
    return (log_mel - config.norm_min) * (2.0 / scale) - 1.0


def denormalize_mel(x: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Inverse of :func:`normalize_mel`, clamped to the representable log-mel range."""
    scale = config.norm_max - config.norm_min
    log_mel = (x + 1.0) * (scale / 2.0) + config.norm_min
    return log_mel.clamp(min=config.norm_min, max=config.norm_max + 2.0)


class Chroma(nn.Module):
    """Waveform -> 12-bin chroma at the mel frame rate, for melody conditioning.

    Energy below ``f_min`` (bass) and above ``f_max`` is ignored, so the chroma follows the
    melody rather than the bass line, as MusicGen-melody's chromagram conditioning does.
    forward: wav (B, T) or (B, 1, T) -> chroma (B, 12, T // hop_length), each frame scaled to a
    maximum of 1 (silent frames are all zero); with ``argmax=True`` one-hot on the strongest bin.
    """

    def __init__(self, config: MelConfig | None = None, f_min: float = 130.0, f_max: float = 2100.0,
                 argmax: bool = False, silence_db: float = -50.0):
        super().__init__()
        self.config = config or MelConfig()
        self.argmax = argmax
        self.silence_db = silence_db
        c = self.config
        import librosa  # only chroma needs it; training from stored mels runs without librosa

        fb = torch.from_numpy(librosa.filters.chroma(sr=c.sample_rate, n_fft=c.n_fft, n_chroma=12,
                                                     base_c=True)).float()
        freqs = torch.fft.rfftfreq(c.n_fft, 1.0 / c.sample_rate)
        fb = fb * ((freqs >= f_min) & (freqs <= f_max)).float()[None]
        self.register_buffer("chroma_basis", fb, persistent=False)  # (12, F)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.config
        if wav.dim() == 3:
            wav = wav.mean(dim=1)
        pad = (c.n_fft - c.hop_length) // 2
        x = F.pad(wav.float()[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(x, c.n_fft, c.hop_length, c.win_length, window=self.window,
                          center=False, return_complex=True)
        power = spec.abs().square()
        chroma = torch.matmul(self.chroma_basis, power)  # (B, 12, N)
        peak = chroma.amax(dim=1, keepdim=True)
        loud = peak > peak.amax(dim=-1, keepdim=True).clamp_min(1e-10) * 10 ** (self.silence_db / 10)
        chroma = torch.where(loud, chroma / peak.clamp_min(1e-10), torch.zeros_like(chroma))
        if self.argmax:
            onehot = F.one_hot(chroma.argmax(dim=1), 12).transpose(1, 2).to(chroma.dtype)
            chroma = onehot * loud
        return chroma


# How the 12 chroma channels of a melody condition are laid out over the mel axis for a UNetMel:
# "broadcast" repeats each pitch class's value in every mel row (the network must learn where a
# pitch class sits in the mel); "pitch_class_mel" weights row m of channel c by how much of mel
# bin m lies on pitch class c (any octave), so a melody note lights the rows of its fundamental
# and its octave harmonics, frame-aligned and frequency-aligned, as a local convolution sees it.
MELODY_LAYOUTS = ("broadcast", "pitch_class_mel")


def pitch_class_mel_template(config: MelConfig, f_lo: float = 60.0, width_semitones: float = 0.5,
                             grid_hz: float = 1.0) -> torch.Tensor:
    """(12, n_mels) float32 in [0, 1]: for each pitch class c (0 = C, as :class:`Chroma`) the
    share of each mel filter's response that lies within ~``width_semitones`` of c in any octave
    above ``f_lo``, scaled so the largest entry is 1.

    Computed on a ``grid_hz`` frequency grid from the same slaney filters as
    :class:`MelSpectrogram` (torch / torchaudio only, no librosa): a narrow high filter is close
    to one-hot over the classes, a wide low filter (several semitones) spreads over a few.
    """
    c = config
    n_grid = int(round(c.sample_rate / 2 / grid_hz)) + 1
    freqs = torch.linspace(0.0, c.sample_rate / 2, n_grid, dtype=torch.float64)
    fb = AF.melscale_fbanks(n_grid, c.f_min, c.f_max, c.n_mels, c.sample_rate, norm="slaney",
                            mel_scale="slaney").double()  # (n_grid, n_mels)
    audible = freqs >= f_lo
    semitone = torch.zeros_like(freqs)
    semitone[audible] = 12.0 * torch.log2(freqs[audible] / 261.6255653005986)  # C4 = 0
    classes = torch.arange(12, dtype=torch.float64)
    dist = torch.remainder(semitone[None, :] - classes[:, None] + 6.0, 12.0) - 6.0  # (12, n_grid)
    bumps = torch.exp(-0.5 * (dist / width_semitones) ** 2) * audible[None]
    share = (bumps @ fb) / fb.sum(dim=0).clamp_min(1e-12)[None]  # (12, n_mels)
    return (share / share.max()).float()


def melody_template(config: MelConfig, layout: str) -> torch.Tensor | None:
    """The template :func:`melody_planes` needs for ``layout``: None for "broadcast"."""
    if layout not in MELODY_LAYOUTS:
        raise ValueError(f"melody layout must be one of {MELODY_LAYOUTS}, got {layout!r}")
    return pitch_class_mel_template(config) if layout == "pitch_class_mel" else None


def melody_planes(chroma: torch.Tensor, n_mels: int, layout: str = "broadcast",
                  template: torch.Tensor | None = None) -> torch.Tensor:
    """Chroma (B, 12, N) -> the UNetMel frame condition (B, 12, n_mels, N) in ``layout``.

    "broadcast" returns an expanded view; "pitch_class_mel" needs ``template``
    (:func:`pitch_class_mel_template`, (12, n_mels)) and multiplies it in.
    """
    if layout not in MELODY_LAYOUTS:
        raise ValueError(f"melody layout must be one of {MELODY_LAYOUTS}, got {layout!r}")
    if chroma.dim() != 3 or chroma.shape[1] != 12:
        raise ValueError(f"chroma must be (B, 12, N), got {tuple(chroma.shape)}")
    if layout == "broadcast":
        return chroma[:, :, None, :].expand(-1, -1, n_mels, -1)
    if template is None or tuple(template.shape) != (12, n_mels):
        got = None if template is None else tuple(template.shape)
        raise ValueError(f"layout 'pitch_class_mel' needs a (12, {n_mels}) template, got {got}")
    return chroma[:, :, None, :] * template.to(chroma.device, chroma.dtype)[None, :, :, None]
