#!/usr/bin/env python
"""Prepare a timing fine-tune of a pipeline without a timing input, on this machine:
    python scripts/timing_prepare.py [--source DIR] [--out runs/timing_init]
writes an init folder: the pipeline with a timing input added to its UNet
(``timing_channels = 1``, the plane that says where the sound stops) whose first-convolution
weights are zero, so the fine-tune starts from exactly that model. The bundled model has one
since v0.5; v0.5 was made from v0.4, the bundle of commit ba9e0a7:
    git worktree add /tmp/v04 ba9e0a7
    python scripts/timing_prepare.py --source /tmp/v04/audiodiff/assets/default
Then, with the GPU
run's export and text cache (``python scripts/gpu_prepare.py --no-archive``), train on the CPU
or a GPU:
    python scripts/gpu_train.py --config configs/timing_finetune.toml \\
        --export gpu_carry/export --out runs/timing_cpu --device cpu --max-minutes 80
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_init(source: str | None, out: Path) -> Path:
    """The pipeline ``source`` (None: the bundled one) with a zero-weight timing input, written to
    ``out`` (through a temporary folder, then renamed)."""
    import torch

    from audiodiff.pipelines import TextToAudioPipeline

    pipe = TextToAudioPipeline.from_pretrained(source)
    pipe.unet = pipe.unet.with_timing_input()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, dtype=torch.float16)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=None, help="pipeline folder without a timing input to start from "
                   "(default: the bundled model, which has one since v0.5)")
    p.add_argument("--out", default=str(ROOT / "runs" / "timing_init"))
    args = p.parse_args(argv)
    try:
        init = make_init(args.source, Path(args.out))
    except ValueError as err:  # UNetMel.with_timing_input: the source already has one
        p.error(f"{args.source or 'the bundled model'}: {err}; fine-tune it as it is (init_from = that folder), "
                "or give --source a model without one (see --help)")
    print(f"init folder: {init} (timing input added, its weights zero)")


if __name__ == "__main__":
    main()
