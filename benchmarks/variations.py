"""Issue 8's "must show" for the audio-to-audio modes, on held-out music clips.

(a) variation: chroma cosine and log-mel L1 between input and output at several strengths;
(b) inpainting: max |output - vocoded input| outside the region (must be 0) and the border click
    ratio: energy of the sample-to-sample difference in 10 ms around each border over the median
    of the same energy in 10 ms windows elsewhere (~1 = no click; the vocoded input as baseline);
(c) long audio: exact length of a 60 s generation and a verbatim-loop check: the largest mean
    cosine similarity of log-mel frames i and i + lag over lags above 1 s (1 = a verbatim loop);
(d) melody: chroma cosine and frame accuracy of the output's argmax chroma against the
    reference's melody labels, for melody-conditioned vs text-only vs the vocoded reference.

Clips: the music corpus's ``valid`` split (rendered music21 scores with melody labels).

    python benchmarks/variations.py --model MODEL_DIR --clips 8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:  # run as `python -m benchmarks.variations` or as `python benchmarks/variations.py`
    from benchmarks._common import DEFAULT_OUT, machine_info, machine_line, markdown_table, mean_std, write_results
except ImportError:
    from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, mean_std, write_results  # type: ignore

from audiodiff.audio import Chroma, MelSpectrogram, load_audio, peak_normalize
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.pipelines.variations import melody_chroma

MANIFEST = Path(__file__).resolve().parent.parent / "data" / "corpora" / "music" / "manifest.jsonl"
STRENGTHS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def load_clips(manifest: Path, n: int, clip_s: float, sr: int, hop: int, seed: int) -> list[dict]:
    """``n`` valid-split clips: 22.05 kHz mono, the first ``clip_s`` seconds, peak -1 dBFS, with
    their melody labels (12, frames) and first caption."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    entries = [e for e in entries if e.get("split") == "valid"]
    random.Random(seed).shuffle(entries)
    clips = []
    for e in entries[:n]:
        wav, _ = load_audio(manifest.parent / e["path"], sample_rate=sr, mono=True)
        num = min(wav.shape[-1], round(clip_s * sr)) // hop * hop
        labels = None
        if e.get("melody"):
            labels = torch.from_numpy(np.load(manifest.parent / e["melody"]).astype(np.float32))[:, :num // hop]
        clips.append({"name": Path(e["path"]).stem, "wav": peak_normalize(wav[:, :num], -1.0),
                      "caption": e["captions"][0], "labels": labels})
    return clips


def chroma_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean framewise cosine of two (12, N) chromas over frames where both are non-zero."""
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[:, :n], b[:, :n]
    both = (a.norm(dim=0) > 0) & (b.norm(dim=0) > 0)
    if not both.any():
        return math.nan
    cos = torch.nn.functional.cosine_similarity(a[:, both], b[:, both], dim=0)
    return float(cos.mean())


def frame_accuracy(out_chroma: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of voiced label frames whose argmax pitch class the output matches."""
    n = min(out_chroma.shape[-1], labels.shape[-1])
    voiced = labels[:, :n].sum(0) > 0
    if not voiced.any():
        return math.nan
    hit = out_chroma[:, :n].argmax(0) == labels[:, :n].argmax(0)
    return float(hit[voiced].float().mean())


def click_ratio(wav: torch.Tensor, borders: list[int], sr: int) -> float:
    """Energy of diff(wav) in 10 ms around each border / median energy of 10 ms windows elsewhere."""
    d = wav.flatten().diff().square()
    w = round(0.01 * sr)
    energies = d[: d.numel() // w * w].view(-1, w).sum(1)
    near = {b // w + k for b in borders for k in (-1, 0)}
    rest = [float(e) for i, e in enumerate(energies) if i not in near]
    median = float(np.median(rest)) if rest else math.nan
    around = max(float(d[max(0, b - w // 2):b + w // 2].sum()) for b in borders)
    return around / max(median, 1e-12)


def loop_score(wav: torch.Tensor, pipe: TextToAudioPipeline, min_lag_s: float = 1.0) -> float:
    """Max over lags > min_lag_s of the mean cosine of log-mel frames i and i + lag."""
    mel = MelSpectrogram(pipe.config.mel)(wav.reshape(1, -1))[0]  # (M, N)
    f = mel - mel.mean(0, keepdim=True)
    f = f / f.norm(dim=0, keepdim=True).clamp_min(1e-8)
    n, lo = f.shape[-1], round(min_lag_s * pipe.config.mel.frame_rate)
    best = -1.0
    for lag in range(lo, n - lo):
        best = max(best, float((f[:, :-lag] * f[:, lag:]).sum(0).mean()))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--clip-s", type=float, default=8.0)
    ap.add_argument("--long-s", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    pipe = TextToAudioPipeline.from_pretrained(args.model, device=args.device)
    mc, sr = pipe.config.mel, pipe.sample_rate
    clips = load_clips(args.manifest, args.clips, args.clip_s, sr, mc.hop_length, args.seed)
    gen = dict(num_steps=args.steps, seed=args.seed)
    chroma = Chroma(mc)
    mel_of = MelSpectrogram(mc)
    res: dict = {"variation": {}, "inpaint": [], "melody": {}, "clips": [c["name"] for c in clips]}
    start = time.perf_counter()

    # (a) variation
    for s in STRENGTHS:
        rows = []
        for c in clips:
            out = pipe.vary(c["wav"], s, prompt=c["caption"], sample_rate=sr, **gen).waveforms[0]
            n = min(out.shape[-1], c["wav"].shape[-1])
            with torch.inference_mode():
                cos = chroma_cosine(chroma(c["wav"][:, :n])[0], chroma(out[:, :n])[0])
                l1 = float((mel_of(c["wav"][:, :n]) - mel_of(out[:, :n])).abs().mean())
            rows.append({"clip": c["name"], "chroma_cos": cos, "mel_l1": l1})
        res["variation"][str(s)] = rows

    # (b) inpainting: the middle 30% of each clip
    for c in clips:
        dur = c["wav"].shape[-1] / sr
        a_s, b_s = round(0.35 * dur, 2), round(0.65 * dur, 2)
        ref = pipe.vary(c["wav"], 0.0, sample_rate=sr).waveforms[0]
        out = pipe.inpaint(c["wav"], a_s, b_s, prompt=c["caption"], sample_rate=sr, **gen).waveforms[0]
        a, b = round(a_s * sr), round(b_s * sr)
        outside = torch.cat([(out - ref)[..., :a].flatten(), (out - ref)[..., b:].flatten()])
        res["inpaint"].append({"clip": c["name"], "max_abs_outside": float(outside.abs().max()),
                               "click_ratio": click_ratio(out, [a, b], sr),
                               "click_ratio_vocoded_input": click_ratio(ref, [a, b], sr)})

    # (c) long audio
    prompt = clips[0]["caption"] if clips else "calm piano music"
    t0 = time.perf_counter()
    long = pipe.generate_long(prompt, args.long_s, **gen)
    res["long"] = {"prompt": prompt, "duration_s": args.long_s, "samples": long.waveforms.shape[-1],
                   "exact_length": long.waveforms.shape[-1] == round(args.long_s * sr),
                   "loop_score": loop_score(long.waveforms[0], pipe),
                   "loop_score_reference_clip": loop_score(clips[0]["wav"], pipe) if clips else math.nan,
                   "seconds": time.perf_counter() - t0}

    # (d) melody
    has_melody = pipe.unet.config.cond_channels == 12
    for c in clips:
        if c["labels"] is None:
            continue
        outs = {"reference_vocoded": pipe.vary(c["wav"], 0.0, sample_rate=sr).waveforms[0],
                "text_only": pipe(c["caption"], duration_s=c["wav"].shape[-1] / sr, **gen).waveforms[0]}
        if has_melody:
            outs["melody"] = pipe.melody(c["wav"], prompt=c["caption"], sample_rate=sr, **gen).waveforms[0]
        for kind, wav in outs.items():
            ch = melody_chroma(wav, mc)[0]
            res["melody"].setdefault(kind, []).append({"clip": c["name"], "chroma_cos": chroma_cosine(ch, c["labels"]),
                                                       "frame_acc": frame_accuracy(ch, c["labels"])})
    res["melody_input"] = has_melody
    res["seconds"] = time.perf_counter() - start

    def m(rows, key):
        mean, std = mean_std([r[key] for r in rows])
        return round(mean, 4) if not math.isnan(mean) else "n/a"

    md = [f"# Variations benchmark ({len(clips)} valid music clips of <= {args.clip_s:g} s, "
          f"model {args.model or 'bundled'})", "", machine_line(machine_info(args.device)), "",
          "## (a) Variation: input vs output", "",
          markdown_table(["strength", "chroma cosine", "mel L1"],
                         [[s, m(r, "chroma_cos"), m(r, "mel_l1")] for s, r in res["variation"].items()]),
          "", "## (b) Inpainting (middle 30%)", "",
          markdown_table(["max abs diff outside", "click ratio", "click ratio (vocoded input)"],
                         [[m(res["inpaint"], "max_abs_outside"), m(res["inpaint"], "click_ratio"),
                           m(res["inpaint"], "click_ratio_vocoded_input")]]),
          "", f"## (c) Long audio ({args.long_s:g} s)", "",
          markdown_table(["exact length", "loop score (max lag>1 s)", "same on a real clip", "seconds"],
                         [[str(res["long"]["exact_length"]), round(res["long"]["loop_score"], 4),
                           round(res["long"]["loop_score_reference_clip"], 4), round(res["long"]["seconds"], 1)]]),
          "", "## (d) Melody vs the reference's melody labels", "",
          markdown_table(["output", "chroma cosine", "frame accuracy"],
                         [[k, m(r, "chroma_cos"), m(r, "frame_acc")] for k, r in res["melody"].items()]),
          "" if has_melody else "\nThis model has no melody input: only text-only and vocoded rows."]
    payload = {"model": args.model or "bundled", "args": {k: str(v) for k, v in vars(args).items()},
               "machine": machine_info(args.device), **res}
    paths = write_results("variations", payload, "\n".join(md), args.out)
    print("\n".join(md))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
