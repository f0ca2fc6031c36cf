"""Give a pipeline folder a guide network for autoguidance, stored as its low-bit difference to
the folder's UNet (audiodiff.delta), and make autoguidance the folder's default.

How the bundled model got its guide (v0.10: v0.5 of the same UNet, 6 bits, weight 1, off in
the melody mode, where it lowered the frame accuracy):

    git worktree add /tmp/v05 65bf3ac
    python scripts/attach_guide.py --model audiodiff/assets/default \\
        --guide /tmp/v05/audiodiff/assets/default --bits 6 --weight 1 --melody-weight 0 --out /tmp/bundle
    # then compare /tmp/bundle with audiodiff/assets/default and copy guide/ + pipeline.json over

scripts/bundle_candidate.sh does this for a training run's export (v0.11 onwards).

The output is written into ``--out`` (a new folder), never over ``--model``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="pipeline folder whose UNet is guided")
    p.add_argument("--guide", required=True, help="guide: a UNet folder or a pipeline folder (its unet/)")
    p.add_argument("--bits", type=int, default=6, help="bits per weight of the stored difference (2..8)")
    p.add_argument("--weight", type=float, default=1.0, help="the folder's default autoguidance weight")
    p.add_argument("--melody-weight", type=float, default=None,
                   help="the melody mode's default weight (default: --weight; the bundled model: 0)")
    p.add_argument("--out", required=True, help="new pipeline folder to write")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from audiodiff.pipelines import TextToAudioPipeline

    out = Path(args.out)
    if out.resolve() == Path(args.model).resolve() or (out.exists() and any(out.iterdir())):
        raise SystemExit(f"--out {out} must be a new (or empty) folder, not the model itself")
    pipe = TextToAudioPipeline.from_pretrained(args.model, guide=args.guide)
    pipe.config = pipe.config.replace(default_autoguidance=args.weight, melody_autoguidance=args.melody_weight)
    pipe.save_pretrained(out, dtype=torch.float16, guide_bits=args.bits)
    size = sum(f.stat().st_size for f in (out / "guide").rglob("*") if f.is_file())
    print(f"wrote {out} (guide/: {size / 1e6:.1f} MB, {args.bits} bits, default weight {args.weight:g})")
    return out


if __name__ == "__main__":
    main()
