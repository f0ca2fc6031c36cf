"""Issue 8's "must show" for the audio-to-audio modes, on held-out music clips.

(a) variation: chroma cosine and log-mel L1 between input and output at several strengths;
(b) inpainting: max |output - vocoded input| outside the region (must be 0) and the border click
    ratio: energy of the sample-to-sample difference in 10 ms around each border over the median
    of the same energy in 10 ms windows elsewhere (~1 = no click; the vocoded input as baseline);
(c) long audio: exact length of a 60 s generation and a verbatim-loop check: the largest mean
    cosine similarity of log-mel frames i and i + lag over lags above 1 s (1 = a verbatim loop);
(d) melody: chroma cosine and frame accuracy of the output's argmax chroma against the
    reference's melody labels, for melody-conditioned vs text-only vs the vocoded reference.

Clips: the music corpus's ``valid`` split (rendered music21 scores with melody labels). The
melody test can instead use held-out monophonic tunes from music21's O'Neill collection
(``--melody-source oneills``; reserved for evaluation, never trained on), rendered here with the
corpus renderer and labelled from the score; ``--pesto`` checks those labels against PESTO's pitch.

    python benchmarks/variations.py --model MODEL_DIR --clips 8 --device cuda
    python benchmarks/variations.py --threads 1 --clips 10 --inpaint-clips 10 --clip-s 5 \
        --melody-source oneills --melody-clips 8 --pesto    # a shared 2-core CPU
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
from audiodiff.config import DTYPE_NAMES
from audiodiff.pipelines import TextToAudioPipeline
from audiodiff.pipelines.variations import melody_chroma

MANIFEST = Path(__file__).resolve().parent.parent / "data" / "corpora" / "music" / "manifest.jsonl"
STRENGTHS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SECTIONS = ("variation", "inpaint", "long", "melody")


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


def oneills_clips(n: int, clip_s: float, sr: int, mel, seed: int) -> list[dict]:
    """``n`` tunes of the reserved O'Neill collection (evaluation only), rendered with a seeded solo
    instrument and tempo, the first ``clip_s`` seconds, with labels (12, frames) from the score."""
    from audiodiff.data.music import SOLO_INSTRUMENTS, list_pieces, piece_notes, render_piece
    from audiodiff.data.music_render import chroma_of, melody_pitch

    rng = random.Random(seed)
    pieces = list_pieces("oneills1850", allow_reserved=True)
    clips, tried = [], 0
    while len(clips) < n and tried < 4 * n:
        tried += 1
        piece = pieces[rng.randrange(len(pieces))]
        instrument = sorted(SOLO_INSTRUMENTS)[rng.randrange(len(SOLO_INSTRUMENTS))]
        tempo = float(rng.randrange(80, 144, 8))
        try:
            parts = piece_notes(piece, allow_reserved=True)
            r = render_piece(piece, instrument, tempo, max_duration_s=clip_s + 1.0, sample_rate=sr,
                             allow_reserved=True)
        except Exception as exc:  # an unparsable ABC tune: take another
            print(f"skip {piece.piece_id}: {exc}", file=sys.stderr)
            continue
        wav, _ = load_audio(r.wav_path, sample_rate=sr, mono=True)
        num = min(wav.shape[-1], round(clip_s * sr)) // mel.hop_length * mel.hop_length
        pitch = melody_pitch(parts, tempo, num // mel.hop_length, mel)
        clips.append({"name": f"{piece.piece_id}:{instrument}:{int(tempo)}", "wav": peak_normalize(wav[:, :num], -1.0),
                      "caption": r.caption, "pitch": pitch,
                      "labels": torch.from_numpy(chroma_of(pitch).astype(np.float32))})
    return clips


def pesto_agreement(wav: torch.Tensor, pitch: np.ndarray, sr: int, hop: int) -> dict:
    """PESTO's pitch of ``wav`` vs the score's ``pitch`` (MIDI, -1 = rest) on the frames the score
    voices: fraction within 50 cents (octave errors count as misses) and within the pitch class."""
    import pesto

    step_ms = 1000.0 * hop / sr
    _, f0, conf, _ = pesto.predict(wav.flatten(), sr, step_size=step_ms, convert_to_freq=True)
    f0 = f0.flatten().numpy()
    # PESTO's frame i is centred at i * hop; the score's frame i at (i + 0.5) * hop.
    n = min(len(pitch), len(f0) - 1)
    est = 69 + 12 * np.log2(np.maximum(0.5 * (f0[:n] + f0[1:n + 1]), 1e-3) / 440.0)
    voiced = pitch[:n] >= 0
    err = est[voiced] - pitch[:n][voiced]
    return {"within_50c": float(np.mean(np.abs(err) < 0.5)),
            "pitch_class": float(np.mean(np.abs((err + 6) % 12 - 6) < 0.5))}


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


def loop_scores(wav: torch.Tensor, pipe: TextToAudioPipeline, min_lag_s: float = 1.0) -> np.ndarray:
    """Mean cosine of log-mel frames i and i + lag for each lag from ``min_lag_s`` up to the clip's
    length minus ``min_lag_s`` (index 0 is ``min_lag_s``)."""
    mel = MelSpectrogram(pipe.config.mel)(wav.reshape(1, -1))[0]  # (M, N)
    f = mel - mel.mean(0, keepdim=True)
    f = f / f.norm(dim=0, keepdim=True).clamp_min(1e-8)
    n, lo = f.shape[-1], round(min_lag_s * pipe.config.mel.frame_rate)
    return np.array([float((f[:, :-lag] * f[:, lag:]).sum(0).mean()) for lag in range(lo, n - lo)])


def loop_score(wav: torch.Tensor, pipe: TextToAudioPipeline, min_lag_s: float = 1.0) -> float:
    """Max over lags > min_lag_s of the mean cosine of log-mel frames i and i + lag."""
    scores = loop_scores(wav, pipe, min_lag_s)
    return float(scores.max()) if scores.size else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--clips", type=int, default=8, help="valid clips for the variation test")
    ap.add_argument("--inpaint-clips", type=int, default=None, help="first N of those for inpainting (default all)")
    ap.add_argument("--melody-source", choices=("valid", "oneills"), default="valid",
                    help="melody references: the valid clips, or held-out O'Neill tunes rendered here")
    ap.add_argument("--melody-clips", type=int, default=None, help="melody references (default --clips)")
    ap.add_argument("--pesto", action="store_true", help="check the O'Neill labels with PESTO (pesto-pitch)")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (0 = torch's default; 1 on a shared machine: 2 threads fighting "
                         "another job for 2 cores ran 5x slower)")
    ap.add_argument("--clip-s", type=float, default=8.0)
    ap.add_argument("--long-s", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autoguidance", type=float, default=None, metavar="W",
                    help="autoguidance weight (default: the model's; 0 = off)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=DTYPE_NAMES,
                    help="weights dtype (default fp32; 'auto' = what the CLI uses on this machine)")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                    help="which tests to run (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = TextToAudioPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    mc, sr = pipe.config.mel, pipe.sample_rate
    clips = load_clips(args.manifest, args.clips, args.clip_s, sr, mc.hop_length, args.seed)
    gen = dict(num_steps=args.steps, seed=args.seed, autoguidance=args.autoguidance)
    chroma = Chroma(mc)
    mel_of = MelSpectrogram(mc)
    res: dict = {"variation": {}, "inpaint": [], "melody": {}, "clips": [c["name"] for c in clips]}
    start = time.perf_counter()
    vocoded: dict[str, torch.Tensor] = {}  # strength 0 = the vocoded input, reused by every test

    def vocode(c: dict) -> torch.Tensor:
        if c["name"] not in vocoded:
            vocoded[c["name"]] = pipe.vary(c["wav"], 0.0, sample_rate=sr).waveforms[0]
        return vocoded[c["name"]]

    def lap(what: str, t0: float) -> float:
        res.setdefault("section_seconds", {})[what] = round(time.perf_counter() - t0, 1)
        print(f"{what}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return time.perf_counter()
    t_sec = time.perf_counter()

    # (a) variation
    for s in STRENGTHS if "variation" in args.sections else ():
        rows = []
        for c in clips:
            out = (vocode(c) if s == 0 else
                   pipe.vary(c["wav"], s, prompt=c["caption"], sample_rate=sr, **gen).waveforms[0])
            n = min(out.shape[-1], c["wav"].shape[-1])
            with torch.inference_mode():
                cos = chroma_cosine(chroma(c["wav"][:, :n])[0], chroma(out[:, :n])[0])
                l1 = float((mel_of(c["wav"][:, :n]) - mel_of(out[:, :n])).abs().mean())
            rows.append({"clip": c["name"], "chroma_cos": cos, "mel_l1": l1})
        res["variation"][str(s)] = rows
    if res["variation"]:
        means = [float(np.nanmean([r["chroma_cos"] for r in res["variation"][str(s)]])) for s in STRENGTHS]
        l1s = [float(np.nanmean([r["mel_l1"] for r in res["variation"][str(s)]])) for s in STRENGTHS]
        res["variation_monotonic"] = {"chroma_cos_falls": all(a >= b for a, b in zip(means, means[1:])),
                                      "mel_l1_rises": all(a <= b for a, b in zip(l1s, l1s[1:]))}
        t_sec = lap("variation", t_sec)

    # (b) inpainting: the middle 30% of each clip
    for c in clips[:args.inpaint_clips] if "inpaint" in args.sections else ():
        dur = c["wav"].shape[-1] / sr
        a_s, b_s = round(0.35 * dur, 2), round(0.65 * dur, 2)
        ref = vocode(c)
        out = pipe.inpaint(c["wav"], a_s, b_s, prompt=c["caption"], sample_rate=sr, **gen).waveforms[0]
        a, b = round(a_s * sr), round(b_s * sr)
        outside = torch.cat([(out - ref)[..., :a].flatten(), (out - ref)[..., b:].flatten()])
        res["inpaint"].append({"clip": c["name"], "max_abs_outside": float(outside.abs().max()),
                               "click_ratio": click_ratio(out, [a, b], sr),
                               "click_ratio_vocoded_input": click_ratio(ref, [a, b], sr)})

    if res["inpaint"]:
        t_sec = lap("inpaint", t_sec)

    # (c) long audio
    if "long" in args.sections:
        t_sec = long_audio(pipe, res, clips, args.long_s, gen)

    # (d) melody
    if "melody" in args.sections:
        melody_tests(pipe, res, clips, args, gen, vocode)
        lap("melody", t_sec)
    res["seconds"] = time.perf_counter() - start
    md = report(res, args, pipe)
    payload = {"model": args.model or "bundled", "args": {k: str(v) for k, v in vars(args).items()},
               "machine": machine_info(args.device), **res}
    paths = write_results("variations", payload, "\n".join(md), args.out)
    print("\n".join(md))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def long_audio(pipe, res: dict, clips: list[dict], long_s: float, gen: dict) -> float:
    """(c) ``long_s`` seconds in one call: exact length and the loop score; returns the end time."""
    t0 = time.perf_counter()
    prompt = clips[0]["caption"] if clips else "calm piano music"
    long = pipe.generate_long(prompt, long_s, **gen)
    gen_s = time.perf_counter() - t0
    scores = loop_scores(long.waveforms[0], pipe)
    ref_scores = loop_scores(clips[0]["wav"], pipe) if clips else np.array([math.nan])
    frame_rate = pipe.config.mel.frame_rate
    sr = pipe.sample_rate
    res["long"] = {"prompt": prompt, "duration_s": long_s, "samples": long.waveforms.shape[-1],
                   "exact_length": long.waveforms.shape[-1] == round(long_s * sr),
                   "loop_score": float(scores.max()), "loop_lag_s": round((scores.argmax() + round(frame_rate)) / frame_rate, 2),
                   "loop_score_median": float(np.median(scores)),
                   "loop_score_reference_clip": float(ref_scores.max()),
                   "loop_score_reference_clip_median": float(np.median(ref_scores)),
                   "windows": long.settings.get("windows"), "seconds": gen_s}
    res.setdefault("section_seconds", {})["long"] = round(time.perf_counter() - t0, 1)
    return time.perf_counter()


def melody_tests(pipe, res: dict, clips: list[dict], args, gen: dict, vocode) -> None:
    """(d) melody-conditioned vs text-only vs the vocoded reference, against the melody labels."""
    mc, sr = pipe.config.mel, pipe.sample_rate
    has_melody = pipe.unet.config.cond_channels == 12
    n_melody = args.clips if args.melody_clips is None else args.melody_clips
    if args.melody_source == "oneills":
        mclips = oneills_clips(n_melody, args.clip_s, sr, mc, args.seed)
    else:
        mclips = clips[:n_melody]
    res["melody_clips"] = [{"name": c["name"], "caption": c["caption"]} for c in mclips]
    if args.pesto and args.melody_source == "oneills":
        res["pesto_label_check"] = [{"clip": c["name"], **pesto_agreement(c["wav"], c["pitch"], sr, mc.hop_length)}
                                    for c in mclips]
    for c in mclips:
        if c["labels"] is None:
            continue
        outs = {"reference_input": c["wav"], "reference_vocoded": vocode(c),
                "text_only": pipe(c["caption"], duration_s=c["wav"].shape[-1] / sr, **gen).waveforms[0]}
        if has_melody:
            outs["melody"] = pipe.melody(c["wav"], prompt=c["caption"], sample_rate=sr, **gen).waveforms[0]
            outs["melody, text-only guidance"] = pipe.melody(c["wav"], prompt=c["caption"], sample_rate=sr,
                                                            melody_guidance=False, **gen).waveforms[0]
        for kind, wav in outs.items():
            ch = melody_chroma(wav, mc)[0]
            row = {"clip": c["name"], "chroma_cos": chroma_cosine(ch, c["labels"]),
                   "frame_acc": frame_accuracy(ch, c["labels"])}
            if args.pesto and c.get("pitch") is not None:  # an independent pitch tracker on the output
                row.update({f"pesto_{k}": v for k, v in pesto_agreement(wav, c["pitch"], sr, mc.hop_length).items()})
            res["melody"].setdefault(kind, []).append(row)
    res["melody_input"] = has_melody


def report(res: dict, args, pipe) -> list[str]:
    """The markdown report of the sections that ran."""
    def m(rows, key):
        mean, std = mean_std([r.get(key, math.nan) for r in rows])
        return round(mean, 4) if not math.isnan(mean) else "n/a"

    def sd(rows, key):
        mean, std = mean_std([r.get(key, math.nan) for r in rows])
        return round(std, 4) if not math.isnan(std) else "n/a"

    n_var = len(res["clips"])
    md = [f"# Variations benchmark ({n_var} valid music clips of <= {args.clip_s:g} s, "
          f"model {args.model or 'bundled'}, autoguidance {pipe.autoguidance(args.autoguidance):g}, in the melody mode "
          f"{pipe.autoguidance(args.autoguidance, mode='melody'):g})", "", machine_line(machine_info(args.device)) +
          f"; weights {args.dtype}; {args.steps or pipe.config.default_steps} steps; {res['seconds']:.0f} s in all "
          f"({', '.join(f'{k} {v:g} s' for k, v in res.get('section_seconds', {}).items())})"]
    if res["variation"]:
        mono = res["variation_monotonic"]
        md += ["", "## (a) Variation: input vs output", "",
               markdown_table(["strength", "chroma cosine", "(std)", "mel L1", "(std)"],
                              [[s, m(r, "chroma_cos"), sd(r, "chroma_cos"), m(r, "mel_l1"), sd(r, "mel_l1")]
                               for s, r in res["variation"].items()]),
               "", f"Chroma cosine falls monotonically: {mono['chroma_cos_falls']}; mel L1 rises monotonically: "
               f"{mono['mel_l1_rises']}."]
    if res["inpaint"]:
        md += ["", f"## (b) Inpainting (middle 30%, {len(res['inpaint'])} clips)", "",
               markdown_table(["max abs diff outside", "click ratio", "click ratio (vocoded input)"],
                              [[m(res["inpaint"], "max_abs_outside"), m(res["inpaint"], "click_ratio"),
                                m(res["inpaint"], "click_ratio_vocoded_input")]])]
    if "long" in res:
        lg = res["long"]
        md += ["", f"## (c) Long audio ({lg['duration_s']:g} s)", "",
               markdown_table(["exact length", "windows", "loop score (max lag>1 s)", "at lag (s)", "median over lags",
                               "real clip: max", "real clip: median", "seconds"],
                              [[str(lg["exact_length"]), lg["windows"], round(lg["loop_score"], 4), lg["loop_lag_s"],
                                round(lg["loop_score_median"], 4), round(lg["loop_score_reference_clip"], 4),
                                round(lg["loop_score_reference_clip_median"], 4), round(lg["seconds"], 1)]])]
    if "melody_clips" in res:
        source = "held-out O" + chr(39) + "Neill tunes" if args.melody_source == "oneills" else "valid clips"
        md += ["", f"## (d) Melody vs the reference's melody labels ({len(res['melody_clips'])} {source})", "",
               markdown_table(["output", "chroma cosine", "frame accuracy", "PESTO: pitch class", "PESTO: within 50 c"],
                              [[k, m(r, "chroma_cos"), m(r, "frame_acc"), m(r, "pesto_pitch_class"),
                                m(r, "pesto_within_50c")] for k, r in res["melody"].items()]),
               "" if res["melody_input"] else "\nThis model has no melody input: only text-only and vocoded rows."]
    if "pesto_label_check" in res:
        pc = res["pesto_label_check"]
        md += ["", "Score labels vs PESTO's pitch of the rendered reference (voiced frames): within 50 cents "
               f"{m(pc, 'within_50c')}, same pitch class {m(pc, 'pitch_class')}."]
    return md


if __name__ == "__main__":
    sys.exit(main())
