"""audiodiff.delta: a module stored as its low-bit difference to another (the bundled guide)."""

import json

import pytest
import torch
from torch import nn

from audiodiff.config import ConfigError
from audiodiff.delta import (
    load_delta, pack_codes, quantise_per_channel, round_per_channel, save_delta, unpack_codes, weights_fingerprint,
)


def _reference_pack(codes: list[int], bits: int) -> bytes:
    """Bit packing with Python integers: code k (offset to be unsigned) at bit k * bits."""
    levels = 2 ** (bits - 1) - 1
    stream = sum((c + levels) << (k * bits) for k, c in enumerate(codes))
    return stream.to_bytes(-(-len(codes) * bits // 8), "little")


@pytest.mark.parametrize("bits", range(2, 9))
def test_packing_matches_python_integers_and_round_trips(bits):
    levels = 2 ** (bits - 1) - 1
    for n in (1, 3, 8, 1001):
        codes = torch.randint(-levels, levels + 1, (n,), dtype=torch.int8)
        packed = pack_codes(codes, bits)
        assert packed.dtype == torch.uint8 and bytes(packed.tolist()) == _reference_pack(codes.tolist(), bits)
        assert torch.equal(unpack_codes(packed, bits, n), codes)
    with pytest.raises(ValueError, match="packed bytes"):
        unpack_codes(packed[:-1], bits, 1001)


def test_quantisation_error_is_half_a_step_per_channel():
    t = torch.randn(5, 3, 4) * torch.tensor([1e-4, 1.0, 30.0, 0.0, 2.0])[:, None, None]
    for bits in (4, 6, 8):
        codes, scale = quantise_per_channel(t, bits)
        levels = 2 ** (bits - 1) - 1
        assert codes.dtype == torch.int8 and codes.abs().max() <= levels and scale.dtype == torch.float16
        err = (round_per_channel(t, bits) - t).abs().amax(dim=(1, 2))
        assert (err <= scale.float() * 0.5 * 1.001 + 1e-12).all(), (bits, err, scale)
        assert err[3] == 0  # an all-zero channel stays zero (scale 0, no division by it)
    assert (round_per_channel(t, 8) - t).abs().sum() < (round_per_channel(t, 4) - t).abs().sum() / 8


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 16, 3)
        self.norm = nn.GroupNorm(4, 16)
        self.proj = nn.Linear(16, 8)
        self.register_buffer("steps", torch.tensor([3]))


def _pair(seed=0):
    torch.manual_seed(seed)
    base, module = _Net(), _Net()
    module.load_state_dict(base.state_dict())
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return base, module


def test_delta_round_trip_is_within_the_rounding_and_checks_its_base(tmp_path):
    base, module = _pair()
    errors = {}
    for bits in (4, 8):
        folder = save_delta(module, base, tmp_path / f"d{bits}", bits=bits)
        back = load_delta(folder, base)
        assert back is not base and torch.equal(back.steps, base.steps)
        assert torch.equal(back.norm.weight, module.norm.weight.half().float())  # 1-D: fp16 as is
        diff = module.conv.weight - base.conv.weight
        step = diff.abs().amax(dim=(1, 2)) / (2 ** (bits - 1) - 1)
        err = (back.conv.weight - module.conv.weight).abs().amax(dim=(1, 2))
        assert (err <= 0.5 * step * 1.001 + 1e-7).all()
        errors[bits] = (back.proj.weight - module.proj.weight).abs().mean()
    assert errors[8] < errors[4] / 8
    assert json.loads((tmp_path / "d4" / "config.json").read_text())["base_sha256"] == weights_fingerprint(
        base.state_dict())
    # another base (even one weight apart) is refused, naming the reason
    other = _pair()[0]
    with torch.no_grad():
        other.proj.bias[0] += 0.5
    with pytest.raises(ValueError, match="fingerprints differ"):
        load_delta(tmp_path / "d4", other)


def test_base_dtype_is_the_stored_bases(tmp_path):
    """A difference taken against the fp16-stored base is within half a step on the weights a
    loader of that base has; the fingerprint is of fp16 values, so their float32 copy passes."""
    base, module = _pair(1)
    save_delta(module, base, tmp_path / "d", bits=8, base_dtype=torch.float16)
    stored = _Net()
    stored.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in base.state_dict().items()})
    assert weights_fingerprint(stored.state_dict()) == weights_fingerprint(base.state_dict())
    back = load_delta(tmp_path / "d", stored)
    diff = module.proj.weight - stored.proj.weight
    step = diff.abs().amax(dim=1) / 127
    assert ((back.proj.weight - module.proj.weight).abs().amax(dim=1) <= 0.5 * step * 1.001 + 1e-9).all()


def test_bad_deltas_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    base, module = _pair()
    with pytest.raises(ConfigError, match="bits must be an integer from 2 to 8"):
        save_delta(module, base, tmp_path / "x", bits=9)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="same architecture"):
        save_delta(nn.Linear(3, 3), base, tmp_path / "y")
    folder = save_delta(module, base, tmp_path / "d")
    state = load_file(str(folder / "model.safetensors"))
    del state["proj.weight.scale"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing \['proj.weight.scale'\]"):
        load_delta(folder, base)
    torch.save({"x": 1}, folder / "model.safetensors")  # a pickle is never unpickled
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_delta(folder, base)


def test_attach_guide_script_writes_a_new_folder_with_a_difference_guide(tmp_path):
    """scripts/attach_guide.py (how the bundled model got its guide): a new folder whose guide/ is
    a weight difference, with the weights asked for; never written over the model itself."""
    import sys
    from pathlib import Path

    from audiodiff.delta import is_delta_folder
    from audiodiff.pipelines import TextToAudioPipeline
    from audiodiff.testing import tiny_text_to_audio_pipeline

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from attach_guide import main

    model = tiny_text_to_audio_pipeline(seed=0).save_pretrained(tmp_path / "model")
    guide = tiny_text_to_audio_pipeline(seed=1).save_pretrained(tmp_path / "guide")
    out = main(["--model", str(model), "--guide", str(guide), "--bits", "6", "--weight", "1.5",
                "--melody-weight", "0", "--out", str(tmp_path / "out")])
    assert is_delta_folder(out / "guide")
    pipe = TextToAudioPipeline.from_pretrained(out)
    assert pipe.autoguidance() == 1.5 and pipe.autoguidance(mode="melody") == 0.0
    with pytest.raises(SystemExit, match="must be a new"):
        main(["--model", str(model), "--guide", str(guide), "--out", str(model)])


def test_extrapolate_weights_script_moves_past_the_model_and_drops_a_stale_guide(tmp_path):
    """scripts/extrapolate_weights.py: W + alpha (W - W_earlier) in a new folder, stored in the
    model's dtype; a difference guide (made against the old UNet) is left out, and attach_guide
    gives the new folder one again."""
    import sys
    from pathlib import Path

    from audiodiff.delta import is_delta_folder
    from audiodiff.hub import load_component
    from audiodiff.pipelines import TextToAudioPipeline
    from audiodiff.testing import tiny_text_to_audio_pipeline

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from attach_guide import main as attach
    from extrapolate_weights import main

    model = tiny_text_to_audio_pipeline(seed=0).save_pretrained(tmp_path / "model", dtype=torch.float16)
    earlier = tiny_text_to_audio_pipeline(seed=1).save_pretrained(tmp_path / "earlier", dtype=torch.float16)
    guided = attach(["--model", str(model), "--guide", str(earlier), "--out", str(tmp_path / "guided")])
    out = main(["--model", str(guided), "--earlier", str(earlier), "--alpha", "0.5", "--out", str(tmp_path / "out")])
    new = load_component(out / "unet", dtype=torch.float32).state_dict()
    w = load_component(model / "unet", dtype=torch.float32).state_dict()
    w0 = load_component(earlier / "unet", dtype=torch.float32).state_dict()
    key = next(k for k, v in w.items() if v.is_floating_point() and v.abs().sum() > 0 and not torch.equal(v, w0[k]))
    assert torch.allclose(new[key], (w[key] + 0.5 * (w[key] - w0[key])).half().float())
    from audiodiff.hub import read_weights

    assert {t.dtype for t in read_weights(out / "unet" / "model.safetensors").values()} == {torch.float16}
    assert not (out / "guide").exists() and is_delta_folder(guided / "guide")
    assert TextToAudioPipeline.from_pretrained(out).guide is None
    again = attach(["--model", str(out), "--guide", str(earlier), "--out", str(tmp_path / "again")])
    assert TextToAudioPipeline.from_pretrained(again).guide is not None
    # alpha 0 is the model itself; other architectures and folders are refused
    same = main(["--model", str(model), "--earlier", str(earlier), "--alpha", "0", "--out", str(tmp_path / "same")])
    assert all(torch.equal(a, b) for a, b in zip(read_weights(same / "unet" / "model.safetensors").values(),
                                                 read_weights(model / "unet" / "model.safetensors").values()))
    with pytest.raises(SystemExit, match="must be a new"):
        main(["--model", str(model), "--earlier", str(earlier), "--alpha", "1", "--out", str(model)])
    with pytest.raises(SystemExit, match="not a pipeline folder"):
        main(["--model", str(model / "unet"), "--earlier", str(earlier), "--alpha", "1", "--out", str(tmp_path / "x")])
    from extrapolate_weights import extrapolate

    with pytest.raises(ValueError, match="same architecture"):
        extrapolate({"a": torch.ones(2)}, {"b": torch.ones(2)}, 1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\) against the earlier \(3,\)"):
        extrapolate({"a": torch.ones(2)}, {"a": torch.ones(3)}, 1.0)
