"""Extrapolate a pipeline folder's UNet away from an earlier checkpoint of the same model, in
weight space: W = W_model + alpha * (W_model - W_earlier), written as a new pipeline folder.

The last fine-tunes of a model move its weights in a direction that lowers the loss; continuing a
little further along that direction, with no training, often helps as much as a few more hours of
it would (model extrapolation, "ExPO", Zheng et al. 2024, for language models). It costs nothing
at sampling time, unlike autoguidance (one more network call per step).

    git worktree add /tmp/v08 973abd1      # v0.8, the checkpoint before v0.9
    python scripts/extrapolate_weights.py --model audiodiff/assets/default \\
        --earlier /tmp/v08/audiodiff/assets/default --alpha 1 --out /tmp/extrapolated

Everything but the UNet is copied. A guide stored as a difference to the old UNet (``guide/``
saved with ``guide_bits``) no longer fits the new one and is left out, with a note: give the new
folder its guide again with scripts/attach_guide.py. The output is a new folder, never the model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def extrapolate(state: dict[str, torch.Tensor], earlier: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """``state + alpha * (state - earlier)`` for every floating-point tensor (in float32), the
    others (integer buffers) as they are. Both must have the same keys and shapes."""
    if set(state) != set(earlier):
        missing, extra = sorted(set(state) - set(earlier)), sorted(set(earlier) - set(state))
        raise ValueError(f"the two checkpoints differ in their tensors: earlier lacks {missing[:5]}, "
                         f"has extra {extra[:5]}: they must be the same architecture")
    out = {}
    for key, value in state.items():
        if value.shape != earlier[key].shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} against the earlier {tuple(earlier[key].shape)}")
        if value.is_floating_point():
            v = value.float()
            out[key] = (v + alpha * (v - earlier[key].float())).to(value.dtype)
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="pipeline folder")
    p.add_argument("--earlier", required=True, help="an earlier checkpoint: a UNet folder or a pipeline folder (its unet/)")
    p.add_argument("--alpha", type=float, required=True, help="how far past the model (0: the model itself)")
    p.add_argument("--out", required=True, help="new pipeline folder to write")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from audiodiff.delta import is_delta_folder
    from audiodiff.hub import CONFIG_NAME, WEIGHTS_NAME, load_config, read_weights, write_weights
    from audiodiff.pipelines.text_to_audio import GUIDE_FOLDER

    model, out = Path(args.model), Path(args.out)
    if out.resolve() == model.resolve() or (out.exists() and any(out.iterdir())):
        raise SystemExit(f"--out {out} must be a new (or empty) folder, not the model itself")
    if not (model / "pipeline.json").is_file():
        raise SystemExit(f"--model {model} is not a pipeline folder (no pipeline.json)")
    earlier = Path(args.earlier)
    earlier = earlier / "unet" if (earlier / "pipeline.json").is_file() else earlier
    config = load_config(model / "unet")
    # the stored tensors (the bundled model's are fp16), extrapolated in float32 and stored back as they were
    state = extrapolate(read_weights(model / "unet" / WEIGHTS_NAME), read_weights(earlier / WEIGHTS_NAME), args.alpha)

    drop_guide = is_delta_folder(model / GUIDE_FOLDER)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp, ignore=shutil.ignore_patterns("unet", *([GUIDE_FOLDER] if drop_guide else [])))
    (tmp / "unet").mkdir()
    write_weights(state, tmp / "unet" / WEIGHTS_NAME, type(config).__name__)
    config.save(tmp / "unet" / CONFIG_NAME)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    print(f"wrote {out}: UNet extrapolated {args.alpha:g}x past the model from {earlier}"
          + ("; its guide/ was a difference to the old UNet and is left out: "
             "re-attach it with scripts/attach_guide.py" if drop_guide else ""))
    return out


if __name__ == "__main__":
    main()
