"""Audio I/O: formats, rates, channels, atomic writes and the errors users see."""

import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import (
    AudioError, load_audio, loudness, loudness_normalize, peak_normalize, resample, save_audio,
)
from audiodiff.audio import io as audio_io


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_save_load_round_trip(tmp_path, chirp, ext):
    wav, sr = chirp
    path = save_audio(tmp_path / f"x{ext}", wav, sr)
    back, back_sr = load_audio(path)
    assert back_sr == sr and back.dtype == torch.float32 and back.shape[0] == 1
    n = min(back.shape[-1], wav.shape[-1])
    tol = 0.05 if ext == ".ogg" else 1e-4  # vorbis is lossy
    err = (back[..., :n] - wav[..., :n]).pow(2).mean().sqrt()
    assert err < tol


def test_stereo_any_rate_resampled_and_mono(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 880 * t)], axis=1)
    sf.write(tmp_path / "s.flac", stereo.astype(np.float32), sr)
    wav, out_sr = load_audio(tmp_path / "s.flac")
    assert wav.shape == (2, sr) and out_sr == sr
    mono, mono_sr = load_audio(tmp_path / "s.flac", sample_rate=22050, mono=True)
    assert mono.shape == (1, 22050) and mono_sr == 22050
    # resampling keeps a 440 Hz tone at 440 Hz
    spec = torch.fft.rfft(resample(wav[:1], sr, 22050)[0])
    peak_hz = spec.abs().argmax().item() * 22050 / 22050
    assert abs(peak_hz - 440) < 2


def test_mp3_is_read(tmp_path, chirp):
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile built without mp3")
    wav, sr = chirp
    sf.write(tmp_path / "c.mp3", wav[0].numpy(), sr, format="MP3")
    back, _ = load_audio(tmp_path / "c.mp3")
    assert back.shape[0] == 1 and back.abs().max() > 0.1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_non_audio_file(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(p)


def test_empty_file(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="0 samples"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "zero_bytes.wav").write_bytes(b"")
    with pytest.raises(AudioError):
        load_audio(tmp_path / "zero_bytes.wav")


def test_nan_file(tmp_path):
    sf.write(tmp_path / "nan.wav", np.full(100, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_zero_sample_rate_header(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(100, dtype=np.float32), 8000, subtype="PCM_16")
    raw = bytearray((tmp_path / "a.wav").read_bytes())
    raw[24:28] = struct.pack("<I", 0)
    (tmp_path / "sr0.wav").write_bytes(bytes(raw))
    with pytest.raises(AudioError, match="sample rate of 0"):
        load_audio(tmp_path / "sr0.wav")


@pytest.mark.parametrize("bad", [0, -8000, 2.5, None])
def test_bad_sample_rate_arguments(tmp_path, chirp, bad):
    wav, _ = chirp
    with pytest.raises(AudioError, match="sample rate"):
        save_audio(tmp_path / "x.wav", wav, bad)
    assert not (tmp_path / "x.wav").exists()


def test_too_long_is_refused_before_decoding(tmp_path, chirp):
    wav, sr = chirp
    save_audio(tmp_path / "c.wav", wav, sr)
    with pytest.raises(AudioError, match="at most 1 s"):
        load_audio(tmp_path / "c.wav", max_duration_s=1.0)


def test_save_refuses_empty_nan_and_unknown_extension(tmp_path):
    with pytest.raises(AudioError, match="0 samples"):
        save_audio(tmp_path / "e.wav", torch.zeros(1, 0), 22050)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "n.wav", torch.full((1, 10), float("nan")), 22050)
    with pytest.raises(AudioError, match="extension"):
        save_audio(tmp_path / "x.aac", torch.zeros(1, 10), 22050)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_partial(tmp_path, chirp, monkeypatch):
    wav, sr = chirp
    target = save_audio(tmp_path / "out.wav", wav, sr)
    before = target.read_bytes()

    def broken_write(file, data, samplerate, **kw):
        with open(file, "wb") as fh:
            fh.write(b"RIFF partial")
        raise OSError("disk full")

    import soundfile

    monkeypatch.setattr(soundfile, "write", broken_write)  # io.py imports soundfile on use
    with pytest.raises(OSError, match="disk full"):
        save_audio(target, wav * 0.1, sr)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_peak_and_loudness_normalisation(chirp):
    wav, sr = chirp
    peaked = peak_normalize(wav * 0.01, peak_db=-3.0)
    assert abs(20 * torch.log10(peaked.abs().max()).item() + 3.0) < 1e-3
    quiet = wav * 0.01
    out = loudness_normalize(quiet, sr, target_lufs=-20.0, peak_db=0.0)
    assert abs(loudness(out, sr) + 20.0) < 0.5
    silent = torch.zeros(1, sr)
    assert torch.equal(loudness_normalize(silent, sr), silent)
