"""The trainer in process: exact resume, accumulation, NaN recovery, bad checkpoints, export."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from audiodiff.data.manifest import ManifestError
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.training.checkpoint import CheckpointError, latest_checkpoint
from audiodiff.training.testing import make_captioned_folder, tiny_train_config
from audiodiff.training import trainer as trainer_module
from audiodiff.training.trainer import Trainer, TrainingDivergedError, export_run, uses_bf16


@pytest.fixture(autouse=True)
def _one_thread():
    # Bitwise comparisons need a fixed thread count; one thread is also fastest on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_captioned_folder(tmp_path_factory.mktemp("clips"), clips_per_class=4)


def run(run_dir, folder, *overrides: str):
    return Trainer(tiny_train_config(run_dir, folder, list(overrides))).run()


def weights(run_dir, part="model"):
    return load_file(str(latest_checkpoint(run_dir / "checkpoints") / f"{part}.safetensors"))


def assert_same(a: dict, b: dict, atol: float = 0.0):
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def test_two_plus_resume_plus_two_equals_four(folder, tmp_path):
    full = run(tmp_path / "full", folder, "steps=4")
    half = run(tmp_path / "split", folder, "steps=4", "stop_at_step=2")
    assert (half.step, half.reason) == (2, "stop_at_step")
    rest = run(tmp_path / "split", folder, "steps=4")
    assert (full.step, rest.step, rest.samples_seen) == (4, 4, 16)
    for part in ("model", "ema", "optimizer"):
        assert_same(weights(tmp_path / "full", part), weights(tmp_path / "split", part))
    # The check can fail: one more step changes the weights.
    run(tmp_path / "split", folder, "steps=5")
    with pytest.raises(AssertionError):
        assert_same(weights(tmp_path / "full"), weights(tmp_path / "split"))


def test_a_time_budgeted_run_resumes_its_lr_decay_where_it_stopped(folder, tmp_path, monkeypatch):
    # The budget's rate is measured from the clock; a stand-in plans 20 steps at step start + 4,
    # so both runs see the same plan. Resumed at step 10 without the schedule's state, the LR
    # jumped back to the top (the decay planned over `steps` until the first measurement).
    class FixedPlan:
        def __init__(self, budget_s, max_steps, start_step):
            self.at = start_step + 4

        def update(self, step, elapsed_s):
            return (20, 1.0) if step == self.at else None

    monkeypatch.setattr(trainer_module, "BudgetHorizon", FixedPlan)
    common = ["steps=1000", "max_minutes=60", 'optim.horizon="time"', "optim.warmup_steps=2",
              "optim.lr=1e-3", "log_every=1", "valid_every=1000", "checkpoint_every=1000"]

    def lrs(run_dir):
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["train/lr"] for r in records if "train/lr" in r}

    run(tmp_path / "full", folder, *common, "stop_at_step=16")
    run(tmp_path / "split", folder, *common, "stop_at_step=10")
    run(tmp_path / "split", folder, *common, "stop_at_step=16")
    full, split = lrs(tmp_path / "full"), lrs(tmp_path / "split")
    assert sorted(full) == sorted(split) == list(range(1, 17))
    assert [split[s] for s in full] == pytest.approx([full[s] for s in full], rel=1e-12)
    assert full[11] < 0.8e-3 and full[16] < full[11]  # the resumed steps are deep in the decay
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "split"))


def test_gradient_accumulation_matches_one_big_batch(folder, tmp_path):
    run(tmp_path / "one", folder, "steps=3", "batch_size=4")
    run(tmp_path / "acc", folder, "steps=3", "batch_size=4", "grad_accum=2")
    assert_same(weights(tmp_path / "one"), weights(tmp_path / "acc"), atol=1e-5)


def test_auto_precision_is_bf16_on_gpus_and_on_cpus_that_compute_it(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: True)
    assert uses_bf16("auto", cpu) and uses_bf16("auto", cuda)
    assert not uses_bf16("fp32", cpu) and uses_bf16("bf16", cpu)
    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: False)
    assert not uses_bf16("auto", cpu) and uses_bf16("auto", cuda)
    assert uses_bf16("bf16", cpu) and not uses_bf16("fp32", cuda)


def test_bf16_autocast_on_the_cpu_learns_like_fp32_and_resumes_exactly(folder, tmp_path):
    # bf16 autocast is what "auto" trains in on CPUs with AVX512-BF16 / AMX; it must learn as
    # fp32 does (the EMA's validation loss falls by as much) and keep the exact-resume promise.
    common = ["steps=40", "optim.lr=3e-3", "optim.warmup_steps=5", "valid_every=40"]
    start_losses, end_losses = {}, {}
    for precision in ("fp32", "bf16"):
        result = run(tmp_path / precision, folder, *common, f"precision={precision}")
        records = [json.loads(line) for line in (tmp_path / precision / "metrics.jsonl").read_text().splitlines()]
        assert next(r for r in records if r.get("event") == "start")["precision"] == precision
        start_losses[precision] = next(r["valid/loss_ema"] for r in records if r.get("step") == 0
                                       and "valid/loss_ema" in r)
        end_losses[precision] = result.valid_loss
    assert start_losses["bf16"] == pytest.approx(start_losses["fp32"], rel=0.05)
    for precision in ("fp32", "bf16"):
        assert end_losses[precision] < 0.7 * start_losses[precision], (precision, start_losses, end_losses)
    assert end_losses["bf16"] == pytest.approx(end_losses["fp32"], rel=0.2)

    run(tmp_path / "split", folder, *common, "precision=bf16", "stop_at_step=20")
    run(tmp_path / "split", folder, *common, "precision=bf16")
    for part in ("model", "ema", "optimizer"):
        assert_same(weights(tmp_path / "bf16", part), weights(tmp_path / "split", part))


def test_validation_loss_is_reproducible_and_logged(folder, tmp_path):
    a = run(tmp_path / "a", folder, "steps=2")
    b = run(tmp_path / "b", folder, "steps=2")
    assert a.valid_loss == b.valid_loss and a.valid_loss > 0
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("valid/loss_ema" in r and r["step"] == 0 for r in lines)
    assert [r["step"] for r in lines if "train/loss" in r] == [1, 2]
    assert all(r["train/samples_per_s"] > 0 for r in lines if "train/loss" in r)


def test_nan_loss_skips_the_step_and_halves_the_lr(folder, tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path / "nan", folder, ["steps=4", "optim.warmup_steps=0",
                                                                    "optim.decay=constant"]))
    forward = trainer.task.objective.forward
    calls = {"n": 0}

    def flaky(batch, sigma=None):  # the 2nd and 3rd training steps give a NaN loss
        out = forward(batch, sigma)
        if not trainer.task.objective.training:
            return out
        calls["n"] += 1
        return out * float("nan") if calls["n"] in (2, 3) else out

    trainer.task.objective.forward = flaky
    result = trainer.run()
    assert result.step == 4 and trainer.nan_steps == 2 and trainer.lr_scale == 0.25
    assert result.samples_seen == 6 * 4  # the skipped steps consumed their data
    params = weights(tmp_path / "nan")
    assert all(torch.isfinite(t).all() for t in params.values())
    events = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [e["lr_scale"] for e in events if e.get("event") == "nan_step"] == [0.5, 0.25]
    lrs = [e["train/lr"] for e in events if "train/lr" in e]
    assert lrs[0] == pytest.approx(2e-3) and lrs[-1] == pytest.approx(2e-3 / 4)


def test_persistent_nan_stops_with_a_clear_error(folder, tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path / "nan", folder, ["steps=20", "max_nan_steps=3"]))
    forward = trainer.task.objective.forward
    trainer.task.objective.forward = lambda batch, sigma=None: forward(batch, sigma) * float("nan")
    with pytest.raises(TrainingDivergedError, match="NaN/inf for 3 steps in a row"):
        trainer.run()
    assert latest_checkpoint(tmp_path / "nan" / "checkpoints") is None  # nothing bad was saved


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated"),
    ("flip", "does not match its recorded SHA-256"),
    ("state", "not valid JSON"),
    ("delete", "ema.safetensors is missing"),
])
def test_corrupt_checkpoints_are_reported(folder, tmp_path, damage, message):
    run(tmp_path / "r", folder, "steps=1")
    ckpt = latest_checkpoint(tmp_path / "r" / "checkpoints")
    if damage == "truncate":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray((ckpt / "optimizer.safetensors").read_bytes())
        data[-3] ^= 0xFF
        (ckpt / "optimizer.safetensors").write_bytes(bytes(data))
    elif damage == "state":
        (ckpt / "state.json").write_text('{"step": 1, "fi')
    else:
        (ckpt / "ema.safetensors").unlink()
    with pytest.raises(CheckpointError, match=message):
        run(tmp_path / "r", folder, "steps=2")


def test_resume_with_another_model_is_refused(folder, tmp_path):
    run(tmp_path / "r", folder, "steps=1")
    with pytest.raises(CheckpointError, match=r"different model.*task\.unet\.base_channels: 8 != 16"):
        run(tmp_path / "r", folder, "steps=2", "task.unet.base_channels=16")
    # Training settings may change on resume.
    assert run(tmp_path / "r", folder, "steps=2", "optim.lr=1e-4").step == 2


def test_dataset_without_clips(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no audio clips found"):
        run(tmp_path / "r", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        run(tmp_path / "r", tmp_path / "missing")


def test_time_budget_checkpoints_and_stops(folder, tmp_path):
    result = run(tmp_path / "r", folder, "steps=50", "max_minutes=0.0001")
    assert result.reason == "time_budget" and result.step == 1
    assert result.checkpoint.name == "step_00000001"


def test_export_ships_the_ema_weights(folder, tmp_path):
    run(tmp_path / "r", folder, "steps=3", "sample_every=3")
    assert len(list((tmp_path / "r" / "samples" / "step_00000003").glob("*.wav"))) == 1
    ema = weights(tmp_path / "r", "ema")
    raw = weights(tmp_path / "r", "model")
    out = export_run(tmp_path / "r", tmp_path / "model")
    pipe = TextToAudioPipeline.from_pretrained(out)
    for key, value in pipe.unet.state_dict().items():
        assert torch.equal(value, ema[f"unet.{key}"])
    assert not all(torch.equal(ema[k], raw[k]) for k in ema)  # the EMA is not the raw weights
    audio = pipe("a low hum", duration_s=0.5, num_steps=2, seed=0)
    assert audio.waveforms.shape == (1, 1, 4000) and torch.isfinite(audio.waveforms).all()
    half = export_run(tmp_path / "r", tmp_path / "model16", dtype=torch.float16)
    stored = load_file(str(half / "unet" / "model.safetensors"))
    assert all(t.dtype == torch.float16 for t in stored.values())
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        export_run(tmp_path / "missing", tmp_path / "m2")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match="has no checkpoint yet"):
        export_run(tmp_path / "empty_run", tmp_path / "m2")


def test_fine_tuning_starts_from_the_pretrained_weights(folder, tmp_path):
    run(tmp_path / "base", folder, "steps=2")
    base = export_run(tmp_path / "base", tmp_path / "base_model")
    # The fine-tune config names a different architecture: init_from's configs win.
    config = tiny_train_config(tmp_path / "ft", folder, [f"init_from={json.dumps(str(base))}", "steps=1",
                                                         "task.unet.base_channels=16"])
    trainer = Trainer(config)
    assert trainer.config.task.unet.base_channels == 8
    pretrained = TextToAudioPipeline.from_pretrained(base)
    for key, value in pretrained.unet.state_dict().items():
        assert torch.equal(trainer.task.net.state_dict()[key], value)
    assert trainer.run().step == 1
    shutil.rmtree(base)  # resuming a fine-tune no longer needs the pretrained folder
    assert run(tmp_path / "ft", folder, f"init_from={json.dumps(str(base))}", "steps=2").step == 2


def test_waveform_task_trains_resumes_and_exports(folder, tmp_path):
    wave = ['task={"type": "waveform", "text": {"encoder": "hash", "dim": 32}, '
            '"unet": {"base_channels": 8, "channel_mults": [1, 2], "factors": [4], "num_res_blocks": 1, '
            '"kernel_size": 3, "self_attention_levels": [1], "cross_attention_levels": [1], "num_heads": 2, '
            '"text_dim": 32, "pooled_dim": 32}, "pipeline": {"sample_rate": 8000, "default_steps": 2}, '
            '"sample_prompts": ["a low hum"], "sample_duration_s": 0.1, "sample_steps": 2}']
    run(tmp_path / "full", folder, *wave, "steps=3", "sample_every=3")
    run(tmp_path / "split", folder, *wave, "steps=3", "stop_at_step=1")
    run(tmp_path / "split", folder, *wave, "steps=3", "sample_every=3")
    assert_same(weights(tmp_path / "full", "ema"), weights(tmp_path / "split", "ema"))
    assert list((tmp_path / "full" / "samples").rglob("*.wav"))
    from audiodiff.pipelines import WaveformPipeline

    pipe = WaveformPipeline.from_pretrained(export_run(tmp_path / "full", tmp_path / "model"))
    assert pipe("a low hum", duration_s=0.05, num_steps=2, seed=0).waveforms.shape == (1, 1, 400)


def test_chroma_frames_and_data_workers(folder, tmp_path):
    """Melody (chroma) frame conditions; two data workers give the same run as none."""
    chroma = ["task.frame_condition=chroma", "task.unet.cond_channels=12", "steps=2"]
    run(tmp_path / "w0", folder, *chroma)
    run(tmp_path / "w2", folder, *chroma, "data.num_workers=2")
    assert_same(weights(tmp_path / "w0"), weights(tmp_path / "w2"))
    pipe = TextToAudioPipeline.from_pretrained(export_run(tmp_path / "w2", tmp_path / "model"))
    assert pipe.unet.config.cond_channels == 12
    assert pipe("a low hum", duration_s=0.25, num_steps=2, seed=0).waveforms.shape[-1] == 2000


def test_vocoder_gan_task(folder, tmp_path):
    """Two optimizers (generator, discriminators), exact resume, export folds weight norm."""
    from audiodiff.models.vocoder import load_vocoder
    from audiodiff.training.testing import tiny_vocoder_task_dict

    task = f"task={json.dumps({**tiny_vocoder_task_dict(), 'disc_warmup_steps': 1})}"
    full = run(tmp_path / "full", folder, task, "steps=3", "optim.betas=[0.8, 0.99]")
    run(tmp_path / "split", folder, task, "steps=3", "optim.betas=[0.8, 0.99]", "stop_at_step=2")
    run(tmp_path / "split", folder, task, "steps=3", "optim.betas=[0.8, 0.99]")
    for part in ("model", "ema", "optimizer"):
        assert_same(weights(tmp_path / "full", part), weights(tmp_path / "split", part))
    opt = weights(tmp_path / "full", "optimizer")
    assert any(k.startswith("generator.") for k in opt) and any(k.startswith("discriminator.") for k in opt)
    lines = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in lines if "train/generator/mel_l1" in r]
    assert len(logged) == 3 and all("train/discriminator/loss" in r for r in logged)
    # Discriminator warm-up: the generator's first step uses the mel loss alone.
    assert ["train/generator/adv" in r for r in logged] == [False, True, True]
    assert full.valid_loss is not None and full.valid_loss > 0

    # Export: a plain HiFi-GAN folder whose output equals the trained (EMA) generator's.
    out = export_run(tmp_path / "full", tmp_path / "vocoder")
    vocoder = load_vocoder(out)
    trainer = Trainer(tiny_train_config(tmp_path / "full", folder, [task, "steps=3", "optim.betas=[0.8, 0.99]"]))
    trainer.ema.copy_to()
    mel = torch.randn(1, 16, 20)
    with torch.no_grad():
        torch.testing.assert_close(vocoder(mel), trainer.task.generator.eval()(mel), atol=1e-5, rtol=1e-4)
    # Fine-tuning from a vocoder folder starts from its weights.
    ft = Trainer(tiny_train_config(tmp_path / "ft", folder, [task, f"init_from={json.dumps(str(out))}"]))
    with torch.no_grad():
        torch.testing.assert_close(ft.task.generator.eval()(mel), vocoder(mel), atol=1e-5, rtol=1e-4)


def test_vocoder_mel_only_task_learns(folder, tmp_path):
    """adversarial = false: no discriminator anywhere (modules, optimizer, checkpoint), one
    optimizer, and the generator's mel L1 on the validation clips falls as it learns."""
    from audiodiff.training.testing import tiny_vocoder_task_dict

    task = f"task={json.dumps({**tiny_vocoder_task_dict(), 'adversarial': False})}"
    args = (task, "steps=120", "valid_every=120", "optim.lr=3e-3", "optim.betas=[0.8, 0.99]", "optim.ema_decay=0")
    trainer = Trainer(tiny_train_config(tmp_path / "r", folder, list(args)))
    assert set(trainer.task.modules) == {"generator", "mel", "loss_mel"} and not trainer.task.discriminators
    assert list(trainer.optimizers) == ["generator"]
    result = trainer.run()
    saved = {*weights(tmp_path / "r"), *weights(tmp_path / "r", "optimizer")}
    assert saved and not any(k.startswith(("mpd.", "mrd.", "discriminator.")) for k in saved)
    lines = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert not any(k.startswith("train/discriminator") or k.endswith(("/adv", "/fm")) for r in lines for k in r)
    valid = {r["step"]: r["valid/loss"] for r in lines if "valid/loss" in r}
    assert sorted(valid) == [0, 120] and result.step == 120
    assert valid[120] < 0.8 * valid[0], valid  # the random tiny generator learns the mel


def test_stft_loss_matches_auraloss():
    """Reference: auraloss's STFTLoss (spectral convergence + log-magnitude, Parallel WaveGAN's
    definitions) at each resolution, averaged, equals ours term by term."""
    auraloss = pytest.importorskip("auraloss")
    from audiodiff.training.vocoder import multi_resolution_stft_loss

    g = torch.Generator().manual_seed(0)
    ref = 0.1 * torch.randn(3, 1, 8192, generator=g)
    est = ref + 0.05 * torch.randn(3, 1, 8192, generator=g)
    resolutions = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    sc, log_mag = multi_resolution_stft_loss(est, ref, resolutions)
    theirs = [auraloss.freq.STFTLoss(*r, output="full")(est, ref) for r in resolutions]
    assert float(sc) == pytest.approx(sum(float(t[1]) for t in theirs) / 3, rel=1e-5)
    assert float(log_mag) == pytest.approx(sum(float(t[2]) for t in theirs) / 3, rel=1e-5)
    assert float(sc) > 0.1  # not trivially equal: the two signals differ


def test_vocoder_stft_loss_alone_teaches_the_mel(folder, tmp_path):
    """task.stft_weight: a tiny random generator trained on the multi-resolution STFT loss alone
    (mel_weight = 0) lowers the validation mel L1, which it never saw; both terms are logged."""
    from audiodiff.training.testing import tiny_vocoder_task_dict

    task = {**tiny_vocoder_task_dict(), "adversarial": False, "mel_weight": 0.0, "stft_weight": 1.0,
            "stft_resolutions": [[128, 32, 128], [256, 64, 256], [64, 16, 64]]}
    args = (f"task={json.dumps(task)}", "steps=120", "valid_every=120", "optim.lr=3e-3",
            "optim.betas=[0.8, 0.99]", "optim.ema_decay=0")
    Trainer(tiny_train_config(tmp_path / "r", folder, list(args))).run()
    lines = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if "train/stft_sc" in r]
    assert train and all("train/stft_log_mag" in r for r in train)
    valid = {r["step"]: r["valid/loss"] for r in lines if "valid/loss" in r}
    assert valid[120] < 0.8 * valid[0], valid


@pytest.mark.parametrize("resolutions", [[[256, 64, 512]], [], [[256, 0, 256]]])
def test_vocoder_stft_resolutions_are_checked(resolutions):
    from audiodiff.config import ConfigError
    from audiodiff.training.config import VocoderTaskConfig

    with pytest.raises(ConfigError, match="task.stft_resolutions.*win_length <= n_fft"):
        VocoderTaskConfig.from_dict({"stft_resolutions": resolutions})


def test_sigterm_checkpoints_and_stops(folder, tmp_path):
    import os
    import signal

    trainer = Trainer(tiny_train_config(tmp_path / "r", folder, ["steps=50"]))
    begin = trainer.task.begin_step

    def begin_step(step):  # a scheduler sends SIGTERM during step 3
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        begin(step)

    trainer.task.begin_step = begin_step
    result = trainer.run()
    assert (result.reason, result.step) == ("signal", 3) and result.checkpoint.name == "step_00000003"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed afterwards
