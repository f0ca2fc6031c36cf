"""``audiodiff evaluate``: label accuracy and Frechet distance of generated vs real clips.

    audiodiff evaluate --model MODEL_DIR                          # -> benchmarks/results/quality.json + .md
    audiodiff evaluate --model MODEL_DIR --baseline untrained -o results.json
    audiodiff evaluate --baseline untrained --clips-per-category 2 --steps 10   # no model yet
    audiodiff evaluate-compare --base old0.json old1.json --new new0.json new1.json   # is NEW better?

Imports no torch at module level, so ``audiodiff --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TRIM_DB = -60.0  # evaluate.TRIM_DB, not imported from there (that imports torch); a test keeps them equal


def _trim_db(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level in dB below the peak (e.g. -60) or 'none', "
                                         f"got {text!r}") from None
    if not -120 <= value < 0:
        raise argparse.ArgumentTypeError(f"expected a level in [-120, 0) dB below the peak, or 'none'; got {value:g}")
    return value


def _evaluate(args: argparse.Namespace) -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .evaluate import markdown_report, run_evaluation, write_report

    names = [n.strip() for n in args.categories.split(",") if n.strip()] if args.categories else None
    report = run_evaluation(model=args.model, baseline=args.baseline, data_dirs=args.data or ["data/corpora"],
                            category_names=names, clips_per_category=args.clips_per_category,
                            real_per_category=args.real_per_category, duration_s=args.duration_s,
                            steps=args.steps, guidance=args.guidance, seed=args.seed, device=args.device,
                            cache_dir=args.cache_dir, progress=not args.quiet,
                            guidance_interval=args.guidance_interval, sound_lengths=args.sound_lengths,
                            dtype=args.dtype, autoguidance=args.autoguidance, guide=args.guide,
                            trim_db=args.trim_db, sampler=args.sampler)
    json_path, md_path = write_report(report, args.output)
    print(markdown_report(report))
    print(f"wrote {json_path} and {md_path}")


def _compare(args: argparse.Namespace) -> None:
    import json

    from .compare import compare_reports, load_report, markdown_comparison
    from .evaluate import write_atomic

    cmp = compare_reports([load_report(p) for p in args.base], [load_report(p) for p in args.new], alpha=args.alpha)
    text = markdown_comparison(cmp)
    print(text, end="")
    if args.output:
        write_atomic(args.output, json.dumps(cmp, indent=2) + "\n")
        md = write_atomic(Path(args.output).with_suffix(".md"), text)
        print(f"wrote {args.output} and {md}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command to the audiodiff CLI."""
    from ..cli import add_autoguidance_arg, add_dtype_arg

    p = subparsers.add_parser(
        "evaluate", help="score a text-to-audio model: label accuracy and Frechet distance to real clips",
        description="Generate clips for each evaluation category's held-out prompts, embed them and real "
                    "clips with the packaged aiSFX sound embedding, and report top-1/top-5 label accuracy "
                    "(per-class k-NN over real clips), the Frechet distance to the real clips, the real-data "
                    "ceiling (leave-one-out accuracy) and floor (FD between two halves of the real clips).")
    p.add_argument("--model", default=None, help="pipeline folder or hub id (default: the bundled model, "
                   "when shipped; without one only the real-data ceiling and floor are reported)")
    p.add_argument("--baseline", choices=["untrained"], default=None,
                   help="also score the same architecture with random weights")
    p.add_argument("--clips-per-category", type=int, default=4, help="generated clips per category (default 4)")
    p.add_argument("--real-per-category", type=int, default=16,
                   help="real clips per category: held-out splits first, then train (default 16)")
    p.add_argument("--categories", default=None, help="comma-separated category names (default: all)")
    p.add_argument("--duration-s", type=float, default=4.0,
                   help="seconds generated per clip; real clips are cropped to the same (default 4)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (model default)")
    p.add_argument("--sampler", default=None, help="sampler, e.g. dpmpp_2m or dpmpp_2m_sde (model default)")
    p.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("SIGMA_LO", "SIGMA_HI"),
                   help="guide only the steps with SIGMA_LO < sigma <= SIGMA_HI (model default)")
    add_autoguidance_arg(p)
    p.add_argument("--sound-lengths", choices=["auto", "untold", "real"], default="auto",
                   help="models with a timing input: 'auto' (default) predicts each clip's sound length "
                        "from its prompt when the model has a sound length head (else as 'untold'); "
                        "'untold' lets the model decide; 'real' tells each clip the length of a real clip "
                        "of its category")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--trim-db", type=_trim_db, default=TRIM_DB, metavar="DB",
                   help=f"cut each generated clip's leading and trailing audio this far below its peak before "
                        f"embedding it, as the corpora's real clips were cut (default {TRIM_DB:g}); 'none' "
                        "embeds the whole clip, silence included, as reports before 2026-12-05 did")
    add_dtype_arg(p)
    p.add_argument("--data", action="append", default=None,
                   help="corpus folder holding */manifest.jsonl, or a manifest (repeatable; default data/corpora)")
    p.add_argument("--cache-dir", default=None, help="real-clip embedding cache (default ~/.cache/audiodiff/eval)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: cpu)")
    p.add_argument("-o", "--output", default="benchmarks/results/quality.json",
                   help="JSON report; the markdown table goes next to it as .md "
                        "(default benchmarks/results/quality.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "evaluate-compare", help="is a new model better? paired comparison of two models' evaluate reports",
        description="Compare `audiodiff evaluate` reports of two models made with the same options and seeds, "
                    "clip by clip: top-1/top-5 hits with McNemar's exact test on the clips only one model gets "
                    "right, and the Frechet distance per seed against the spread between seeds.",
        epilog="example: audiodiff evaluate-compare --base old0.json old1.json --new new0.json new1.json")
    p.add_argument("--base", nargs="+", required=True, metavar="REPORT",
                   help="reports of the reference model, one per seed")
    p.add_argument("--new", nargs="+", required=True, metavar="REPORT",
                   help="reports of the candidate, in the same order (same seeds and options)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdicts (default 0.05)")
    p.add_argument("-o", "--output", default=None, help="also write the comparison as JSON (and .md next to it)")
    p.set_defaults(func=_compare)
