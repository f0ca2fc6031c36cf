"""benchmarks/versus.py joins one GPU session's result files into one ratio table."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _versus():
    spec = importlib.util.spec_from_file_location("bench_versus", ROOT / "benchmarks" / "versus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(variant, steps, batch, median_s, duration=10.0, **extra):
    return {"variant": variant, "steps": steps, "duration_s": duration, "batch": batch, "median_s": median_s,
            "x_real_time": batch * duration / median_s, **extra}


def test_versus_takes_our_fastest_default_row_and_divides(tmp_path):
    machine = {"cpu": "x", "cores": 16, "torch": "2.11", "torch_threads": 16, "device": "cuda", "gpu": "NVIDIA H200"}
    ours = [_row("fp32", 8, 1, 0.100), _row("bf16-fullgraph", 8, 1, 0.020), _row("bf16-fullgraph", 25, 1, 0.050),
            _row("bf16-fullgraph", 8, 8, 0.040)]
    (tmp_path / "latency-cuda.json").write_text(json.dumps(
        {"machine": machine, "model": "random", "guidance_interval": [0.1, 50], "autoguidance": 1.0, "records": ours}))
    (tmp_path / "no-autoguidance").mkdir()
    (tmp_path / "no-autoguidance" / "latency-cuda.json").write_text(json.dumps(
        {"machine": machine, "records": [_row("bf16-fullgraph", 8, 1, 0.012)]}))
    peers = [_row("compiled", 10, 1, 0.045, 10.24, peer="audioldm-s"), _row("eager", 10, 8, 0.400, peer="stable-audio-open")]
    (tmp_path / "peers-cuda.json").write_text(json.dumps({"records": peers}))
    (tmp_path / "default-steps").mkdir()
    (tmp_path / "default-steps" / "peers-cuda.json").write_text(json.dumps(
        {"records": [peers[0], _row("eager", 200, 1, 4.64, 10.24, peer="audioldm-s")]}))  # a duplicate row too

    payload = _versus().main([str(tmp_path)])
    rows = payload["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [
        ("audiodiff (default)", 1), ("audiodiff, autoguidance off", 1), ("audioldm-s", 1), ("audioldm-s", 1),
        ("audiodiff (default)", 8), ("stable-audio-open", 8)]
    assert rows[0]["variant"] == "bf16-fullgraph" and rows[0]["median_s"] == 0.020  # fastest at 8 steps, not 25
    assert abs(rows[2]["latency_vs_ours"] - 0.045 / 0.020) < 1e-9
    assert abs(rows[3]["latency_vs_ours"] - 4.64 / 0.020) < 1e-9
    assert abs(rows[5]["latency_vs_ours"] - 0.400 / 0.040) < 1e-9
    goals = payload["goals"]
    assert goals["latency_10s_batch1_s"] == 0.020 and not goals["latency_goal_met"]
    assert goals["best_x_real_time_batch"] == 8 and goals["best_x_real_time"] == 8 * 10 / 0.040
    md = (tmp_path / "versus-cuda.md").read_text()
    assert "NVIDIA H200" in md and "2.25x" in md and "not met" in md


def test_versus_says_what_is_missing(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="gpu_latency.sh"):
        _versus().main([str(tmp_path)])
