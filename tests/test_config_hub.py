"""Configs round-trip through strict JSON; components save and load through safetensors."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from audiodiff.audio import MelConfig
from audiodiff.config import Config, ConfigError, register_config
from audiodiff.hub import load_component, register_model, resolve_pretrained, save_component


@register_config
@dataclasses.dataclass(frozen=True)
class _TinyConfig(Config):
    mel: MelConfig = dataclasses.field(default_factory=MelConfig)
    widths: tuple[int, ...] = (4, 8)
    scale: float = 1.0


@register_model(_TinyConfig)
class _Tiny(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(config.widths, config.widths[1:]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x * self.config.scale


def test_json_round_trip_nested_and_tuples():
    c = _TinyConfig(mel=MelConfig(n_mels=64), widths=(4, 6, 8), scale=2)
    back = _TinyConfig.from_json(c.to_json())
    assert back == c and isinstance(back.widths, tuple) and isinstance(back.scale, float)
    data = json.loads(c.to_json())
    assert data["format_version"] == 1 and data["type"] == "_TinyConfig"


def test_unknown_key_is_an_error():
    data = json.loads(MelConfig().to_json())
    data["hop_lenght"] = 128
    with pytest.raises(ConfigError, match="hop_lenght"):
        MelConfig.from_dict(data)


def test_newer_format_version_is_refused():
    data = json.loads(MelConfig().to_json())
    data["format_version"] = 99
    with pytest.raises(ConfigError, match="newer"):
        MelConfig.from_dict(data)


def test_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="expected a MelConfig"):
        MelConfig.from_json(_TinyConfig().to_json())


def test_save_load_identical_outputs(tmp_path):
    model = _Tiny(_TinyConfig(widths=(4, 16, 3)))
    save_component(model, tmp_path / "m")
    back = load_component(tmp_path / "m")
    x = torch.randn(5, 4)
    assert isinstance(back, _Tiny) and back.config == model.config
    assert torch.equal(back(x), model(x))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


def test_fp16_storage_loads_into_fp32(tmp_path):
    model = _Tiny(_TinyConfig())
    save_component(model, tmp_path / "m", dtype=torch.float16)
    back = load_component(tmp_path / "m")
    assert back.layers[0].weight.dtype == torch.float32
    assert torch.allclose(back.layers[0].weight, model.layers[0].weight, atol=1e-3)


def test_strict_loading_names_the_keys(tmp_path):
    save_component(_Tiny(_TinyConfig(widths=(4, 8, 8))), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["widths"] = [4, 8]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unexpected.*layers.1"):
        load_component(tmp_path / "m")


def test_not_safetensors_is_refused_without_unpickling(tmp_path):
    save_component(_Tiny(_TinyConfig()), tmp_path / "m")
    torch.save({"x": 1}, tmp_path / "m" / "model.safetensors")  # a pickle in disguise
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_component(tmp_path / "m")


def test_resolve_pretrained(tmp_path, monkeypatch):
    assert resolve_pretrained(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_pretrained(tmp_path / "missing")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not be fetched"):
        resolve_pretrained("nobody-here/no-such-model")


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a temporary file; it must not keep mkstemp's 0600, or a model
    or clip saved for others (a shared folder, a served demo output) is unreadable to them."""
    import os
    import stat

    from audiodiff.audio import save_audio
    from audiodiff.config import FILE_MODE, atomic_write_text
    from audiodiff.data.cache import atomic_write_bytes as cache_write
    from audiodiff.testing import tiny_text_to_audio_pipeline

    mask = os.umask(0)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask
    folder = tiny_text_to_audio_pipeline(n_mels=16).save_pretrained(tmp_path / "model")
    save_audio(tmp_path / "a.wav", torch.zeros(1, 100), 8000)
    atomic_write_text(tmp_path / "note.txt", "hi")
    cache_write(tmp_path / "cached.bin", b"x")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 7
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE, path
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_load_component_alone_knows_every_component(tmp_path):
    """A fresh interpreter that imports only audiodiff.hub loads a UNet, a text conditioner and a
    sound length head: the registry fills itself (it used to say 'known types: none')."""
    import subprocess
    import sys

    from audiodiff.conditioning.length import SoundLengthConfig, SoundLengthHead
    from audiodiff.conditioning.text import TextConditioner, TextConditionerConfig
    from audiodiff.models.unet_mel import UNetMel
    from audiodiff.testing import tiny_unet_mel_config

    save_component(UNetMel(tiny_unet_mel_config()), tmp_path / "unet")
    save_component(TextConditioner(TextConditionerConfig(encoder="hash", dim=16)), tmp_path / "text")
    save_component(SoundLengthHead(SoundLengthConfig(dim=16)), tmp_path / "length")
    code = ("import sys; from audiodiff.hub import load_component; "
            "print(*[type(load_component(sys.argv[1] + '/' + n)).__name__ for n in ('unet', 'text', 'length')])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["UNetMel", "TextConditioner", "SoundLengthHead"]
