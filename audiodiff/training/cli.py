"""``audiodiff train``, ``train-vocoder``, ``export`` and ``fit-length``: thin layers over :mod:`audiodiff.training`.

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


def _cmd_fit_length(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from ..conditioning.length import SoundLengthConfig, fit_sound_length
    from ..config import atomic_write_text
    from ..hub import save_component
    from ..pipelines.text_to_audio import PIPELINE_CONFIG, SOUND_LENGTH_FOLDER, TextToAudioPipeline
    from .config import DataConfig
    from .data import load_entries

    folder = Path(args.model)
    if not (folder / PIPELINE_CONFIG).is_file():
        raise FileNotFoundError(f"{folder} has no {PIPELINE_CONFIG}: fit-length writes into a local text-to-audio "
                                "model folder (e.g. one written by `audiodiff export`)")
    pipe = TextToAudioPipeline.from_pretrained(folder)
    if not pipe.unet.config.timing_channels:
        raise ValueError(f"{folder}'s UNet has no timing input (timing_channels = 0), so a predicted sound length "
                         "would have nothing to tell; fine-tune one with configs/timing_finetune.toml first")
    data = DataConfig(manifest=args.manifest or "", folder=args.folder or "", features=args.features or "")
    entries = load_entries(data)
    config = SoundLengthConfig(dim=pipe.text.config.dim, max_s=args.max_s, fill_s=args.fill_s)
    head, report = fit_sound_length(entries, lambda captions: pipe.text.encoder.encode(captions)[2], config,
                                    ridge=args.ridge, train_split=args.train_split, valid_split=args.valid_split)
    print(report.summary())
    if args.dry_run:
        return
    out = save_component(head, folder / SOUND_LENGTH_FOLDER)
    atomic_write_text(out / "fit.json", json.dumps(
        {"data": args.manifest or args.folder or args.features, "ridge": args.ridge, **vars(report)}, indent=1) + "\n")
    probe = ["a single short beep", "heavy rain falling on a roof"]
    pipe.sound_length = head
    print(f"wrote {out}; in {pipe.config.default_duration_s:g} s clips: "
          + ", ".join(f"{p!r} {s:g} s" for p, s in zip(probe, pipe.predict_sound_s(probe))))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``train-vocoder``, ``export`` and ``fit-length`` sub-commands to the audiodiff CLI."""
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

    p = subparsers.add_parser(
        "fit-length", help="fit a model's sound length head: prompt -> seconds of sound",
        description="Fit the sound length head of a model with a timing input on training clips' captions and "
                    "durations (a closed-form ridge regression of log seconds on the pooled text embedding, "
                    "seconds to fit) and "
                    "write it into MODEL/sound_length, so that generation's default sound_s='auto' tells the "
                    "model how long each prompt's sound should last. Reports the error on the valid split.")
    p.add_argument("model", help="a local model folder (pipeline.json, unet/, text/, ...)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", help="a feature cache or compact export folder (what the model trained on)")
    src.add_argument("--manifest", help="a JSONL manifest")
    src.add_argument("--folder", help="a folder of audio + captions")
    p.add_argument("--ridge", type=float, default=1.0, help="L2 penalty of the regression (default 1)")
    p.add_argument("--max-s", type=float, default=10.0, help="longest length predicted, in seconds (default 10)")
    p.add_argument("--fill-s", type=float, default=None,
                   help="predictions of at least this many seconds fill the clip; set it to the training crop "
                        "of the model's timing input (data.crop_s), the longest sound end it has seen "
                        "(default: none)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--valid-split", default="valid")
    p.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    p.set_defaults(func=_cmd_fit_length)
