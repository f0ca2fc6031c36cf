"""Tiny training fixtures: a generated folder of captioned clips and a config that trains in seconds.

Used by the tests and handy for trying the trainer without data::

    from audiodiff.training.testing import make_captioned_folder, tiny_train_config
    make_captioned_folder("toy_sounds")
    Trainer(tiny_train_config("runs/toy", "toy_sounds")).run()
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..audio import save_audio
from .config import TrainConfig, train_config_from_dict

TINY_SAMPLE_RATE = 8000

HUM_CAPTIONS = ("a low hum", "a low droning sine tone", "a deep steady hum")
NOISE_CAPTIONS = ("a burst of noise", "a short hiss of white noise", "a noisy burst")


def tiny_task_dict() -> dict[str, Any]:
    """A text-to-audio task small enough for CPU tests: 16 mels at 8 kHz, ~20k parameters."""
    return {
        "type": "text_to_audio",
        "unet": {"n_mels": 16, "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                 "self_attention_levels": [1], "cross_attention_levels": [1], "num_heads": 2,
                 "text_dim": 32, "pooled_dim": 32},
        "text": {"encoder": "hash", "dim": 32},
        "pipeline": {"mel": {"sample_rate": TINY_SAMPLE_RATE, "n_fft": 256, "hop_length": 64,
                             "win_length": 256, "n_mels": 16, "f_max": 4000.0},
                     "vocoder": "griffinlim", "default_steps": 4},
        "sample_prompts": ["a low hum"],
        "sample_duration_s": 0.5,
        "sample_steps": 4,
    }


def tiny_vocoder_task_dict() -> dict[str, Any]:
    """A HiFi-GAN generator and discriminators of a few thousand parameters on the tiny mel."""
    mel = tiny_task_dict()["pipeline"]["mel"]
    return {
        "type": "vocoder",
        "generator": {"mel": mel, "upsample_rates": [4, 4, 4], "upsample_kernel_sizes": [8, 8, 8],
                      "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
                      "resblock_dilation_sizes": [[1, 3]]},
        "mpd_periods": [2, 3], "mpd_channels": [4, 8],
        "mrd_resolutions": [[128, 32, 128], [256, 64, 256]], "mrd_channels": 4,
    }


def tiny_train_dict(run_dir: str | os.PathLike, folder: str | os.PathLike) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "task": tiny_task_dict(),
        "data": {"folder": str(folder), "crop_s": 0.25, "valid_fraction": 0.25},
        "optim": {"lr": 2e-3, "warmup_steps": 2, "ema_decay": 0.9},
        # fp32 so that tests check the same arithmetic on every CPU ("auto" picks bf16 on some).
        "steps": 4, "batch_size": 4, "device": "cpu", "precision": "fp32", "progress": False,
        "checkpoint_every": 1000, "checkpoint_minutes": 0, "log_every": 1,
        "valid_every": 1000, "sample_every": 100000,
    }


def tiny_train_config(run_dir: str | os.PathLike, folder: str | os.PathLike,
                      overrides: list[str] | None = None) -> TrainConfig:
    """The tiny config above with ``--set``-style overrides."""
    return train_config_from_dict(tiny_train_dict(run_dir, folder), overrides)


def make_captioned_folder(folder: str | os.PathLike, clips_per_class: int = 6,
                          sample_rate: int = TINY_SAMPLE_RATE, seed: int = 0) -> Path:
    """Write low sine hums and noise bursts (0.3 - 0.9 s) plus a metadata.csv with 3 captions each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(clips_per_class * 2):
        hum = i % 2 == 0
        duration = 0.3 + 0.6 * float(torch.rand(1, generator=g))
        n = int(duration * sample_rate)
        t = torch.arange(n) / sample_rate
        if hum:
            f0 = 90.0 + 80.0 * float(torch.rand(1, generator=g))
            wav = sum(0.4 / k * torch.sin(2 * math.pi * k * f0 * t) for k in (1, 2, 3))
            name, captions = f"hum_{i:02d}.wav", HUM_CAPTIONS
        else:
            envelope = torch.exp(-t * (4.0 + 8.0 * float(torch.rand(1, generator=g))))
            wav = 0.5 * envelope * torch.randn(n, generator=g).clamp(-3, 3) / 3
            name, captions = f"noise_{i:02d}.wav", NOISE_CAPTIONS
        save_audio(folder / name, wav[None].float(), sample_rate)
        rows += [(name, c) for c in captions]
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", "caption"])
        writer.writerows(rows)
    return folder
