"""`audiodiff train` / `audiodiff export` end to end: errors, learning, DDP, and SIGKILL + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audiodiff import cli
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.training.checkpoint import latest_checkpoint, load_checkpoint, read_state
from audiodiff.training.config import train_config_from_dict
from audiodiff.training.tasks import build_task
from audiodiff.training.testing import make_captioned_folder, tiny_train_dict
from audiodiff.training.trainer import Trainer


@pytest.fixture
def audiodiff_cli(monkeypatch):
    """cli.main with the training commands registered (as the lead wires them into cli.py)."""
    from audiodiff.training.cli import register

    if not any(getattr(r, "__module__", "") == register.__module__ for r in cli._EXTRA_COMMANDS):
        monkeypatch.setattr(cli, "_EXTRA_COMMANDS", [*cli._EXTRA_COMMANDS, register])
    return cli.main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_captioned_folder(tmp_path_factory.mktemp("clips"), clips_per_class=8)


def write_config(path, run_dir, folder, **changes) -> str:
    data = tiny_train_dict(run_dir, folder)
    for key, value in changes.items():
        node = data
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(json.dumps(data))
    return str(path)


def python_cli(*args: str, timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "audiodiff.training", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_help_and_user_errors_are_one_line(audiodiff_cli, folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        audiodiff_cli(["train", "--help"])
    assert "--config" in capsys.readouterr().out
    config = write_config(tmp_path / "c.json", tmp_path / "run", folder)
    cases = [
        (["train", "--config", config, "--set", "optim.lrr=1"], "unknown config key(s) config.optim.lrr"),
        (["train", "--config", config, "--set", "steps=many"], "config.steps: expected int, got str"),
        (["train", "--config", str(tmp_path / "missing.json")], "config file not found"),
        (["train", "--config", config, "--set", f"data.folder={json.dumps(str(tmp_path))}"],
         "no audio clips found"),
        (["export", str(tmp_path / "norun"), "-o", str(tmp_path / "m")], "run directory not found"),
    ]
    for argv, message in cases:
        assert audiodiff_cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert audiodiff_cli(["train", "--config", config, "--print-config", "--steps", "9"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 9


@pytest.mark.slow
def test_fine_tuning_through_the_cli_learns_the_captions(folder, tmp_path):
    """A tiny random pipeline fine-tuned on hums vs noise bursts: validation loss falls, and the
    exported model's samples follow the prompt (hums are quiet above the lowest mel bands)."""
    torch.manual_seed(0)
    base = build_task(train_config_from_dict(tiny_train_dict(tmp_path, folder)).task).export(tmp_path / "base")
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "c.json", run_dir, folder, steps=150, batch_size=8, valid_every=50,
                          log_every=25, init_from=str(base), data__crop_s=0.5,
                          optim__lr=3e-3, optim__warmup_steps=10, optim__ema_decay=0.95)
    start = time.monotonic()
    done = python_cli("train", "--config", config)
    assert done.returncode == 0, done.stderr
    assert "stopped at step 150/150 (done)" in done.stdout
    valid = [m["valid/loss_ema"] for m in metrics(run_dir) if "valid/loss_ema" in m]
    assert len(valid) == 4 and valid[-1] < 0.3 * valid[0], valid
    exported = python_cli("export", str(run_dir), "-o", str(tmp_path / "model"), "--fp16")
    assert exported.returncode == 0, exported.stderr
    assert time.monotonic() - start < 180
    pipe = TextToAudioPipeline.from_pretrained(tmp_path / "model")
    high = {}
    for prompt in ("a low hum", "a burst of noise"):
        mel, _ = pipe.generate_mel(prompt, duration_s=0.5, num_steps=10, guidance_scale=3.0, seed=0, batch_size=4)
        high[prompt] = mel[:, 0, 8:].mean().item()  # upper half of the 16 mel bands, normalised
    assert high["a low hum"] < -0.6 and high["a burst of noise"] > high["a low hum"] + 0.5, high


def run_in_process(config: str, *overrides: str):
    """A Trainer run in this process with one thread (bitwise equal to the OMP_NUM_THREADS=1 CLI)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return Trainer(train_config_from_dict(json.loads(open(config).read()), list(overrides))).run()
    finally:
        torch.set_num_threads(threads)


def test_torchrun_ddp_with_gloo_equals_one_process(folder, tmp_path):
    config = write_config(tmp_path / "c.json", tmp_path / "single", folder, steps=3, batch_size=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "audiodiff.training", "train", "--config", config, "--run-dir", str(tmp_path / "ddp")],
                         env=env, capture_output=True, text=True, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "stopped at step 3/3" in ddp.stdout and ddp.stdout.count("stopped at") == 1  # rank 0 reports
    run_in_process(config)
    start = [m for m in metrics(tmp_path / "ddp") if m.get("event") == "start"]
    assert len(start) == 1 and start[0]["world_size"] == 2 and start[0]["micro_batch"] == 2

    def final(run, part="model"):
        return load_file(str(latest_checkpoint(tmp_path / run / "checkpoints") / f"{part}.safetensors"))

    for part in ("model", "ema"):
        a, b = final("ddp", part), final("single", part)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)
    # The comparison can fail: another global batch gives other weights.
    run_in_process(config, f"run_dir={json.dumps(str(tmp_path / 'other'))}", "batch_size=2")
    b, c = final("single"), final("other")
    assert any(not torch.allclose(c[k], b[k], atol=2e-5, rtol=1e-4) for k in b)


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(folder, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "c.json", run_dir, folder, steps=40, checkpoint_every=2, log_every=1)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "audiodiff.training", "train", "--config", config],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            latest = latest_checkpoint(run_dir / "checkpoints")
            if latest is not None and read_state(latest)["step"] >= 6:
                break
            time.sleep(0.05)
        else:
            pytest.fail("training did not reach step 6 in time")
        time.sleep(0.37)  # land somewhere inside a later step or checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = max(m["step"] for m in metrics(run_dir) if "train/loss" in m)
    latest = latest_checkpoint(run_dir / "checkpoints")
    _, state = load_checkpoint(latest)  # complete and uncorrupted, whatever the timing of the kill
    saved = state["step"]
    assert logged - saved < 2 + 1  # lost at most the steps since the last checkpoint (every 2)
    resumed = python_cli("train", "--config", config, "--stop-at-step", str(saved + 4))
    assert resumed.returncode == 0, resumed.stderr
    events = [m for m in metrics(run_dir) if m.get("event") == "resume"]
    assert events and events[-1]["step"] == saved
    # Killed + resumed equals an uninterrupted run to the same step.
    run_in_process(config, f"run_dir={json.dumps(str(tmp_path / 'ref'))}", f"stop_at_step={saved + 4}")
    for part in ("model", "ema", "optimizer"):
        a = load_file(str(latest_checkpoint(run_dir / "checkpoints") / f"{part}.safetensors"))
        b = load_file(str(latest_checkpoint(tmp_path / "ref" / "checkpoints") / f"{part}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), part


CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").iterdir()
                 if p.suffix in (".toml", ".json"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads_and_checks(path):
    """A config in configs/ that no longer matches the dataclasses fails here, not in a user's run."""
    from audiodiff.training.config import load_train_config

    config = load_train_config(path, [])
    assert config.steps >= 1 and config.batch_size >= 1


def test_readme_fine_tune_of_the_bundled_model_runs_and_exports(audiodiff_cli, folder, tmp_path):
    """The README's command: configs/finetune_folder.toml on a folder, starting from the bundled
    model, whose melody input (12 chroma channels) the config does not mention: it keeps training
    that input on the folder's chroma instead of refusing the architecture."""
    run_dir, out = tmp_path / "finetune", tmp_path / "my_model"
    config = Path(__file__).resolve().parents[1] / "configs" / "finetune_folder.toml"
    code = audiodiff_cli(["train", "--config", str(config), "--set", f"data.folder={folder}",
                          "--set", f"run_dir={run_dir}", "--set", "steps=1", "--set", "batch_size=2",
                          "--set", "data.crop_s=0.5", "--set", "precision=fp32"])
    assert code == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["task"]["frame_condition"] == "chroma" and saved["task"]["unet"]["cond_channels"] == 12
    assert audiodiff_cli(["export", str(run_dir), "-o", str(out), "--fp16"]) == 0
    pipe = TextToAudioPipeline.from_pretrained(out)
    default = TextToAudioPipeline.from_pretrained()
    assert pipe.unet.config == default.unet.config
    moved = [(a.float() - b.float()).abs().max().item()
             for a, b in zip(pipe.unet.state_dict().values(), default.unet.state_dict().values())]
    assert 0 < max(moved) < 0.05  # one small step away from the bundled weights
    audio = pipe("a low hum", duration_s=0.5, num_steps=2, seed=0).waveforms
    assert audio.shape[-1] > 0 and torch.isfinite(audio).all()
