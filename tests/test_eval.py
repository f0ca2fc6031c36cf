"""Evaluation: Frechet distance, k-NN label accuracy, the aiSFX embedder, the taxonomy, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from audiodiff.eval.metrics import (
    class_scores, frechet_distance, frechet_distance_from_stats, gaussian_stats, label_accuracy, top_k_accuracy,
    true_class_ranks,
)
from audiodiff.eval.taxonomy import CATEGORIES, label_caption

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "data" / "corpora"


# ---------------------------------------------------------------- Frechet distance
def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _psd_sqrt(m):
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_frechet_closed_forms():
    # 1-D Gaussians: W2^2 = (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance_from_stats(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) \
        == pytest.approx(9.0 + 1.0)
    # Diagonal (commuting) covariances: sum of per-axis 1-D distances.
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.2, 0.5])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)


def test_frechet_matches_symmetric_eigen_form():
    """Independent form: tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), by eigendecomposition."""
    rng = np.random.default_rng(0)
    for d in (2, 7, 32):
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        r1 = _psd_sqrt(s1)
        ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(_psd_sqrt(r1 @ s2 @ r1))
        assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_frechet_matches_pytorch_fid_when_installed():
    fid = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid (and torchvision) not installed")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((200, 16)) * 1.3 + 0.2
    ref = fid.calculate_frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)


def test_frechet_properties():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-6)
    near, far = frechet_distance(x, y + 0.5), frechet_distance(x, y + 2.0)
    assert 0 < frechet_distance(x, y) < near < far
    # Fewer samples than dimensions (singular covariances) still gives a finite, non-negative value.
    small = frechet_distance(rng.standard_normal((5, 64)), rng.standard_normal((6, 64)))
    assert math.isfinite(small) and small >= 0
    with pytest.raises(ValueError):
        frechet_distance(x[:1], y)


# ---------------------------------------------------------------- label accuracy
def test_knn_accuracy_on_separable_and_random_sets():
    rng = np.random.default_rng(0)
    n_classes, per = 6, 10
    centers = rng.standard_normal((n_classes, 32)) * 5
    labels = np.repeat(np.arange(n_classes), per)
    refs = centers[labels] + rng.standard_normal((len(labels), 32))
    queries = centers[labels] + rng.standard_normal((len(labels), 32))
    assert label_accuracy(queries, labels, refs, labels, n_classes) == {"top1": 1.0, "top5": 1.0}
    assert label_accuracy(refs, labels, refs, labels, n_classes, leave_one_out=True)["top1"] == 1.0
    # Without leave-one-out a clip would find itself; with it, random embeddings are near chance.
    noise = rng.standard_normal((120, 32))
    rand_labels = rng.integers(0, n_classes, 120)
    assert label_accuracy(noise, rand_labels, noise, rand_labels, n_classes, k_neighbours=1)["top1"] == 1.0
    loo = label_accuracy(noise, rand_labels, noise, rand_labels, n_classes, leave_one_out=True)
    assert loo["top1"] < 0.4 and loo["top5"] < 1.0


def test_excluding_each_querys_own_original():
    rng = np.random.default_rng(1)
    n_classes = 5
    labels = rng.integers(0, n_classes, 60)
    refs = rng.standard_normal((60, 16))
    # exclude = each query's own row is exactly leave-one-out.
    assert np.array_equal(class_scores(refs, refs, labels, n_classes, exclude=np.arange(60)),
                          class_scores(refs, refs, labels, n_classes, leave_one_out=True))
    # A slightly perturbed copy of each reference (a "resynthesis") finds its original with k = 1
    # unless that original is excluded, then it is near chance.
    copies = refs + 0.01 * rng.standard_normal(refs.shape)
    assert label_accuracy(copies, labels, refs, labels, n_classes, k_neighbours=1)["top1"] == 1.0
    shuffled = rng.permutation(60)  # excluding someone else's original leaves its own in place
    assert label_accuracy(copies, labels, refs, labels, n_classes, k_neighbours=1, exclude=shuffled)["top1"] > 0.9
    held_out = label_accuracy(copies, labels, refs, labels, n_classes, k_neighbours=1, exclude=np.arange(60))
    assert held_out["top1"] < 0.5
    with pytest.raises(ValueError, match="one reference index"):
        class_scores(copies, refs, labels, n_classes, exclude=np.arange(59))
    with pytest.raises(ValueError, match="one reference index"):
        class_scores(copies, refs, labels, n_classes, exclude=np.full(60, 60))


def test_top_k_and_missing_classes():
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8]])
    assert top_k_accuracy(scores, [0, 1], 1) == 0.5 and top_k_accuracy(scores, [0, 1], 2) == 1.0
    # A class with no reference clip can never be predicted.
    s = class_scores(np.ones((1, 4)), np.eye(4)[:2], [0, 0], n_classes=2)
    assert s[0, 1] == -np.inf


def test_true_class_ranks_agree_with_top_k_including_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (200, 9)).astype(float)  # many ties
    scores[:5, 3] = -np.inf  # a class without references
    labels = rng.integers(0, 9, 200)
    ranks = true_class_ranks(scores, labels)
    assert ranks.min() >= 1 and ranks.max() <= 9
    for k in range(1, 10):
        assert np.mean(ranks <= k) == top_k_accuracy(scores, labels, k)


# ---------------------------------------------------------------- paired comparison of reports
def _report(ranks, seed=0, fd=100.0, model="m", **settings):
    cats = ["dog", "rain", "bell", "wind"]
    clips = [{"category": cats[i % 4], "prompt": f"prompt {i % 4}", "rank": r, "predicted": "x"}
             for i, r in enumerate(ranks)]
    return {"_path": f"{model}{seed}.json", "embedder": "e", "taxonomy_version": 1, "real": {"clips": 64},
            "settings": {"model": model, "seed": seed, "clips_per_category": len(ranks) // 4, "real_per_category": 16,
                         "duration_s": 4.0, "k_neighbours": 3, "data": ["data/corpora"]} | settings,
            "generated": {"model": {"per_clip": clips, "fd": fd}}}


def test_mcnemar_exact_matches_scipy_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    from audiodiff.eval.compare import mcnemar_exact

    for b, c in [(0, 0), (0, 1), (3, 3), (2, 9), (9, 2), (0, 12), (15, 30), (47, 60), (1, 100), (600, 700)]:
        expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-15), (b, c)
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_compare_reports_pairs_clips_and_judges():
    from audiodiff.eval.compare import compare_reports, markdown_comparison

    n = 40
    base = [_report([1] * 4 + [3] * (n - 4), seed=s, fd=f, model="old") for s, f in ((0, 170.0), (1, 178.0))]
    # The new model gets 12 more clips right per seed and loses 1 the old one had.
    better = [2] + [1] * 3 + [1] * 12 + [3] * (n - 16)
    new = [_report(better, seed=s, fd=f, model="new") for s, f in ((0, 150.0), (1, 155.0))]
    cmp = compare_reports(base, new)
    assert cmp["clips"] == 2 * n and cmp["pairs"] == 2
    t1 = cmp["top1"]
    assert (t1["base"], t1["new"], t1["base_only"], t1["new_only"]) == (8, 30, 2, 24)
    assert t1["p_value"] < 1e-4 and t1["verdict"].startswith("new better")
    assert cmp["top5"]["base_only"] == cmp["top5"]["new_only"] == 0 and cmp["top5"]["p_value"] == 1.0
    assert cmp["fd"]["seed_spread"] == 8.0 and cmp["fd"]["verdict"].startswith("new lower on every pair, by 21.5")
    assert cmp["per_category_top1"]["dog"] == {"clips": 20, "base": 2, "new": 6}
    md = markdown_comparison(cmp)
    assert "| top1 (clips) | 8 | 30 | 2 | 24 |" in md and "dog 2 -> 6 of 20" in md
    # The same model against itself: nothing to tell apart.
    same = compare_reports(base, base)
    assert same["top1"]["p_value"] == 1.0 and "no significant difference" in same["top1"]["verdict"]
    assert same["fd"]["verdict"].startswith("within the noise")
    # Reports that did not score the same clips refuse, naming what differs.
    with pytest.raises(ValueError, match="differ in the setting 'seed'"):
        compare_reports(base, new[::-1])
    with pytest.raises(ValueError, match="differ in the setting 'duration_s'"):
        compare_reports(base[:1], [_report(better, model="new", duration_s=5.0)])
    with pytest.raises(ValueError, match=r"differ in the setting 'trim_db' \(None vs -60.0\)"):
        compare_reports(base[:1], [_report(better, model="new", trim_db=-60.0)])  # an untrimmed (old) report
    other = _report(better, model="new")
    other["generated"]["model"]["per_clip"][3]["prompt"] = "another prompt"
    with pytest.raises(ValueError, match="first difference at clip 3"):
        compare_reports(base[:1], [other])
    with pytest.raises(ValueError, match="as many --new reports"):
        compare_reports(base, new[:1])


def test_load_report_explains_unusable_files(tmp_path):
    from audiodiff.eval.compare import load_report

    with pytest.raises(FileNotFoundError, match="audiodiff evaluate -o"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON report"):
        load_report(tmp_path / "bad.json")
    old = _report([1, 2, 3, 4])
    del old["generated"]["model"]["per_clip"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="no per-clip results"):
        load_report(tmp_path / "old.json")


# ---------------------------------------------------------------- embedder
@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("aisfx", reason="aisfx not installed (setup.sh: pip install --no-deps aisfx==0.1.2)")
    from audiodiff.eval.embedding import SoundEmbedder

    return SoundEmbedder()


def _tone(freq, seconds=2.0, sr=22050):
    t = torch.arange(int(seconds * sr)) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t)).unsqueeze(0)


def test_embedder_shapes_determinism_and_contrast(embedder):
    sr = 22050
    tone, noise = _tone(440.0), 0.3 * torch.randn(1, 2 * sr, generator=torch.Generator().manual_seed(0))
    clicks = torch.zeros(1, 3 * sr)
    clicks[0, :: sr // 4] = 1.0
    emb = embedder.embed([tone, noise, clicks], sr)
    assert emb.shape == (3, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, embedder.embed([tone, noise, clicks], sr))
    # Batch consistency: a clip embeds the same alone as in a batch, and (B, C, T) works too.
    np.testing.assert_allclose(embedder.embed(noise, sr)[0], emb[1], rtol=1e-4, atol=1e-4)
    stereo = torch.cat([tone, tone]).unsqueeze(0)
    np.testing.assert_allclose(embedder.embed(stereo, sr)[0], emb[0], rtol=1e-4, atol=1e-4)
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb, axis=1, keepdims=True)).T
    assert cos[0, 1] < 0.98 and cos[0, 2] < 0.98 and cos[1, 2] < 0.98
    # A tone's embedding is closer to another tone's than to noise's.
    other = embedder.embed(_tone(660.0), sr)[0]
    d = lambda a, b: np.linalg.norm(a - b)  # noqa: E731
    assert d(other, emb[0]) < d(other, emb[1])


def test_trimming_a_generated_clip_embeds_it_as_the_corpora_store_a_sound(embedder):
    from audiodiff.data.corpus import ClipPolicy
    from audiodiff.eval import cli
    from audiodiff.eval.evaluate import TRIM_DB, trim_generated

    assert TRIM_DB == cli.TRIM_DB == ClipPolicy().trim_db  # one threshold for corpora and evaluation
    sr, g = 22050, torch.Generator().manual_seed(2)
    burst = 0.4 * torch.randn(1, sr // 2, generator=g) * torch.linspace(1, 0.1, sr // 2)  # a 0.5 s hit
    floor = 1e-5 * torch.randn(1, 4 * sr - burst.shape[-1], generator=g)  # a generator's -100 dB silence
    clip = torch.cat([torch.zeros(1, sr // 10), burst, floor[:, sr // 10:]], dim=1)  # late start, 4 s
    trimmed = trim_generated(clip, sr)
    margin = int(0.01 * sr)
    assert trimmed.shape == (1, burst.shape[-1] + 2 * margin)
    torch.testing.assert_close(trimmed[:, margin:-margin], burst)
    assert trim_generated(clip, sr, None) is clip and trim_generated(torch.zeros(1, 100), sr).shape == (1, 100)
    # What the evaluator compares: the trimmed clip embeds as the sound itself, the padded one does not.
    emb = embedder.embed([burst, trimmed, clip], sr)
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb, axis=1, keepdims=True)).T
    assert 1 - cos[0, 1] < (1 - cos[0, 2]) / 3  # measured: 0.012 against 0.072


def test_embedder_front_end_matches_librosa(embedder):
    librosa = pytest.importorskip("librosa")
    from audiodiff.eval.embedding import SPEC_MAX

    sr = 44100
    y = (_tone(523.0, 2.0, sr)[0] + 0.05 * torch.randn(2 * sr, generator=torch.Generator().manual_seed(1))).numpy()
    ours = embedder.spectrogram(torch.from_numpy(y)).numpy()
    ref = librosa.feature.melspectrogram(y=y / np.abs(y).max(), sr=sr, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0,
                                         htk=True, power=2.0, hop_length=1024, win_length=2048)
    np.testing.assert_allclose(ours, (np.log10(ref * 1e4 + 1) / SPEC_MAX).T, atol=1e-4)


# ---------------------------------------------------------------- taxonomy
def _manifest_rows():
    manifests = sorted(CORPORA.glob("*/manifest.jsonl"))
    if not manifests:
        pytest.skip(f"no corpora under {CORPORA} (audiodiff prepare all)")
    rows = []
    for m in manifests:
        rows += [json.loads(line) for line in m.read_text().splitlines() if line.strip()]
    return rows


def test_sounding_fraction_matches_librosa_split():
    from audiodiff.eval.metrics import sounding_fraction

    rng = np.random.default_rng(0)
    hop = 512
    for trial in range(6):
        n = 22050 * 3 + int(rng.integers(0, hop))
        y = np.zeros(n)
        for _ in range(3):  # bursts at random levels over digital silence
            a, length = int(rng.integers(0, n - 4000)), int(rng.integers(800, 15000))
            y[a:a + length] += rng.normal(0, 10 ** rng.uniform(-3, 0), len(y[a:a + length]))
        frames = 1 + n // hop
        # librosa.effects.split gives the same frames as sample intervals (the last one cut at n).
        from_split = sum(math.ceil((e - s) / hop) for s, e in librosa.effects.split(y, top_db=40)) / frames
        assert sounding_fraction(y, top_db=40) == pytest.approx(from_split, abs=1.01 / frames)
    assert sounding_fraction(np.zeros(1000)) == 0.0
    tone = np.sin(np.arange(22050) * 0.1)
    assert sounding_fraction(tone) == 1.0
    assert sounding_fraction(tone, num_samples=4 * 22050) == pytest.approx(0.25, abs=0.02)  # padded


def test_taxonomy_shape():
    names = [c.name for c in CATEGORIES]
    assert len(names) >= 20 and len(set(names)) == len(names)
    prompts = [p for c in CATEGORIES for p in c.prompts]
    assert all(len(c.prompts) >= 2 for c in CATEGORIES) and len(set(prompts)) == len(prompts)
    assert label_caption("heavy rain, thunder rumbling") == "rain_thunder"
    assert label_caption("a fire crackling") == "fire" and label_caption("machine gun fire") == "gunfire"
    assert label_caption("a splash cymbal hit") == "cymbal"
    assert label_caption("a completely unknown thing") is None


def test_taxonomy_prompts_held_out_and_categories_populated():
    rows = _manifest_rows()
    captions = {c.strip().lower() for r in rows for c in r["captions"]}
    leaked = [p for c in CATEGORIES for p in c.prompts if p.strip().lower() in captions]
    assert not leaked, f"held-out prompts found in training captions: {leaked}"
    counts = {c.name: 0 for c in CATEGORIES}
    for r in rows:
        label = label_caption(r["captions"][0]) if r["captions"] else None
        if label:
            counts[label] += 1
    thin = {n: k for n, k in counts.items() if k < 8}
    assert not thin, f"categories with fewer than 8 real clips: {thin}"


# ---------------------------------------------------------------- CLI end to end
def test_evaluate_cli_end_to_end(tmp_path, embedder):
    from audiodiff.audio import save_audio
    from audiodiff.cli import main
    from audiodiff.conditioning.length import SoundLengthConfig, SoundLengthHead
    from audiodiff.pipelines import TextToAudioPipeline
    from audiodiff.testing import tiny_text_to_audio_pipeline

    model = tiny_text_to_audio_pipeline(seed=0).save_pretrained(tmp_path / "model")
    corpus = tmp_path / "corpus" / "mini"
    sr, g = 22050, torch.Generator().manual_seed(0)
    rows = []
    for i in range(3):
        hum = 0.3 * torch.sin(2 * math.pi * (90 + 5 * i) * torch.arange(sr) / sr).unsqueeze(0)
        save_audio(corpus / f"hum{i}.wav", hum, sr)
        save_audio(corpus / f"noise{i}.wav", 0.2 * torch.randn(1, sr, generator=g), sr)
        rows += [{"path": f"hum{i}.wav", "captions": ["a low hum"], "split": "valid", "source": "test"},
                 {"path": f"noise{i}.wav", "captions": ["white noise burst"], "split": "valid", "source": "test"}]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results" / "r.json"
    args = ["evaluate", "--model", str(model), "--baseline", "untrained", "--data", str(corpus.parent),
            "--categories", "low_hum,noise_burst", "--clips-per-category", "1", "--real-per-category", "3",
            "--steps", "2", "--duration-s", "1", "--cache-dir", str(tmp_path / "cache"), "-o", str(out), "-q"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["real"]["clips"] == 6 and report["real"]["top1_leave_one_out"] == 1.0
    assert report["settings"]["trim_db"] == -60.0 and "trimmed of silence below -60 dB" in out.with_suffix(".md").read_text()
    assert set(report["generated"]) == {"model", "untrained"}
    for scored in report["generated"].values():
        assert scored["clips"] == 2 and 0 <= scored["top1"] <= scored["top5"] <= 1 and scored["fd"] >= 0
        assert 0 <= scored["sounding_fraction"] <= 1
    assert report["real"]["sounding_fraction"] == 1.0  # the corpus is steady hums and noise
    for scored in report["generated"].values():  # per-clip ranks agree with the pooled scores
        ranks = [c["rank"] for c in scored["per_clip"]]
        assert [c["category"] for c in scored["per_clip"]] == ["low_hum", "noise_burst"]
        assert scored["top1"] == np.mean([r == 1 for r in ranks]) and scored["top5"] == np.mean([r <= 5 for r in ranks])
    # A report compared with itself: the CLI pairs the clips and finds nothing to tell apart.
    assert main(["evaluate-compare", "--base", str(out), "--new", str(out), "-o", str(tmp_path / "cmp.json")]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["clips"] == 2 and cmp["top1"]["p_value"] == 1.0
    assert main(["evaluate-compare", "--base", str(out), "--new", str(tmp_path / "nope.json")]) == 2
    assert report["settings"]["sound_lengths"] == "untold"  # "auto" on a model without a length head
    from audiodiff.pipelines.base import cpu_has_native_bf16

    assert report["settings"]["dtype"] == ("bf16" if cpu_has_native_bf16() else "fp32")  # --dtype auto
    assert "| real (leave-one-out: ceiling) | 6 |" in out.with_suffix(".md").read_text()
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 6  # real clips cached
    assert main(["evaluate", "--categories", "no_such_category", "--data", str(corpus.parent)]) == 2
    # Another sampler than the model's default: recorded, shown, and paired against the default's
    # report (the same prompts and starting noise); an unknown name fails before any work.
    sde = tmp_path / "results" / "sde.json"
    assert main(args[:-3] + ["-o", str(sde), "-q", "--sampler", "dpmpp_2m_sde"]) == 0
    assert json.loads(sde.read_text())["settings"]["sampler"] == "dpmpp_2m_sde"
    assert report["settings"]["sampler"] is None and "sampler dpmpp_2m_sde" in sde.with_suffix(".md").read_text()
    assert main(["evaluate-compare", "--base", str(out), "--new", str(sde), "-o", str(tmp_path / "cmp2.json")]) == 0
    assert json.loads((tmp_path / "cmp2.json").read_text())["new"][0]["sampler"] == "dpmpp_2m_sde"
    assert main(args + ["--sampler", "plms"]) == 2
    for bad in ("loud", "0", "-200"):  # --trim-db: a level below the peak, or none
        with pytest.raises(SystemExit):
            main(args + ["--trim-db", bad])
    # a category the corpus lacks: the error says which, where it looked and how to build it
    from audiodiff.eval.evaluate import run_evaluation

    with pytest.raises(ValueError, match=r"fewer than 2 real clips in .*corpus: rising_sweep\. .*prepare synth"):
        run_evaluation(model, data_dirs=[corpus.parent], category_names=["low_hum", "rising_sweep"], real_per_category=3)
    # A model with a timing input can be told the real clips' lengths; one without refuses.
    timed = tiny_text_to_audio_pipeline(seed=0, timing_channels=1).save_pretrained(tmp_path / "timed")
    told = args[:1] + ["--model", str(timed)] + args[5:] + ["--sound-lengths", "real"]
    assert main(told) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["sound_lengths"] == "real" and report["generated"]["model"]["clips"] == 2
    assert "told the lengths of real clips" in out.with_suffix(".md").read_text()
    assert main(args + ["--sound-lengths", "real"]) == 2
    # With a sound length head, the default ("auto") tells each clip its prompt's predicted length.
    pipe = TextToAudioPipeline.from_pretrained(timed)
    pipe.sound_length = SoundLengthHead(SoundLengthConfig(dim=pipe.text.config.dim))
    headed = pipe.save_pretrained(tmp_path / "headed")
    assert main(args[:1] + ["--model", str(headed)] + args[5:]) == 0
    assert json.loads(out.read_text())["settings"]["sound_lengths"] == "auto"
    assert "sound lengths predicted from the prompt" in out.with_suffix(".md").read_text()
