"""The command line: help, vocode, and one-line errors."""

import pytest

from audiodiff.audio import load_audio, save_audio
from audiodiff.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "vocode" in out


@pytest.mark.parametrize("vocoder", ["griffinlim", "hifigan", "default"])
def test_vocode_writes_audio(tmp_path, chirp, vocoder, capsys):
    wav, sr = chirp
    src = save_audio(tmp_path / "in.flac", wav[:, :11025], sr)
    assert main(["vocode", str(src), "-o", str(tmp_path / "out.wav"), "--vocoder", vocoder]) == 0
    out, out_sr = load_audio(tmp_path / "out.wav")
    assert out_sr == 22050 and out.shape[-1] == (11025 // 256) * 256 and out.abs().max() > 0.01
    assert "wrote" in capsys.readouterr().out


def test_vocode_errors_are_one_line(tmp_path, capsys):
    assert main(["vocode", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: audio file not found") and "Traceback" not in err
    (tmp_path / "bad.wav").write_text("nope")
    assert main(["vocode", str(tmp_path / "bad.wav"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_generate_refuses_fp16_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert main(["generate", "rain", "-o", str(out), "--dtype", "fp16", "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err
    assert "fp16 on the CPU" in err and "bf16" in err and "Traceback" not in err
    assert not out.exists()


def test_generate_with_a_guide_runs_autoguidance_and_refuses_an_unused_guide(tmp_path, capsys):
    """--guide DIR --autoguidance W generates and says so; --guide alone is an error, not a guide
    loaded and silently ignored (the model's default weight is 0)."""
    from audiodiff.testing import tiny_text_to_audio_pipeline

    model = tiny_text_to_audio_pipeline(seed=0).save_pretrained(tmp_path / "model")
    guide = tiny_text_to_audio_pipeline(seed=1).save_pretrained(tmp_path / "guide")
    out = tmp_path / "o.wav"
    base = ["generate", "rain", "-o", str(out), "--model", str(model), "--guide", str(guide), "--duration-s", "0.5",
            "--steps", "2", "--dtype", "fp32", "-q"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "--autoguidance" in err and "Traceback" not in err and not out.exists()
    assert main([*base, "--autoguidance", "1"]) == 0
    assert "autoguidance 1" in capsys.readouterr().out and out.exists()
    # the audio-to-audio commands take the same options
    varied = tmp_path / "v.wav"
    assert main(["vary", str(out), "--strength", "0.5", "--model", str(model), "--guide", str(guide),
                 "--autoguidance", "2", "--steps", "2", "--dtype", "fp32", "-q", "-o", str(varied)]) == 0
    assert "autoguidance 2" in capsys.readouterr().out and varied.exists()


def test_melody_command_refuses_a_guide_its_mode_would_not_use(tmp_path, capsys, chirp):
    """A model whose melody mode does not autoguide (melody_autoguidance = 0, as the bundled
    one): `melody --guide DIR` without a weight is an error, not a guide loaded for nothing."""
    import copy

    from audiodiff.pipelines import TextToAudioPipeline
    from audiodiff.testing import tiny_text_to_audio_pipeline

    p = tiny_text_to_audio_pipeline(seed=0, cond_channels=12)
    config = p.config.replace(default_autoguidance=1.0, melody_autoguidance=0.0)
    model = TextToAudioPipeline(p.unet, p.text, p.vocoder, config, p.sound_length,
                                copy.deepcopy(p.unet)).save_pretrained(tmp_path / "m")
    wav, sr = chirp
    ref = save_audio(tmp_path / "ref.wav", wav[:, :sr // 2], sr)
    out = tmp_path / "o.wav"
    args = ["melody", str(ref), "--model", str(model), "--guide", str(model), "--steps", "1", "--dtype", "fp32",
            "-q", "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "in this mode is 0" in err and "Traceback" not in err and not out.exists()
    assert main([*args, "--autoguidance", "1"]) == 0 and out.exists()
    assert "autoguidance 1" in capsys.readouterr().out
