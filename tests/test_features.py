"""Mel and chroma features against librosa, an implementation nobody here wrote."""

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiodiff.audio import Chroma, MelConfig, MelSpectrogram, denormalize_mel, normalize_mel
from audiodiff.config import ConfigError


def _librosa_mel(wav: np.ndarray, c: MelConfig) -> np.ndarray:
    pad = (c.n_fft - c.hop_length) // 2
    y = np.pad(wav, (pad, pad), mode="reflect")
    return librosa.feature.melspectrogram(
        y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        window="hann", center=False, power=1.0, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max,
        htk=False, norm="slaney",
    )


@pytest.mark.parametrize("config", [MelConfig(), MelConfig(sample_rate=16000, n_fft=512, hop_length=128,
                                                             win_length=512, n_mels=64, f_max=7600.0)])
def test_mel_matches_librosa(chirp, config):
    wav, _ = chirp
    ours = MelSpectrogram(config).magnitude(wav.double().float())[0].double().numpy()
    ref = _librosa_mel(wav[0].numpy().astype(np.float64), config)
    assert ours.shape == ref.shape
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    assert rel < 1e-4, rel


def test_frames_and_batch(chirp):
    wav, _ = chirp
    c = MelConfig()
    mel = MelSpectrogram(c)
    out = mel(torch.cat([wav, wav * 0.5]))
    assert out.shape == (2, c.n_mels, wav.shape[-1] // c.hop_length)
    assert torch.allclose(out[0], mel(wav)[0], atol=1e-5)
    # log floor
    assert mel(torch.zeros(1, 4096)).min().item() == pytest.approx(np.log(c.log_floor), abs=1e-4)


def test_normalisation_round_trip_and_range(chirp):
    wav, _ = chirp
    c = MelConfig()
    log_mel = MelSpectrogram(c)(wav)
    x = normalize_mel(log_mel, c)
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.2
    assert torch.allclose(denormalize_mel(x, c), log_mel, atol=1e-5)


def test_mel_config_validation():
    with pytest.raises(ConfigError, match="hop_length"):
        MelConfig(hop_length=0)
    with pytest.raises(ConfigError, match="f_max"):
        MelConfig(f_max=20000.0)
    with pytest.raises(ConfigError, match="sample_rate"):
        MelConfig(sample_rate=0)


def test_chroma_agrees_with_librosa_on_a_tone():
    sr = 22050
    t = torch.arange(sr) / sr
    wav = (0.5 * torch.sin(2 * torch.pi * 440.0 * t))[None]  # A4
    ours = Chroma(MelConfig())(wav)[0]
    ref = librosa.feature.chroma_stft(y=wav[0].numpy(), sr=sr, n_fft=1024, hop_length=256)
    assert ours.shape[0] == 12 and ours.shape[1] == wav.shape[-1] // 256
    # librosa's chroma starts at C; A is bin 9. Both put the energy there.
    assert int(ours.mean(1).argmax()) == 9 == int(ref.mean(1).argmax())
    onehot = Chroma(MelConfig(), argmax=True)(wav)[0]
    assert torch.all(onehot.sum(0) == 1) and torch.all(onehot.argmax(0) == 9)


def test_chroma_ignores_bass():
    sr = 22050
    t = torch.arange(sr) / sr
    melody = torch.sin(2 * torch.pi * 659.26 * t)  # E5
    bass = 3.0 * torch.sin(2 * torch.pi * 55.0 * t)  # A1, louder
    chroma = Chroma(MelConfig())((0.2 * (melody + bass))[None])[0]
    assert int(chroma.mean(1).argmax()) == 4  # E
