"""Does a model stop its sound when told to? The timing input (``sound_s``) measured on the audio.

Each prompt is generated with its sound length not said, then told each of ``--lengths``, then
(models with a sound length head) told the length the head predicts from the prompt; the end
of the sound is read off the waveform (where the last ~93 ms frame within 40 dB of the
clip's loudest ends, as in benchmarks/prompts.py). A model without a timing input gets the
"not said" row only, for reference.

    python benchmarks/timing.py --model v04=audiodiff/assets/default --model v05=runs/timing_cpu/model

Writes ``timing.json`` / ``timing.md`` under ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from audiodiff.config import DTYPE_NAMES

try:  # run as `python -m benchmarks.timing` or as `python benchmarks/timing.py`
    from benchmarks._common import (
        DEFAULT_OUT, machine_info, machine_line, markdown_table, named_models, write_results,
    )
    from benchmarks.prompts import PROMPTS, clip_stats
except ImportError:
    from _common import (  # type: ignore
        DEFAULT_OUT, machine_info, machine_line, markdown_table, named_models, write_results,
    )
    from prompts import PROMPTS, clip_stats  # type: ignore

# The sound-effect prompts of benchmarks/prompts.py (the last two are music, which fills a clip).
EFFECT_PROMPTS = PROMPTS[:8]


def summarize(rows: list[dict], untold: list[dict] | None = None) -> dict[str, float]:
    """Median end and sounding share; for a told length, the mean absolute error of the ends
    and, as the baseline, that of the same prompts and seeds generated without being told."""
    ends = np.array([r["end_s"] for r in rows])
    out = {"clips": len(rows), "median_end_s": float(np.median(ends)),
           "sounding": float(np.mean([r["sounding"] for r in rows]))}
    if rows[0]["sound_s"] is not None:
        asked = np.array([r["sound_s"] for r in rows])
        err = np.abs(ends - asked)
        out.update(mean_abs_error_s=float(err.mean()), within_0_25_s=float(np.mean(err <= 0.25)))
        if untold is not None:
            out["untold_mean_abs_error_s"] = float(np.mean(np.abs(np.array([r["end_s"] for r in untold]) - asked)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a model to run (repeatable); default: the bundled model")
    p.add_argument("--prompts", nargs="+", default=list(EFFECT_PROMPTS))
    p.add_argument("--lengths", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0],
                   help="sound lengths to ask for, in seconds (default 0.5 1 2 3)")
    p.add_argument("--seed", type=int, default=100, help="prompt i uses seed + i (default 100)")
    p.add_argument("--duration-s", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--dtype", default="fp32", choices=DTYPE_NAMES,
                   help="weights dtype (default fp32; 'auto' = what the CLI uses on this machine)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--name", default="timing", help="results file name (default timing)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(not 0 < length <= args.duration_s for length in args.lengths):
        p.error(f"--lengths must lie in (0, --duration-s = {args.duration_s:g}]")
    models = named_models(p, args.model)

    from audiodiff.pipelines import TextToAudioPipeline

    start = time.perf_counter()
    results: dict[str, dict] = {}
    for name, folder in models:
        pipe = TextToAudioPipeline.from_pretrained(folder, dtype=args.dtype)
        lengths = [None] + (list(args.lengths) if pipe.unet.config.timing_channels else [])
        lengths += ["auto"] if pipe.sound_length is not None else []
        per_length = {}
        for length in lengths:
            rows = []
            for i, prompt in enumerate(args.prompts):
                out = pipe(prompt, duration_s=args.duration_s, seed=args.seed + i, sound_s=length)
                rows.append({"prompt": prompt, "seed": args.seed + i, "sound_s": out.settings.get("sound_s"),
                             **clip_stats(out.waveforms[0, 0].numpy(), pipe.sample_rate)})
            key = {None: "not said", "auto": "from the prompt"}.get(length) or f"{length:g}"
            untold = per_length["not said"]["clips"] if length is not None else None
            per_length[key] = {"summary": summarize(rows, untold), "clips": rows}
            s = per_length[key]["summary"]
            print(f"[{name}] sound_s {length}: " + ", ".join(f"{k} {v:.2f}" for k, v in s.items()), file=sys.stderr)
        results[name] = per_length

    info = machine_info("cpu")
    headers = ["model", "sound_s asked", "median end (s)", "mean |end - asked| (s)",
               "the same, not told (baseline)", "within 0.25 s", "sounding"]
    table = []
    for name, per_length in results.items():
        for key, r in per_length.items():
            s = r["summary"]
            table.append([name, key, f"{s['median_end_s']:.2f}"]
                         + [f"{s[k]:.2f}" if k in s else "" for k in
                            ("mean_abs_error_s", "untold_mean_abs_error_s", "within_0_25_s")]
                         + [f"{s['sounding']:.2f}"])
    md = (f"# Timing input: {len(args.prompts)} prompts, {args.duration_s:g} s clips, default settings, seeds "
          f"{args.seed}-{args.seed + len(args.prompts) - 1} ({time.perf_counter() - start:.0f} s)\n\n"
          f"{machine_line(info)}; weights {args.dtype}\n\nModels: " + ", ".join(f"{n} = `{f or 'bundled'}`" for n, f in models)
          + "\n\n" + markdown_table(headers, table) + "\n\nEnd: when the last ~93 ms frame within 40 dB of "
          "the clip's loudest ends; sounding: share of such frames.\n")
    paths = write_results(args.name, {"machine": info, "models": dict(models), "duration_s": args.duration_s,
                                      "lengths": args.lengths, "results": results}, md, args.out)
    print(md)
    print("wrote", *paths, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
