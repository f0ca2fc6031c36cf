"""benchmarks/peers.py end to end at tiny configurations of the peers' architectures, on the CPU."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


def _load_peers():
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_peers_tiny_cpu(tmp_path):
    peers = _load_peers()
    payload = peers.main(["--tiny", "--device", "cpu", "--steps", "2", "--batches", "1", "--repeats", "1",
                          "--duration-s", "1", "--peers", "audioldm-s", "stable-audio-open", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "peers-cpu.json").read_text())
    assert saved["errors"] == {} and payload["errors"] == {}
    records = saved["records"]
    assert sorted(r["peer"] for r in records) == ["audioldm-s", "stable-audio-open"]
    for r in records:
        assert r["variant"] == "eager" and r["steps"] == 2 and r["batch"] == 1 and r["duration_s"] == 1.0
        assert r["median_s"] > 0 and r["x_real_time"] > 0
        for stage in ("text_s", "denoise_s", "decode_s"):
            assert r[stage] > 0
        assert r["text_s"] + r["denoise_s"] + r["decode_s"] == pytest.approx(r["median_s"], rel=0.5)
    assert all(c > 0 for p in saved["params"].values() for c in p.values())
    md = (tmp_path / "peers-cpu.md").read_text()
    assert "| audioldm-s | eager | 2 |" in md and "| stable-audio-open | eager | 2 |" in md


def test_published_configs_param_counts():
    """The real configurations, built on the meta device (no memory, no init): published sizes."""
    peers = _load_peers()
    ldm = peers.param_counts("audioldm-s", tiny=False)
    sao = peers.param_counts("stable-audio-open", tiny=False)
    assert ldm["denoiser"] == pytest.approx(185e6, rel=0.02)
    assert ldm["vae"] == pytest.approx(55e6, rel=0.02)
    assert ldm["vocoder"] == pytest.approx(55e6, rel=0.02)
    assert ldm["text"] == pytest.approx(125e6, rel=0.02)  # RoBERTa-base + 512-d projection
    assert sao["denoiser"] == pytest.approx(1.057e9, rel=0.01)
    assert sao["vae"] == pytest.approx(156e6, rel=0.01)
    assert sao["text"] == pytest.approx(110e6, rel=0.02)  # T5-base encoder
