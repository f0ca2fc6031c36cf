"""benchmarks/guides.py: the guide networks it derives from a model (autoguidance experiments)."""

import sys
from pathlib import Path

import pytest
import torch

from audiodiff.hub import save_component
from audiodiff.testing import tiny_text_to_audio_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from guides import build_guide  # noqa: E402


def _unet(seed):
    unet = tiny_text_to_audio_pipeline(seed=seed).unet
    with torch.no_grad():  # the output layer starts at zero: give every layer weights
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return unet


def test_delta_guide_lands_near_the_other_checkpoint(tmp_path):
    """delta:BITS:DIR is the model plus the rounded difference: exactly DIR's weights where the
    difference is representable (1-D tensors), within half a step of them elsewhere, and closer
    with more bits; delta to the model itself is the model."""
    model, other = _unet(0), _unet(1)
    save_component(other, tmp_path / "other")
    save_component(model, tmp_path / "self")
    errors = {}
    for bits in (4, 8):
        guide = build_guide(f"delta:{bits}:{tmp_path / 'other'}", model)
        err = 0.0
        for (name, g), o, m in zip(guide.state_dict().items(), other.state_dict().values(), model.state_dict().values()):
            if g.ndim < 2:
                assert torch.allclose(g, o, atol=1e-6), name
            err = max(err, float((g - o).abs().max() / ((o - m).abs().max() + 1e-12)))
        errors[bits] = err
    assert errors[8] < errors[4] <= 0.5 / 7 + 1e-4
    same = build_guide(f"delta:4:{tmp_path / 'self'}", model)
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values()))


def test_perturbed_attention_changes_only_the_attention():
    model = _unet(0)
    guide = build_guide("pag", model)
    x, c_noise = torch.randn(1, 1, 80, 16), torch.tensor([0.3])
    from audiodiff.conditioning.base import Conditioning

    cond = Conditioning(tokens=torch.randn(1, 3, model.config.text_dim), token_mask=torch.ones(1, 3, dtype=torch.bool),
                        pooled=torch.randn(1, model.config.pooled_dim))
    with torch.no_grad():
        assert not torch.allclose(guide(x, c_noise, cond), model(x, c_noise, cond), atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(guide.state_dict().values(), model.state_dict().values()))
    with pytest.raises(SystemExit, match="quant:BITS"):
        build_guide("quant:1", model)
    assert build_guide("none", model) is None
    assert build_guide("own", model, own=guide) is guide
    with pytest.raises(SystemExit, match="no guide network"):
        build_guide("own", model)
