"""``audiodiff train``, ``train-vocoder`` and ``export``: thin layers over :mod:`audiodiff.training`.

This module only builds argparse parsers at import time; torch and the trainer are imported when a
command runs, so ``audiodiff --help`` stays fast.
"""

from __future__ import annotations

import argparse


def _cmd_train(args: argparse.Namespace) -> None:
    import json
    import os

    from .config import load_train_config

    overrides = list(args.set or [])
    for key in ("run_dir", "steps", "max_minutes", "stop_at_step", "device"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    config = load_train_config(args.config, overrides, default_task=getattr(args, "default_task", None))
    if getattr(args, "default_task", None) == "vocoder" and type(config.task).__name__ != "VocoderTaskConfig":
        raise ValueError(f"train-vocoder needs a vocoder task; {args.config} holds a {type(config.task).__name__}")
    if args.print_config:
        print(config.to_json(), end="")
        return
    from .trainer import train

    result = train(config)
    if os.environ.get("RANK", "0") == "0":
        valid = "" if result.valid_loss is None else f", valid loss (EMA) {result.valid_loss:.4f}"
        print(f"stopped at step {result.step}/{config.steps} ({result.reason}){valid}; "
              f"checkpoint: {result.checkpoint}")


def _cmd_export(args: argparse.Namespace) -> None:
    import torch

    from .trainer import export_run

    dtype = torch.float16 if args.fp16 else None
    out = export_run(args.run_dir, args.output, dtype=dtype, checkpoint=args.checkpoint, use_ema=not args.raw)
    print(f"wrote {out} ({'raw' if args.raw else 'EMA'} weights{', fp16' if args.fp16 else ''})")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``train-vocoder`` and ``export`` sub-commands to the audiodiff CLI."""
    for name, task in (("train", None), ("train-vocoder", "vocoder")):
        if task is None:
            help_text = "train or fine-tune a model (resumes an existing run directory)"
            description = ("Train a model from a config file (JSON or TOML). Runs on the CPU, one GPU, or many "
                           "with `torchrun --nproc_per_node N -m audiodiff.training train ...`. A run "
                           "directory that holds a checkpoint is resumed exactly.")
        else:
            help_text = "train or fine-tune a HiFi-GAN vocoder (GAN training)"
            description = ("`audiodiff train` with the vocoder task as the default: e.g. "
                           "`audiodiff train-vocoder --config configs/vocoder.toml`, or without a config "
                           "`--set init_from=hifigan-universal --set data.manifest=...`.")
        p = subparsers.add_parser(name, help=help_text, description=description)
        p.add_argument("--config", help="config file (.json or .toml); see configs/ for examples")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config value, dotted keys for sections: --set optim.lr=3e-4 "
                            "--set data.folder=my_sounds (repeatable; values are JSON, else strings)")
        p.add_argument("--run-dir", dest="run_dir", help="where checkpoints, logs and samples go (config: run_dir)")
        p.add_argument("--steps", type=int, help="total optimizer steps (config: steps)")
        p.add_argument("--max-minutes", dest="max_minutes", type=float,
                       help="time budget: checkpoint and stop cleanly after this many minutes")
        p.add_argument("--stop-at-step", dest="stop_at_step", type=int,
                       help="checkpoint and stop after this step (the LR schedule still follows --steps)")
        p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        p.set_defaults(func=_cmd_train, default_task=task)

    p = subparsers.add_parser(
        "export", help="turn a training run's EMA weights into a model folder",
        description="Write the release format (pipeline.json + one safetensors folder per component) "
                    "from a run's latest checkpoint, loadable with TextToAudioPipeline.from_pretrained.")
    p.add_argument("run_dir", help="the training run directory")
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--checkpoint", help="a checkpoint folder of the run (default: its latest)")
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    p.set_defaults(func=_cmd_export)
