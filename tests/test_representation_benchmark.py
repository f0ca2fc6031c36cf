"""benchmarks/representation.py: real clips in the generator's form, scored the evaluator's way."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import representation  # noqa: E402


def test_variants_of_a_tiny_corpus(tmp_path):
    pytest.importorskip("aisfx", reason="aisfx not installed (setup.sh: pip install --no-deps aisfx==0.1.2)")
    from audiodiff.audio import save_audio
    from audiodiff.testing import tiny_text_to_audio_pipeline

    model = tiny_text_to_audio_pipeline(seed=0).save_pretrained(tmp_path / "model")
    corpus = tmp_path / "corpus" / "mini"
    sr, g = 22050, torch.Generator().manual_seed(0)
    rows = []
    for i in range(3):  # hums that fill the 1 s, noise bursts of 0.3 s that padding changes
        hum = 0.3 * torch.sin(2 * math.pi * (90 + 5 * i) * torch.arange(sr) / sr).unsqueeze(0)
        save_audio(corpus / f"hum{i}.wav", hum, sr)
        save_audio(corpus / f"noise{i}.wav", 0.2 * torch.randn(1, sr * 3 // 10, generator=g), sr)
        rows += [{"path": f"hum{i}.wav", "captions": ["a low hum"], "split": "valid", "source": "test"},
                 {"path": f"noise{i}.wav", "captions": ["white noise burst"], "split": "valid", "source": "test"}]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--model", str(model), "--data", str(corpus.parent), "--categories", "low_hum,noise_burst",
            "--real-per-category", "3", "--duration-s", "1", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), "--dtype", "fp32"]
    assert representation.main(args) == 0
    report = json.loads((tmp_path / "out" / "representation.json").read_text())
    results = report["results"]
    assert list(results) == list(representation.VARIANTS) and report["settings"]["clips"] == 6
    # The original row is the evaluator's leave-one-out ceiling: hums and noise never mix up.
    assert results["original"]["top1"] == 1.0 and results["original"]["per_category_top1"] == {
        "low_hum": 1.0, "noise_burst": 1.0}
    # Padding changes only the 0.3 s bursts' embeddings, so the distance moves.
    assert results["padded"]["fd_half_vs_half"] != pytest.approx(results["original"]["fd_half_vs_half"], rel=1e-3)
    assert results["below_8k"]["top1"] == 1.0  # a 90 Hz hum and broadband noise keep their class below 8 kHz
    for r in results.values():
        assert 0 <= r["top1"] <= r["top5"] <= 1 and np.isfinite(r["fd_half_vs_half"])
        assert sum(n for _, n in r["most_predicted"]) <= 6
    assert "| original | 1.0 |" in (tmp_path / "out" / "representation.md").read_text()
    with pytest.raises(SystemExit):  # an unknown category is a usage error naming the known ones
        representation.main(args[:4] + ["--categories", "no_such_thing"])
