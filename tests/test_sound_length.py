"""The sound length head: prompt -> seconds of sound, the default ``sound_s="auto"`` of a model
with a timing input."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.cli import main as cli_main
from audiodiff.conditioning.length import (
    SoundLengthConfig, SoundLengthHead, fit_sound_length, ridge_fit,
)
from audiodiff.config import ConfigError
from audiodiff.data.manifest import ManifestEntry
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.testing import tiny_text_conditioner, tiny_text_to_audio_pipeline


def test_ridge_fit_matches_scikit_learn():
    from sklearn.linear_model import Ridge  # installed with librosa

    g = np.random.default_rng(0)
    x = g.normal(size=(200, 12))
    y = x @ g.normal(size=12) + 0.5 + 0.1 * g.normal(size=200)
    w = g.uniform(0.2, 2.0, size=200)
    for alpha in (0.0, 0.3, 10.0):
        ref = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(x, y, sample_weight=w)
        coef, bias = ridge_fit(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w), alpha)
        np.testing.assert_allclose(coef.numpy(), ref.coef_, rtol=1e-6, atol=1e-8)
        assert bias == pytest.approx(ref.intercept_, rel=1e-6, abs=1e-8)


def _entries(n_per_kind: int = 12) -> list[ManifestEntry]:
    """Short clicks (~0.3 s) and long ambiences (~4 s) with paraphrased captions; every 4th clip
    of each kind is validation."""
    kinds = {0.3: ["a short click", "a tiny click", "click sound"],
             4.0: ["rain ambience", "steady rain ambience", "rain falling"]}
    out = []
    for seconds, captions in kinds.items():
        for i in range(n_per_kind):
            out.append(ManifestEntry(path=f"/x/{seconds}_{i}.wav", captions=(captions[i % 3], captions[(i + 1) % 3]),
                                     duration_s=seconds * (1 + 0.05 * (i % 3)), sample_rate=22050,
                                     source="test", license="CC0", split="valid" if i % 4 == 3 else "train"))
    return out


def _encode(text):
    return lambda captions: text.encoder.encode(captions)[2]


def test_the_head_learns_lengths_from_captions():
    text = tiny_text_conditioner()
    head, report = fit_sound_length(_entries(), _encode(text), SoundLengthConfig(dim=text.config.dim), ridge=0.01)
    assert report.train_clips == 18 and report.valid_clips == 6
    # Validation clips: well under the constant median's error.
    assert report.mae_log < 0.2 * report.mae_log_constant
    assert report.mae_s < 0.2 * report.mae_s_constant
    with torch.no_grad():
        pred = head(_encode(text)(["click", "a click", "rain", "the rain"]))
    assert pred[:2].max() < 1.0 and pred[2:].min() > 2.0, pred
    assert "validation clips" in report.summary()


def test_the_prediction_is_the_mean_of_the_log_normal_spread():
    """Two clips with one caption, 1 s and 4 s: the regression of log seconds gives their median
    (geometric mean, 2 s); the correction exp(var / 2) with var = ln(2)^2 makes it the mean of
    the log-normal that spread fits."""
    text = tiny_text_conditioner()
    entries = [ManifestEntry(path=f"/x/{d}.wav", captions=("a knock",), duration_s=d, sample_rate=8000,
                             source="test", license="CC0") for d in (1.0, 4.0)]
    head, report = fit_sound_length(entries, _encode(text), SoundLengthConfig(dim=text.config.dim))
    assert head.config.scale == pytest.approx(math.exp(math.log(2) ** 2 / 2))
    with torch.no_grad():
        assert float(head(_encode(text)(["a knock"]))) == pytest.approx(2 * head.config.scale, rel=1e-5)
    assert report.valid_clips == 0 and report.mae_log is None and "no validation clips" in report.summary()


def test_fit_needs_training_clips_and_a_matching_encoder():
    text = tiny_text_conditioner()
    entries = [e for e in _entries() if e.split == "valid"]
    with pytest.raises(ValueError, match="at least 2 clips in split 'train'"):
        fit_sound_length(entries, _encode(text), SoundLengthConfig(dim=text.config.dim))
    with pytest.raises(ValueError, match=r"the head takes \(N, 384\)"):
        fit_sound_length(_entries(), _encode(text), SoundLengthConfig(dim=384))
    with pytest.raises(ValueError, match="ridge must be"):
        fit_sound_length(_entries(), _encode(text), SoundLengthConfig(dim=text.config.dim), ridge=-1.0)
    # No penalty and fewer captions than features: the least-norm fit, still a usable head.
    head, _ = fit_sound_length(_entries()[:2], _encode(text), SoundLengthConfig(dim=text.config.dim), ridge=0.0)
    with torch.no_grad():
        assert torch.allclose(head(_encode(text)(["a short click"])), torch.tensor([0.3]), rtol=0.1)


def test_seconds_clamps_rounds_and_fills():
    head = SoundLengthHead(SoundLengthConfig(dim=2, fill_s=3.0))
    with torch.no_grad():
        head.proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
    pooled = torch.tensor([[math.log(0.5), 0.0], [math.log(2.345), 0.0], [math.log(3.2), 0.0], [-20.0, 0.0]])
    assert head.seconds(pooled, 5.0) == [0.5, 2.35, 5.0, 0.1]   # 3.2 >= fill_s: sound throughout
    assert head.seconds(pooled, 2.0) == [0.5, 2.0, 2.0, 0.1]    # past the clip's end: throughout
    with pytest.raises(ValueError, match=r"pooled text embeddings \(B, 2\)"):
        head(torch.zeros(1, 3))


def _timed_with_head(seed: int = 0, log_s: float = math.log(0.4)) -> TextToAudioPipeline:
    pipe = tiny_text_to_audio_pipeline(seed=seed, n_mels=16, timing_channels=1)
    head = SoundLengthHead(SoundLengthConfig(dim=pipe.text.config.dim))
    with torch.no_grad():
        head.proj.bias.fill_(log_s)
        head.proj.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed))
    return TextToAudioPipeline(pipe.unet, pipe.text, pipe.vocoder, pipe.config, head)


def _recording(pipe, monkeypatch) -> list:
    seen, real = [], pipe.denoiser

    def recording(x, sigma, cond):
        seen.append(None if cond.sound_frames is None else cond.sound_frames.tolist())
        return real(x, sigma, cond)

    monkeypatch.setattr(pipe, "denoiser", recording)
    return seen


def test_auto_tells_the_model_the_predicted_length(monkeypatch):
    pipe = _timed_with_head()
    seen = _recording(pipe, monkeypatch)
    kw = dict(duration_s=1.0, num_steps=2, seed=3)
    predicted = pipe.predict_sound_s(["a beep", "a dog"], 1.0)
    assert all(0.1 <= s < 1.0 for s in predicted) and predicted[0] != predicted[1]
    auto = pipe(["a beep", "a dog"], **kw)
    assert auto.settings["sound_s"] == predicted and auto.settings["sound_s_from"] == "prompt"
    frames_per_s = pipe.config.mel.sample_rate / pipe.config.mel.hop_length
    assert seen and all(f == pytest.approx([s * frames_per_s for s in predicted * 2]) for f in seen)
    told = pipe(["a beep", "a dog"], sound_s=predicted, **kw)
    assert told.settings["sound_s_from"] == "caller"
    torch.testing.assert_close(auto.waveforms, told.waveforms, rtol=0, atol=0)
    seen.clear()
    untold = pipe(["a beep", "a dog"], sound_s=None, **kw)
    assert "sound_s" not in untold.settings and seen and all(f is None for f in seen)


def test_auto_without_a_head_leaves_the_length_to_the_model(monkeypatch):
    pipe = tiny_text_to_audio_pipeline(n_mels=16, timing_channels=1)
    seen = _recording(pipe, monkeypatch)
    assert pipe.predict_sound_s("a beep") is None
    out = pipe("a beep", duration_s=1.0, num_steps=2, seed=3)
    assert "sound_s" not in out.settings and seen and all(f is None for f in seen)


def test_the_head_is_saved_loaded_and_checked(tmp_path):
    pipe = _timed_with_head()
    pipe.save_pretrained(tmp_path / "m", dtype=torch.float16)
    loaded = TextToAudioPipeline.from_pretrained(tmp_path / "m")
    assert loaded.sound_length.proj.weight.dtype == torch.float32  # never halved
    torch.testing.assert_close(loaded.sound_length.proj.weight, pipe.sound_length.proj.weight, rtol=0, atol=0)
    assert loaded.predict_sound_s("a beep", 1.0) == pipe.predict_sound_s("a beep", 1.0)
    plain = tiny_text_to_audio_pipeline(n_mels=16)
    with pytest.raises(ConfigError, match="needs a UNet with a timing input"):
        TextToAudioPipeline(plain.unet, plain.text, plain.vocoder, plain.config, pipe.sound_length)
    with pytest.raises(ConfigError, match="takes 384-d text embeddings"):
        TextToAudioPipeline(pipe.unet, pipe.text, pipe.vocoder, pipe.config, SoundLengthHead(SoundLengthConfig()))


def _manifest(tmp_path) -> str:
    lines = []
    for e in _entries():
        path = tmp_path / f"{e.path.rsplit('/', 1)[1]}"
        sf.write(path, np.zeros(int(e.duration_s * 8000), dtype=np.float32), 8000)
        lines.append(json.dumps({"path": str(path), "captions": list(e.captions), "duration_s": e.duration_s,
                                 "sample_rate": 8000, "source": "test", "license": "CC0", "split": e.split}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "manifest.jsonl")


def test_fit_length_command_writes_the_head(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    tiny_text_to_audio_pipeline(n_mels=16, timing_channels=1).save_pretrained(tmp_path / "m")
    assert cli_main(["fit-length", str(tmp_path / "m"), "--manifest", manifest, "--ridge", "0.01",
                     "--dry-run"]) == 0
    assert not (tmp_path / "m" / "sound_length").exists()
    assert cli_main(["fit-length", str(tmp_path / "m"), "--manifest", manifest, "--ridge", "0.01",
                     "--fill-s", "3"]) == 0
    out = capsys.readouterr().out
    assert "on 6 validation clips" in out and "wrote" in out
    fit = json.loads((tmp_path / "m" / "sound_length" / "fit.json").read_text())
    assert fit["mae_log"] < 0.2 * fit["mae_log_constant"]
    pipe = TextToAudioPipeline.from_pretrained(tmp_path / "m")
    assert pipe.sound_length.config.fill_s == 3.0
    click, rain = pipe.predict_sound_s(["a click", "rain"], 5.0)
    assert click < 1.0 and rain == 5.0  # rain's ~4 s prediction reaches fill_s

    plain = tmp_path / "plain"
    tiny_text_to_audio_pipeline(n_mels=16).save_pretrained(plain)
    assert cli_main(["fit-length", str(plain), "--manifest", manifest]) == 2
    assert "no timing input" in capsys.readouterr().err


def test_generate_command_reports_the_predicted_length(tmp_path, capsys):
    folder = _timed_with_head().save_pretrained(tmp_path / "m")
    args = ["generate", "a beep", "--model", str(folder), "--duration-s", "1", "--steps", "2", "-q",
            "-o", str(tmp_path / "beep.wav")]
    assert cli_main(args) == 0
    assert "s predicted from the prompt)" in capsys.readouterr().out and (tmp_path / "beep.wav").is_file()
    assert cli_main(args + ["--sound-s", "none"]) == 0
    assert "sound" not in capsys.readouterr().out.splitlines()[-1]
    assert cli_main(args + ["--sound-s", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("sound 0.5 s)")
    with pytest.raises(SystemExit):
        cli_main(args + ["--sound-s", "long"])
    assert "expected a number of seconds, 'auto' or 'none'" in capsys.readouterr().err


def test_export_without_the_runs_data_warns_and_ships_no_head(tmp_path):
    """The export fits the head on the run's clips when it can read them (tested end to end in
    test_training_features.py); elsewhere it says how to fit one and records why it did not."""
    from audiodiff.training.config import train_config_from_dict
    from audiodiff.training.tasks import build_task
    from audiodiff.training.testing import tiny_train_dict
    from audiodiff.training.trainer import _export_sound_length

    raw = tiny_train_dict(tmp_path / "run", tmp_path / "gone")
    raw["task"]["unet"]["timing_channels"] = 1
    config = train_config_from_dict(raw)
    task = build_task(config.task)
    out = task.export(tmp_path / "model")
    with pytest.warns(UserWarning, match="no sound length head fitted .* `audiodiff fit-length"):
        record = _export_sound_length(config, task, out)
    assert "skipped" in record and not (out / "sound_length").exists()
    raw["task"]["unet"]["timing_channels"] = 0  # nothing to fit for a model without a timing input
    plain = train_config_from_dict(raw)
    assert _export_sound_length(plain, build_task(plain.task), out) is None
