"""Audio-to-audio modes of TextToAudioPipeline: vary, inpaint, continuation, generate_long, melody."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import AudioError
from audiodiff.cli import main
from audiodiff.testing import tiny_text_to_audio_pipeline

SR = 22050
FAST = dict(num_steps=3, seed=0)


def _perturb(p):
    # A randomly initialised UNet has a zero output layer; perturb it so the output depends on it.
    with torch.no_grad():
        for param in p.unet.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return p


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return _perturb(tiny_text_to_audio_pipeline(seed=0))


@pytest.fixture(scope="module")
def melody_pipe():
    torch.manual_seed(0)
    return _perturb(tiny_text_to_audio_pipeline(seed=0, cond_channels=12))


@pytest.fixture(scope="module")
def clip():
    """1.3 s of a stereo two-note tune at 44.1 kHz (exercises resampling and mixing)."""
    sr = 44100
    t = torch.arange(int(1.3 * sr)) / sr
    f = torch.where(t < 0.65, 440.0, 660.0)
    mono = 0.4 * torch.sin(2 * math.pi * torch.cumsum(f, 0) / sr)
    return torch.stack([mono, 0.5 * mono]), sr


def n_out(clip):
    wav, sr = clip
    return round(wav.shape[-1] * SR / sr)


def test_vary_strength_zero_is_the_vocoded_input_and_length_matches(pipe, clip):
    wav, sr = clip
    out = pipe.vary(wav, 0.0, sample_rate=sr, **FAST)
    assert out.waveforms.shape == (1, 1, n_out(clip))
    from audiodiff.pipelines.variations import input_mel, load_input
    mono = load_input(wav, pipe.config.mel, sr)
    expected = pipe.decode(input_mel(mono, pipe.config.mel), mono.shape[-1])
    assert torch.equal(out.waveforms, expected)
    assert out.settings["mode"] == "vary" and out.settings["strength"] == 0.0
    assert out.settings["steps_run"] == 0


def test_vary_start_sigma_grows_with_strength(pipe, clip):
    wav, sr = clip
    sig = [pipe.vary(wav, s, sample_rate=sr, num_steps=4, seed=0).settings["start_sigma"]
           for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert sig == sorted(sig) and sig[0] == 0.0 and sig[-1] == pipe.config.schedule.sigma_max


def test_vary_reproducible_per_item_and_from_file(pipe, clip, tmp_path):
    wav, sr = clip
    path = tmp_path / "in.flac"
    sf.write(path, wav.T.numpy(), sr)
    both = pipe.vary(path, 0.7, prompt="a bell", num_steps=3, seed=5, batch_size=2)
    one = pipe.vary(path, 0.7, prompt="a bell", num_steps=3, seed=6)
    assert both.seeds == [5, 6]
    # Up to float reassociation in the batch (the mels agree to ~1e-6), which Griffin-Lim's phase
    # iterations amplify in a few samples: compared by relative L2 error.
    def rel(a, b):
        return float((a - b).norm() / b.norm())
    assert rel(both.waveforms[1], one.waveforms[0]) < 1e-2
    assert rel(both.waveforms[0], one.waveforms[0]) > 0.3


def test_inpaint_keeps_the_vocoded_input_outside_the_region(pipe, clip):
    wav, sr = clip
    ref = pipe.vary(wav, 0.0, sample_rate=sr).waveforms
    out = pipe.inpaint(wav, 0.4, 0.9, prompt="a drum", sample_rate=sr, batch_size=2, **FAST)
    a, b = round(0.4 * SR), round(0.9 * SR)
    assert out.waveforms.shape == (2, 1, n_out(clip))
    assert torch.equal(out.waveforms[..., :a], ref.expand(2, -1, -1)[..., :a])
    assert torch.equal(out.waveforms[..., b:], ref.expand(2, -1, -1)[..., b:])
    assert (out.waveforms[..., a:b] - ref[..., a:b]).abs().max() > 1e-3  # something was regenerated
    assert out.settings["mode"] == "inpaint" and (out.settings["start_s"], out.settings["end_s"]) == (0.4, 0.9)


def test_continuation_exact_length_and_keeps_input(pipe, clip):
    wav, sr = clip
    ref = pipe.vary(wav, 0.0, sample_rate=sr).waveforms
    out = pipe.continuation(wav, 1.5, sample_rate=sr, **FAST)
    n = n_out(clip)
    assert out.waveforms.shape == (1, 1, n + round(1.5 * SR))
    keep = n - round(0.02 * SR)  # the crossfade sits in the input's last 20 ms
    assert torch.equal(out.waveforms[..., :keep], ref[..., :keep])
    assert out.settings["seconds"] == 1.5


def test_generate_long_60s_exact_length(pipe):
    out = pipe.generate_long("calm piano", 60.0, num_steps=1, seed=0)
    assert out.waveforms.shape == (1, 1, 60 * SR)
    assert out.settings["mode"] == "long" and out.settings["windows"] == 1 + math.ceil((60 - 10) / 7.5)
    assert torch.isfinite(out.waveforms).all()


def test_melody_needs_frame_channels(pipe, clip):
    wav, sr = clip
    with pytest.raises(ValueError, match="no melody input"):
        pipe.melody(wav, sample_rate=sr)


def test_melody_follows_reference_length_and_uses_chroma(melody_pipe, clip):
    wav, sr = clip
    out = melody_pipe.melody(wav, prompt="a flute", sample_rate=sr, **FAST)
    assert out.waveforms.shape == (1, 1, n_out(clip)) and out.settings["mode"] == "melody"
    from audiodiff.pipelines.variations import load_input, melody_chroma
    chroma = melody_chroma(load_input(wav, melody_pipe.config.mel, sr), melody_pipe.config.mel)
    assert chroma.shape[1] == 12 and set(chroma.unique().tolist()) <= {0.0, 1.0}
    # A (440 Hz) then E (660 Hz): pitch classes 9 and 4.
    top = chroma[0].argmax(0)
    assert top[5].item() == 9 and top[-10].item() == 4


def test_melody_mode_has_its_own_default_autoguidance(melody_pipe, clip):
    """config.melody_autoguidance (the bundled model's: 0) is the melody mode's default; the
    other modes keep default_autoguidance, and an explicit weight wins in every mode."""
    import copy

    from audiodiff.pipelines import TextToAudioPipeline

    wav, sr = clip
    guide = copy.deepcopy(melody_pipe.unet)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    p = melody_pipe
    guided = TextToAudioPipeline(p.unet, p.text, p.vocoder, p.config.replace(
        default_autoguidance=1.0, melody_autoguidance=0.0), p.sound_length, guide)
    plain = p.melody(wav, prompt="a flute", sample_rate=sr, **FAST)
    out = guided.melody(wav, prompt="a flute", sample_rate=sr, **FAST)
    assert "autoguidance" not in out.settings and torch.equal(out.waveforms, plain.waveforms)
    asked = guided.melody(wav, prompt="a flute", sample_rate=sr, autoguidance=1.0, **FAST)
    assert asked.settings["autoguidance"] == 1.0 and not torch.equal(asked.waveforms, plain.waveforms)
    assert guided.vary(wav, 0.5, "a flute", sample_rate=sr, **FAST).settings["autoguidance"] == 1.0
    assert guided.autoguidance(mode="melody") == 0.0 and guided.autoguidance() == 1.0
    assert p.autoguidance(mode="melody") == 0.0  # no guide: off whatever the config says
    from audiodiff.config import ConfigError

    with pytest.raises(ConfigError, match="melody_autoguidance"):
        p.config.replace(melody_autoguidance=-1.0)


def test_end_margin_only_where_the_window_ends_in_generated_frames(pipe, clip, monkeypatch):
    """config.end_margin_frames more frames are sampled where a window's last frame is generated
    (continuation) and none where it is known (inpainting inside the clip) or given (vary)."""
    wav, sr = clip
    widths = []
    real = pipe.denoiser

    def recording(x, sigma, cond):
        widths.append(x.shape[-1])
        return real(x, sigma, cond)

    monkeypatch.setattr(pipe, "denoiser", recording)
    margin = pipe.config.end_margin_frames
    n_in = -(-n_out(clip) // pipe.config.mel.hop_length)  # the input's frames

    def widths_of(call) -> set[int]:
        widths.clear()
        call()
        return set(widths)

    assert margin == 8
    # continuation: the window ends in new frames -> margin
    (w,) = widths_of(lambda: pipe.continuation(wav, 0.5, sample_rate=sr, **FAST))
    assert w == -(-(n_out(clip) + round(0.5 * SR)) // pipe.config.mel.hop_length) + margin
    # inpainting in the middle: the window's end is the known input -> none
    assert widths_of(lambda: pipe.inpaint(wav, 0.4, 0.6, sample_rate=sr, **FAST)) == {n_in}
    # vary starts from the input (init) -> none
    assert widths_of(lambda: pipe.vary(wav, 0.5, sample_rate=sr, **FAST)) == {n_in}


@pytest.mark.parametrize("layout", ["broadcast", "pitch_class_mel"])
def test_melody_frames_reach_the_unet_in_the_trained_layout_and_guide(melody_pipe, clip, layout, monkeypatch):
    """The conditional branch gets the reference's chroma in the model's layout; with melody
    guidance the unconditional branch gets no melody, without it the same melody."""
    from audiodiff.audio.features import melody_planes, pitch_class_mel_template
    from audiodiff.pipelines.variations import load_input, melody_chroma

    wav, sr = clip
    monkeypatch.setattr(melody_pipe, "config", melody_pipe.config.replace(melody_layout=layout))
    seen = []
    real = melody_pipe.denoiser

    def recording(x, sigma, cond):
        seen.append(cond.frames.detach().clone())
        return real(x, sigma, cond)

    monkeypatch.setattr(melody_pipe, "denoiser", recording)
    mc = melody_pipe.config.mel
    chroma = melody_chroma(load_input(wav, mc, sr), mc)
    template = pitch_class_mel_template(mc) if layout == "pitch_class_mel" else None
    expected = melody_planes(chroma, mc.n_mels, layout, template)
    for guided in (True, False):
        seen.clear()
        melody_pipe.melody(wav, prompt="a flute", sample_rate=sr, melody_guidance=guided, guidance_scale=3.0,
                           **FAST)
        both = [f for f in seen if f.shape[0] == 2]  # guided steps: cond and uncond in one batch
        assert both, "no guided step was taken"
        n = expected.shape[-1]
        for f in both:  # frames past n: the end margin (config.end_margin_frames), no melody
            assert f.shape[-1] == n + melody_pipe.config.end_margin_frames and float(f[..., n:].abs().sum()) == 0
            assert torch.allclose(f[:1, ..., :n], expected.to(f.dtype), atol=1e-6)
            if guided:
                assert float(f[1:].abs().sum()) == 0.0
            else:
                assert torch.equal(f[1:], f[:1])


@pytest.mark.parametrize("call, match", [
    (lambda p, w, sr: p.vary(w, 1.5, sample_rate=sr), r"strength must be in \[0, 1\]"),
    (lambda p, w, sr: p.vary(w, "high", sample_rate=sr), "strength must be a number"),
    (lambda p, w, sr: p.vary(w, float("nan"), sample_rate=sr), "strength must be in"),
    (lambda p, w, sr: p.vary(w, 0.5), "pass sample_rate="),
    (lambda p, w, sr: p.vary(torch.zeros(2, sr), 0.5, sample_rate=sr), "is silent"),
    (lambda p, w, sr: p.vary(w[:, :300], 0.5, sample_rate=sr), "shorter than one mel frame"),
    (lambda p, w, sr: p.vary(w.T, 0.5, sample_rate=sr), r"must be \(channels, samples\)"),
    (lambda p, w, sr: p.vary(12, 0.5, sample_rate=sr), "path to an audio file or a float tensor"),
    (lambda p, w, sr: p.inpaint(w, 1.0, 0.5, sample_rate=sr), "empty or reversed"),
    (lambda p, w, sr: p.inpaint(w, 0.5, 0.5, sample_rate=sr), "empty or reversed"),
    (lambda p, w, sr: p.inpaint(w, 0.5, 9.0, sample_rate=sr), r"end_s must be in \[0, 1.3\]"),
    (lambda p, w, sr: p.inpaint(w, -1, 0.5, sample_rate=sr), "start_s must be in"),
    (lambda p, w, sr: p.continuation(w, 0, sample_rate=sr), r"seconds must be in \(0, 600\]"),
    (lambda p, w, sr: p.continuation(w, 700, sample_rate=sr), r"seconds must be in \(0, 600\]"),
    (lambda p, w, sr: p.continuation(w, 599.5, sample_rate=sr), "at most 600 s in all"),
    (lambda p, w, sr: p.generate_long("rain", 601), r"duration_s must be in \(0, 600\]"),
    (lambda p, w, sr: p.generate_long("rain", 60, overlap_s=10), "overlap_s"),
    (lambda p, w, sr: p.generate_long(None, 60), "prompt is empty"),
])
def test_bad_input_is_a_clear_value_error(pipe, clip, call, match):
    wav, sr = clip
    with pytest.raises(ValueError, match=match):
        call(pipe, wav, sr)


def test_input_length_limit_is_a_config_attribute(pipe, tmp_path):
    p = tiny_text_to_audio_pipeline()
    p.config = p.config.replace(max_input_duration_s=60.0)
    long = np.random.default_rng(0).standard_normal(61 * 8000).astype(np.float32) * 0.1
    with pytest.raises(AudioError, match="at most 60 s"):
        p.vary(long, 0.5, sample_rate=8000)
    path = tmp_path / "long.wav"
    sf.write(path, long, 8000)
    with pytest.raises(AudioError, match="at most 60 s"):
        p.vary(path, 0.5)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="cannot read"):
        pipe.vary(bad, 0.5)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, melody_pipe):
    folder = tmp_path_factory.mktemp("model")
    melody_pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def in_wav(tmp_path_factory, clip):
    path = tmp_path_factory.mktemp("in") / "in.wav"
    sf.write(path, clip[0].T.numpy(), clip[1])
    return path


@pytest.mark.parametrize("args, seconds", [
    (["vary", "{in}", "--strength", "0.6", "--prompt", "a bell"], 1.3),
    (["inpaint", "{in}", "--start-s", "0.3", "--end-s", "0.8", "--prompt", "a drum"], 1.3),
    (["continue", "{in}", "--seconds", "1.0"], 2.3),
    (["long", "rain", "--duration-s", "12", "--window-s", "5", "--overlap-s", "1"], 12.0),
    (["melody", "{in}", "--prompt", "a flute"], 1.3),
])
def test_cli_commands_end_to_end(model_dir, in_wav, tmp_path, capsys, args, seconds):
    out = tmp_path / "out.wav"
    argv = [a.replace("{in}", str(in_wav)) for a in args]
    rc = main(argv + ["--model", str(model_dir), "-o", str(out), "--steps", "2", "--seed", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    data, sr = sf.read(out)
    assert sr == SR and len(data) == round(seconds * SR)


def test_cli_errors_are_one_line(model_dir, in_wav, tmp_path, capsys):
    rc = main(["vary", str(in_wav), "--strength", "2", "--model", str(model_dir), "-o", str(tmp_path / "o.wav")])
    assert rc == 2 and "strength must be in [0, 1]" in capsys.readouterr().err
