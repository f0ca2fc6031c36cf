#!/usr/bin/env python
"""Prepare the melody fine-tune of the bundled default model (issue 8), on this machine:
    python scripts/melody_prepare.py [--out runs/melody_init] [--export data/corpora/export-melody]
1. an init folder: the bundled model with ``melody_layout = "pitch_class_mel"`` and the melody
   input weights (the 12 chroma channels of the UNet's first convolution) set to zero, so the
   fine-tune starts from exactly the bundled model's text-only behaviour and learns the melody
   path in the new layout (the bundled weights were trained on the broadcast layout and ignore it);
2. a compact export with melody-labelled music as three quarters of the budget, long pieces cut
   into 6 s chunks (``audiodiff prepare export --chunks``), unless it exists;
3. the pooled MiniLM embeddings of its captions (``data.text_cache``), so training skips MiniLM.
Then train, on the CPU (a few hours) or a GPU, with the recipe script:
    python scripts/gpu_train.py --config configs/melody_finetune.toml \\
        --export data/corpora/export-melody --out runs/melody_cpu --device cpu --max-minutes 75
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


def make_init(source: Path, out: Path) -> Path:
    """Copy the pipeline folder ``source`` to ``out`` in the pitch-class mel layout, melody
    input weights zeroed (written to a temporary folder, then renamed)."""
    import torch

    from audiodiff.hub import load_component, save_component
    from audiodiff.models.unet_mel import UNetMel
    from audiodiff.pipelines import TextToAudioConfig

    config = TextToAudioConfig.load(source / "pipeline.json")
    unet = load_component(source / "unet", expected=UNetMel)
    if unet.config.cond_channels != 12:
        raise ValueError(f"{source}: the UNet has {unet.config.cond_channels} frame channels; melody needs 12")
    with torch.no_grad():
        unet.backbone.input_conv.weight[:, unet.config.in_channels:] = 0.0
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_component(unet, tmp / "unet", dtype=torch.float16)
    shutil.copytree(source / "text", tmp / "text")
    config.replace(melody_layout="pitch_class_mel").save(tmp / "pipeline.json")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="", help="pipeline folder to start from (default: the bundled model)")
    p.add_argument("--out", default=str(ROOT / "runs" / "melody_init"))
    p.add_argument("--features", default=str(ROOT / "data" / "corpora" / "features"))
    p.add_argument("--export", default=str(ROOT / "data" / "corpora" / "export-melody"))
    p.add_argument("--max-mib", type=float, default=100.0)
    p.add_argument("--melody-share", type=float, default=0.75)
    args = p.parse_args(argv)

    from audiodiff.conditioning.text import TextConditionerConfig
    from audiodiff.data.feature_cache import FeatureShards, export_compact
    from audiodiff.pipelines.text_to_audio import DEFAULT_MODEL_DIR
    from audiodiff.training.data import build_text_cache

    init = make_init(Path(args.source) if args.source else DEFAULT_MODEL_DIR, Path(args.out))
    print(f"init folder: {init} (melody_layout = pitch_class_mel, melody input weights zeroed)")
    export = Path(args.export)
    if not (export / "index.json").is_file():
        export_compact(args.features, export, max_mib=args.max_mib, max_clip_s=6.0, dtype="uint8",
                       melody_share=args.melody_share, chunks=True)
    cache = export / "text_cache.safetensors"
    if not cache.is_file():
        build_text_cache(FeatureShards(export).captions, TextConditionerConfig(encoder="minilm"), cache)
    print(f"export: {export}, text cache: {cache}")


if __name__ == "__main__":
    main()
