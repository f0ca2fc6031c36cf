"""Ten prompts of a new user's kind, through one or more models, with what can be read off the audio.

Issue 6 asks to listen to 10 prompts and say what works. Without a listening panel this makes the
reading repeatable: each clip's sounding fraction (share of frames within 40 dB of its loudest,
:func:`audiodiff.eval.metrics.sounding_fraction`), the time its sound ends, onsets per second
(librosa's onset detector: distinct events), spectral flatness (near 1 = noise, near 0 = tones),
and optionally the WAVs and a PNG of the mel spectrograms, one panel per prompt, to look at.

    python benchmarks/prompts.py --model v03=audiodiff/assets/default --model v04=runs/event_cpu/model \
        --audio-dir /tmp/prompts      # WAVs + spectrogram PNGs there, never in git

Writes ``prompts.json`` / ``prompts.md`` under ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiodiff.cli import sound_seconds

try:  # run as `python -m benchmarks.prompts` or as `python benchmarks/prompts.py`
    from benchmarks._common import (
        DEFAULT_OUT, machine_info, machine_line, markdown_table, named_models, write_results,
    )
except ImportError:
    from _common import (  # type: ignore
        DEFAULT_OUT, machine_info, machine_line, markdown_table, named_models, write_results,
    )

PROMPTS = (
    "heavy rain falling on a roof",
    "a dog barking",
    "a large explosion",
    "footsteps on a wooden floor",
    "a church bell ringing",
    "a cow mooing",
    "a car engine starting",
    "a short electronic beep",
    "a German folk song played on a flute",
    "a Bach chorale played by a string quartet",
)


def clip_stats(wav: np.ndarray, sr: int) -> dict[str, float]:
    import librosa

    from audiodiff.eval.evaluate import clip_sounding_frames

    duration_s = len(wav) / sr
    live, hop = clip_sounding_frames(wav, sr, duration_s)
    # The end of the sound: where the last frame within 40 dB of the loudest ends.
    end_s = min(duration_s, (np.flatnonzero(live)[-1] + 1) * hop / sr) if live.any() else 0.0
    onsets = librosa.onset.onset_detect(y=wav.astype(np.float32), sr=sr, units="time")
    flatness = librosa.feature.spectral_flatness(y=wav.astype(np.float32))[0]
    return {"sounding": float(live.mean()), "end_s": float(end_s), "onsets_per_s": len(onsets) / duration_s,
            "flatness": float(np.median(flatness)), "peak_dbfs": float(20 * np.log10(max(np.abs(wav).max(), 1e-9)))}


def save_spectrograms(path: Path, title: str, mels: list[np.ndarray], prompts: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(mels) // 5)
    fig, axes = plt.subplots(rows, 5, figsize=(20, 3 * rows), constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(mels):]:
        ax.axis("off")
    for ax, mel, prompt in zip(axes.flat, mels, prompts):
        ax.imshow(mel, origin="lower", aspect="auto", vmin=-1, vmax=1, cmap="magma")
        ax.set_title(prompt[:34], fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a model to run (repeatable); default: the bundled model")
    p.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    p.add_argument("--seed", type=int, default=100, help="prompt i uses seed + i (default 100)")
    p.add_argument("--duration-s", type=float, default=5.0)
    p.add_argument("--sound-s", type=sound_seconds, default="auto",
                   help="tell models with a timing input this sound length, 'auto' (default: the pipeline's "
                        "own default, the length predicted from the prompt when the model has a head) or "
                        "'none' (not said)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--audio-dir", default="", help="write WAVs and a spectrogram PNG per model here")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--name", default="prompts", help="results file name (default prompts)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = named_models(p, args.model)

    from audiodiff.audio import save_audio
    from audiodiff.pipelines import TextToAudioPipeline

    audio_dir = Path(args.audio_dir) if args.audio_dir else None
    results: dict[str, list[dict]] = {}
    for name, folder in models:
        pipe = TextToAudioPipeline.from_pretrained(folder)
        sound_s = args.sound_s if pipe.unet.config.timing_channels else None
        rows, mels = [], []
        for i, prompt in enumerate(args.prompts):
            t0 = time.perf_counter()
            mel, req = pipe.generate_mel(prompt, duration_s=args.duration_s, seed=args.seed + i, sound_s=sound_s)
            wav = pipe.decode(mel, round(args.duration_s * pipe.sample_rate))[0, 0]
            seconds = time.perf_counter() - t0
            rows.append({"prompt": prompt, "seed": args.seed + i, "sound_s": req.sound_s, "seconds": round(seconds, 2),
                         **clip_stats(wav.numpy(), pipe.sample_rate)})
            mels.append(mel[0, 0].float().numpy())
            if audio_dir is not None:
                save_audio(audio_dir / name / f"{i:02d}.wav", wav[None], pipe.sample_rate)
            print(f"[{name}] {prompt}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()
                                                     if isinstance(v, float)), file=sys.stderr)
        if audio_dir is not None:
            save_spectrograms(audio_dir / f"{name}.png", f"{name}: {folder or 'bundled'}", mels, args.prompts)
        results[name] = rows

    info = machine_info("cpu")
    headers = ["prompt"] + [f"{n}: sounding / end s (told) / onsets per s / flatness" for n, _ in models]
    table = [[prompt] + [f"{r[i]['sounding']:.2f} / {r[i]['end_s']:.1f}"
                         + ("" if r[i]["sound_s"] is None else f" ({r[i]['sound_s']:g})")
                         + f" / {r[i]['onsets_per_s']:.1f} / {r[i]['flatness']:.3f}" for r in results.values()]
             for i, prompt in enumerate(args.prompts)]
    if args.sound_s in (None, "auto"):
        told = "" if args.sound_s is None else ", sound lengths from the prompt where a model has a sound length head"
    else:
        told = f", sound length {args.sound_s:g} s told to models with a timing input"
    md = (f"# Ten prompts ({args.duration_s:g} s, default settings{told}, seeds {args.seed}-{args.seed + len(args.prompts) - 1})"
          f"\n\n{machine_line(info)}\n\nModels: " + ", ".join(f"{n} = `{f or 'bundled'}`" for n, f in models)
          + "\n\n" + markdown_table(headers, table) + "\n\nSounding: share of frames within 40 dB of the "
          "clip's loudest; end: when the last such frame ends; onsets: librosa's onset detector; flatness: "
          "median spectral flatness (1 = white noise).\n")
    paths = write_results(args.name, {"machine": info, "models": dict(models), "duration_s": args.duration_s,
                                      "results": results}, md, args.out)
    print(md)
    print("wrote", *paths, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
