#!/usr/bin/env python
"""Prepare what a GPU machine needs to train the default model, on this machine (no GPU):

    python scripts/gpu_prepare.py [--features data/corpora/features] [--out gpu_carry]

1. a compact export of the mel feature cache (uint8 mels, clips cut to ``--max-clip-s``),
2. a text cache: the pooled MiniLM embedding of every caption in it (the GPU machine has no
   MiniLM weights, and the pooled-only default model needs nothing else),
3. the export packed as ``OUT/export.tar.xz`` (xz: uint8 mels shrink ~1.6x); with the text cache
   small enough to travel with the repository (the device tool carries at most 64 MiB).

On the GPU machine, scripts/gpu_train.sh unpacks it and trains.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--features", default=str(ROOT / "data" / "corpora" / "features"))
    p.add_argument("--out", default=str(ROOT / "gpu_carry"))
    p.add_argument("--max-mib", type=float, default=88.0, help="uncompressed export size (default 88)")
    p.add_argument("--max-clip-s", type=float, default=6.0)
    p.add_argument("--melody-share", type=float, default=0.3)
    p.add_argument("--mel-bits", type=int, default=8,
                   help="bits kept of each uint8 mel value (default 8; 6 packs 2.9x smaller with xz, so the "
                        "export travels beside the bundled model: configs/gpu_continue.toml)")
    p.add_argument("--reuse-export", action="store_true", help="keep an existing OUT/export")
    p.add_argument("--no-archive", action="store_true", help="skip export.tar.xz (training on this machine)")
    args = p.parse_args(argv)

    from audiodiff.conditioning.text import TextConditionerConfig
    from audiodiff.data.feature_cache import FeatureShards, export_compact
    from audiodiff.training.data import build_text_cache

    out = Path(args.out)
    export = out / "export"
    if not (args.reuse_export and (export / "index.json").is_file()):
        export_compact(args.features, export, max_mib=args.max_mib, max_clip_s=args.max_clip_s,
                       dtype="uint8", melody_share=args.melody_share, bits=args.mel_bits)
    captions = FeatureShards(export).captions
    cache = build_text_cache(captions, TextConditionerConfig(encoder="minilm"), out / "text_cache.safetensors")
    print(f"text cache: {len(set(captions))} captions, {cache.stat().st_size / 2**20:.1f} MiB")
    if args.no_archive:
        return
    archive = out / "export.tar.xz"
    tmp = out / "export.tar.xz.tmp"
    subprocess.run(f"tar cf - -C {out} export | xz -6 -T0 > {tmp}", shell=True, check=True)
    os.replace(tmp, archive)
    print(f"{archive}: {archive.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
