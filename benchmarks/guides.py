"""Which guide network helps a model under autoguidance, D + w (D - G): the evaluator's scores
(``audiodiff evaluate``'s) per guide, weight and seed, against no guide, in one run.

Guides (``--guides``):

    none             the model as it is, without autoguidance
    own              the model's own guide network (its guide/ folder; the bundled model's is v0.5
                     of its UNet as a 6-bit difference)
    DIR              a UNet or pipeline folder, e.g. an earlier checkpoint of the same model
                     (v0.5 of the bundled one: ``git worktree add /tmp/v05 65bf3ac``, then
                     ``/tmp/v05/audiodiff/assets/default``)
    pag              the model itself with identity self-attention maps (perturbed-attention
                     guidance, Ahn et al. 2024)
    quant:BITS       the model's own weights rounded to BITS bits per output channel
    delta:BITS:DIR   the model plus its difference to DIR's UNet, the difference rounded to BITS
                     bits per output channel (how an earlier checkpoint could ship small)

    python benchmarks/guides.py --guides none /tmp/v05/audiodiff/assets/default pag \\
        delta:4:/tmp/v05/audiodiff/assets/default --weights 1 --seeds 0 1

Each (guide, weight, seed) is one evaluation of 42 categories x ``--clips-per-category`` clips
(~3 minutes on 2 cores at 4 clips); a folder guide gets the model's conditioning, null
condition included, so it should come from the same training chain.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402


def _identity_attention(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """SelfAttention.forward with the attention map replaced by the identity: each position
    gets its own value."""
    b, c = x.shape[:2]
    tokens = self.norm(x).reshape(b, c, -1).transpose(1, 2)
    v = self.qkv(tokens).chunk(3, dim=-1)[2]
    return x + self.out(v).transpose(1, 2).reshape(x.shape)


def build_guide(spec: str, unet, own=None):
    """The guide network that ``spec`` names (see the module docstring), or None for "none";
    ``own``: the model's own guide network."""
    from audiodiff.delta import round_per_channel
    from audiodiff.pipelines.text_to_audio import load_guide

    if spec == "none":
        return None
    if spec == "own":
        if own is None:
            raise SystemExit("--guides own: the model has no guide network (no guide/ folder)")
        return own
    if spec == "pag":
        from audiodiff.nn.attention import SelfAttention

        guide = copy.deepcopy(unet)
        blocks = [m for m in guide.modules() if isinstance(m, SelfAttention)]
        if not blocks:
            raise SystemExit("--guides pag: the model has no self-attention to perturb")
        for m in blocks:
            m.forward = types.MethodType(_identity_attention, m)
        return guide
    kind, _, rest = spec.partition(":")
    if kind in ("quant", "delta"):
        bits_text, _, folder = rest.partition(":")
        if not bits_text.isdigit() or not 2 <= int(bits_text) <= 8 or (kind == "delta") != bool(folder):
            raise SystemExit(f"--guides {spec!r}: expected quant:BITS or delta:BITS:DIR with BITS 2..8")
        bits = int(bits_text)
        guide = copy.deepcopy(unet)
        other = load_guide(folder).state_dict() if kind == "delta" else None
        with torch.no_grad():
            for name, p in guide.named_parameters():
                if kind == "quant":
                    if p.ndim >= 2:
                        p.copy_(round_per_channel(p.float(), bits))
                    continue
                d = other[name].float() - p.float()
                p.copy_(p.float() + (round_per_channel(d, bits) if d.ndim >= 2 else d))
        return guide
    return load_guide(spec)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    p.add_argument("--guides", nargs="+", default=["none", "pag"], help="see the module docstring")
    p.add_argument("--weights", nargs="+", type=float, default=[1.0], help="autoguidance weights w")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--clips-per-category", type=int, default=4)
    p.add_argument("--duration-s", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from audiodiff.eval.evaluate import run_evaluation
    from audiodiff.pipelines import TextToAudioPipeline

    base = TextToAudioPipeline.from_pretrained(args.model, dtype=args.dtype)
    info = machine_info("cpu")
    rows, records = [], []
    for spec in args.guides:
        guide = build_guide(spec, base.unet, base.guide)
        pipe = base if guide is None else TextToAudioPipeline(
            base.unet, base.text, base.vocoder, base.config, base.sound_length,
            guide.to(base.device, base.dtype))
        for w in [0.0] if guide is None else args.weights:
            for seed in args.seeds:
                t0 = time.perf_counter()
                report = run_evaluation(model=args.model, pipeline=pipe, clips_per_category=args.clips_per_category,
                                        duration_s=args.duration_s, seed=seed, progress=False, autoguidance=w)
                g = report["generated"]["model"]
                rec = {"guide": spec, "weight": w, "seed": seed, "top1": g["top1"], "top5": g["top5"],
                       "fd": g["fd"], "sounding_fraction": g["sounding_fraction"], "clips": g["clips"],
                       "seconds": time.perf_counter() - t0, "ceiling_top1": report["real"]["top1_leave_one_out"]}
                records.append(rec)
                rows.append([spec, "-" if guide is None else f"{w:g}", seed, f"{rec['top1']:.3f}", f"{rec['top5']:.3f}",
                             f"{rec['fd']:.1f}", f"{rec['sounding_fraction']:.2f}", round(rec["seconds"])])
                print(f"{spec} w={w:g} seed {seed}: top-1 {rec['top1']:.3f} top-5 {rec['top5']:.3f} "
                      f"FD {rec['fd']:.1f}", flush=True)
    md = (f"# Autoguidance: which guide helps\n\n{machine_line(info)}; model {args.model or 'bundled'}, weights "
          f"{args.dtype}; {args.clips_per_category} clips x 42 categories of {args.duration_s:g} s per row "
          "(`audiodiff evaluate`'s scores).\n\n"
          + markdown_table(["guide", "w", "seed", "top-1", "top-5", "Frechet distance", "sounding", "s"], rows) + "\n")
    payload = {"machine": info, "settings": vars(args), "records": records}
    json_path, md_path = write_results("guides", payload, md, args.out)
    print(md)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
