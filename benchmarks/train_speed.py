#!/usr/bin/env python
"""Training speed of ``audiodiff train`` on this machine, per precision, measured in one run.

What a user fine-tuning the bundled model on a folder of sounds gets (configs/finetune_folder.toml:
``init_from = "default"``, the whole 10.8M UNet trained, AdamW, EMA, gradient clipping): the real
:class:`~audiodiff.training.trainer.Trainer` runs ``--steps`` optimizer steps on a synthetic folder
of captioned clips for each precision, and the per-step rate comes from its own ``metrics.jsonl``
(after ``--warmup`` steps). Precisions are alternated over ``--rounds`` so a noisy shared machine
slows all of them alike:

* ``fp32``: float32 throughout;
* ``bf16``: bf16 autocast (weights, optimizer and EMA stay float32), what ``precision = "auto"``
  picks on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX).

    python benchmarks/train_speed.py --threads 2 --batch-size 16 --crop-s 3 --steps 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop-s", type=float, default=3.0, help="seconds of audio per training item")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run")
    p.add_argument("--rounds", type=int, default=2, help="runs per precision, alternated")
    p.add_argument("--init-from", default="default", help="pipeline folder to fine-tune (default: bundled)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="train-speed")
    args = p.parse_args(argv)
    for flag in ("batch_size", "steps", "rounds"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.crop_s <= 0:
        p.error(f"--crop-s must be positive, got {args.crop_s}")
    return args


def train_config(args, run_dir: Path, folder: Path, precision: str):
    from audiodiff.training.config import train_config_from_dict

    return train_config_from_dict({
        "run_dir": str(run_dir), "init_from": args.init_from, "precision": precision,
        "device": args.device, "steps": args.warmup + args.steps, "batch_size": args.batch_size,
        "progress": False, "log_every": 1, "valid_every": 10**9, "sample_every": 10**9,
        "checkpoint_every": 10**9, "checkpoint_minutes": 0,
        "task": {"type": "text_to_audio", "cfg_dropout": 0.1},
        "data": {"folder": str(folder), "crop_s": args.crop_s, "mask_padding": False, "valid_fraction": 0.0},
        "optim": {"lr": 5e-5, "warmup_steps": 1, "ema_decay": 0.999},
    })


def timed_run(args, folder: Path, precision: str, work: Path) -> dict:
    """One training run; seconds per step from the trainer's own log, after the warm-up."""
    from audiodiff.training.trainer import Trainer

    run_dir = Path(tempfile.mkdtemp(dir=work, prefix=f"{precision}-"))
    start = time.perf_counter()
    trainer = Trainer(train_config(args, run_dir, folder, precision))
    build_s = time.perf_counter() - start
    trainer.run()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["train/samples_per_s"] for r in records if "train/samples_per_s" in r][args.warmup:]
    if not rates:
        raise RuntimeError(f"no timed steps in {run_dir / 'metrics.jsonl'}")
    step_s = [args.batch_size / rate for rate in rates]
    return {"precision": precision, "bf16": trainer.use_bf16, "build_s": build_s, "step_s": step_s,
            "loss": [r["train/loss"] for r in records if "train/loss" in r]}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from audiodiff.training.testing import make_captioned_folder

    runs: dict[str, list[dict]] = {p: [] for p in args.precisions}
    with tempfile.TemporaryDirectory(prefix="audiodiff-train-speed-") as tmp:
        work = Path(tmp)
        # 22.05 kHz clips of 0.3-0.9 s, zero-padded to the crop: the work per step depends only on
        # the crop's size, not on what the clips hold.
        folder = make_captioned_folder(work / "clips", clips_per_class=max(4, args.batch_size), sample_rate=22050)
        for r in range(args.rounds):
            for precision in args.precisions:
                result = timed_run(args, folder, precision, work)
                runs[precision].append(result)
                print(f"round {r + 1}/{args.rounds} {precision}: "
                      f"{statistics.median(result['step_s']):.2f} s/step", flush=True)

    summary = {}
    for precision, results in runs.items():
        steps = [s for res in results for s in res["step_s"]]
        median = statistics.median(steps)
        summary[precision] = {"step_s": median, "samples_per_s": args.batch_size / median,
                              "steps_timed": len(steps)}
    base = summary.get("fp32")
    rows = []
    for precision, s in summary.items():
        ratio = base["step_s"] / s["step_s"] if base else float("nan")
        s["speedup_vs_fp32"] = ratio
        rows.append([precision, round(s["step_s"], 3), round(s["samples_per_s"], 2), f"{ratio:.2f}x"])
    info = machine_info(args.device)
    setting = (f"batch {args.batch_size}, {args.crop_s:g} s crops, init_from {args.init_from!r}, "
               f"median of {args.rounds} x {args.steps} steps per precision (after {args.warmup} warm-up steps)")
    markdown = "\n\n".join([
        "# Training speed (`audiodiff train`, the real Trainer)",
        machine_line(info), setting,
        markdown_table(["precision", "s / step", "samples / s", "speed vs fp32"], rows),
    ])
    paths = write_results(args.name, {"machine": info, "settings": vars(args) | {"out": str(args.out)},
                                      "summary": summary, "runs": runs}, markdown, args.out)
    print(markdown)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
