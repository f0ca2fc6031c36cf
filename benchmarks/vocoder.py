"""Vocoder benchmark: how well and how fast each vocoder turns our log-mels back into audio.

For every clip: log-mel with our front-end -> vocoder -> waveform, then
- mel L1: mean |log-mel(original) - log-mel(resynthesised)| over the same frames;
- MR-STFT: spectral convergence + log-magnitude L1, averaged over FFT sizes 512/1024/2048
  (Yamamoto et al. 2020, "Parallel WaveGAN", eq. 4-6; our own implementation);
- embedding distance: 1 - cosine similarity of the aiSFX sound embeddings (the evaluator's,
  audiodiff.eval.embedding) of the original and the resynthesised clip: a perceptual-ish check
  that no vocoder is trained on (a fine-tune on the mel loss could lower mel L1 and MR-STFT while
  adding artefacts that these spectral distances barely weigh);
- speed: audio seconds / wall seconds of the vocoder call alone, after a warm-up.

Clips (22.05 kHz mono, <= --max-duration-s, peak-normalised to -1 dBFS as HiFi-GAN's training
data was) come from four categories: espeak-ng speech, sound effects from Debian packages,
held-out sound effects from packages RESERVED for evaluation (labelled ``heldout``; fine to
evaluate on, never to train on), and music21 scores rendered with fluidsynth. Sources and
prepared clips are cached under ``$AUDIODIFF_CACHE`` (default ``~/.cache/audiodiff``).

    python benchmarks/vocoder.py --clips-per-category 20 --device cpu --out benchmarks/results
    python benchmarks/vocoder.py --vocoder finetuned=runs/vocoder_ft/model   # + a vocoder folder

``--mel-bits 8 6`` also feeds each vocoder the mel as a uint8 export stores it with that many bits
(audiodiff.data.feature_cache.quantise_mel), as ``NAME@8bit`` ...: what coarser training data
costs at the far end of the pipeline (the GPU data bundle travels with 6-bit mels).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

try:  # run as `python -m benchmarks.vocoder` or as `python benchmarks/vocoder.py`
    from benchmarks._common import (DEFAULT_OUT, machine_info, machine_line,
                                    markdown_table, mean_std, write_results)
except ImportError:
    from _common import (DEFAULT_OUT, machine_info, machine_line,  # type: ignore
                         markdown_table, mean_std, write_results)

from audiodiff.audio import MelConfig, MelSpectrogram, load_audio, peak_normalize, save_audio
from audiodiff.audio.features import denormalize_mel, normalize_mel
from audiodiff.data import (cache_root, debian_package, file_licence, find_audio_files,
                            is_reserved_package, sample_music, sample_speech_specs,
                            synthesize_speech)
from audiodiff.data.feature_cache import dequantise_mel, quantise_mel
from audiodiff.hub import DEFAULT_MODEL_DIR
from audiodiff.models.vocoder import load_vocoder
from audiodiff.training.vocoder import multi_resolution_stft_loss

SAMPLE_RATE = 22050
# griffinlim: 32 iterations; bundled: the default model's vocoder (the universal one fine-tuned here)
VOCODERS = {"hifigan": "hifigan-universal", "griffinlim": "griffinlim", "bundled": str(DEFAULT_MODEL_DIR / "vocoder")}
SFX_PACKAGES = ("sonic-pi-samples", "sound-theme-freedesktop", "oxygen-sounds")
HELDOUT_PACKAGES = ("scorched3d-data", "flare-game")  # reserved for evaluation (DATA.md)
CATEGORIES = ("speech", "sfx", "sfx-heldout", "music")
# Paths with these words are music or voice lines (flare-game's npcs/ are spoken), not effects.
_NOT_SFX = ("music", "voice", "speech", "/vo/", "/npcs/")
MIN_DURATION_S = 0.5
SILENCE_RMS = 1e-3  # -60 dBFS: below this a clip is "near-silent" and skipped
MRSTFT_SIZES = (512, 1024, 2048)
LOG_MAG_FLOOR = 1e-5  # the mel's log floor; a smaller one lets inaudible noise floors dominate
# Per-clip measures (all lower is better) and their column labels; emb_dist only with an embedder.
METRICS = {"mel_l1": "mel L1", "mrstft_total": "MR-STFT", "mrstft_sc": "spectral conv.",
           "mrstft_log_mag": "log-mag L1", "emb_dist": "embedding dist."}
PAIRED_KEYS = ("mel_l1", "mrstft_total", "mrstft_sc", "emb_dist")  # counted clip by clip


# -- clips ----------------------------------------------------------------------------------

def prepare_clip(path: Path, max_duration_s: float, hop_length: int) -> torch.Tensor | None:
    """Load as 22.05 kHz mono, drop leading silence, cut to ``max_duration_s`` and to a whole
    number of mel hops, peak-normalise; ``None`` if the result is too short or near-silent."""
    wav, _ = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
    peak = float(wav.abs().max())
    if peak < 1e-4:
        return None
    loud = (wav.abs() > 0.01 * peak).nonzero()
    start = max(0, int(loud[0, -1]) - int(0.05 * SAMPLE_RATE))
    wav = wav[:, start:start + int(max_duration_s * SAMPLE_RATE)]
    wav = wav[:, : wav.shape[-1] // hop_length * hop_length]
    if wav.shape[-1] < MIN_DURATION_S * SAMPLE_RATE or float(wav.square().mean().sqrt()) < SILENCE_RMS:
        return None
    return peak_normalize(wav, -1.0)


def _package_sources(packages: tuple[str, ...], seed: int) -> list[list[dict[str, object]]]:
    """Per package, its sound-effect files in a seeded random order, with licence and label."""
    per_package = []
    for name in packages:
        pkg = debian_package(name)
        files = [f for f in find_audio_files(pkg.root)
                 if not any(w in str(f.relative_to(pkg.root)).lower() for w in _NOT_SFX)]
        random.Random(f"{seed}-{name}").shuffle(files)
        per_package.append([{"path": str(f), "source": f"debian:{name}:{f.relative_to(pkg.root)}",
                             "caption": f.stem.replace("_", " ").replace("-", " "),
                             "licence": file_licence(pkg.root, name, f),
                             "heldout": is_reserved_package(name)} for f in files])
    return per_package


def _round_robin(groups: list[list[dict[str, object]]]):
    for i in range(max(len(g) for g in groups)):
        for g in groups:
            if i < len(g):
                yield g[i]


def _candidates(category: str, n: int, seed: int, max_duration_s: float):
    """Yield candidate source files (with metadata) for a category, best first."""
    if category == "speech":
        folder = cache_root() / "benchmarks" / "vocoder" / "speech"
        # Over-generate a little: a few clips may be skipped.
        for i, spec in enumerate(sample_speech_specs(n + 10, seed)):
            path = folder / f"{seed}-{i:03d}.wav"
            if not path.is_file():
                synthesize_speech(spec["text"], path, spec["voice"], spec["speed"], spec["pitch"])
            yield {"path": str(path), "source": f"espeak-ng:{spec['voice']}",
                   "caption": f"{spec['caption']}: \"{spec['text']}\"", "licence": "generated",
                   "heldout": False}
    elif category in ("sfx", "sfx-heldout"):
        packages = SFX_PACKAGES if category == "sfx" else HELDOUT_PACKAGES
        yield from _round_robin(_package_sources(packages, seed))
    elif category == "music":
        for r in sample_music(n + 5, seed, max_duration_s=max_duration_s + 0.5):
            yield {"path": str(r.wav_path), "source": f"music21:{r.piece.piece_id}",
                   "caption": r.caption, "licence": "BSD-3-Clause (music21 corpus)",
                   "heldout": False, "programs": list(r.programs), "tempo_bpm": r.tempo_bpm}
    else:
        raise ValueError(f"unknown category {category!r}")


def build_clips(n: int, seed: int, max_duration_s: float, hop_length: int) -> list[dict[str, object]]:
    """``n`` prepared clips per category, cached with a manifest; returns the manifest entries."""
    folder = cache_root() / "benchmarks" / "vocoder" / "clips"
    manifest_path = folder / f"manifest-n{n}-seed{seed}-{max_duration_s:g}s-hop{hop_length}.json"
    if manifest_path.is_file():
        clips = json.loads(manifest_path.read_text())
        if all(Path(c["clip_path"]).is_file() for c in clips):
            return clips
    clips = []
    for category in CATEGORIES:
        got = 0
        for cand in _candidates(category, n, seed, max_duration_s):
            wav = prepare_clip(Path(cand["path"]), max_duration_s, hop_length)
            if wav is None:
                continue
            clip_id = f"{category}-{got:03d}"
            clip_path = folder / f"seed{seed}" / f"{clip_id}.wav"
            save_audio(clip_path, wav, SAMPLE_RATE)
            clips.append({"id": clip_id, "category": category, "clip_path": str(clip_path),
                          "duration_s": wav.shape[-1] / SAMPLE_RATE, **cand})
            got += 1
            if got == n:
                break
        if got < n:
            print(f"warning: only {got} usable clips for {category!r} (asked for {n})",
                  file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(clips, indent=2))
    return clips


# -- metrics --------------------------------------------------------------------------------

def mel_l1(mel: MelSpectrogram, ref: torch.Tensor, est: torch.Tensor) -> float:
    """Mean absolute difference of natural-log mels of two (1, T) waveforms, same frames."""
    a, b = mel(ref), mel(est)
    n = min(a.shape[-1], b.shape[-1])
    return float((a[..., :n] - b[..., :n]).abs().mean())


def mr_stft(ref: torch.Tensor, est: torch.Tensor,
            sizes: tuple[int, ...] = MRSTFT_SIZES) -> dict[str, float]:
    """Multi-resolution STFT distance of two (1, T) waveforms (the vocoder task's loss, at FFT
    sizes ``sizes`` with hop n_fft/4 and a Hann window of n_fft, magnitudes floored at the mel's
    log floor): spectral convergence and log-magnitude L1, each averaged over sizes; ``total`` is
    their sum."""
    n = min(ref.shape[-1], est.shape[-1])
    sc, log_mag = multi_resolution_stft_loss(est[None, ..., :n], ref[None, ..., :n],
                                             tuple((s, s // 4, s) for s in sizes), floor=LOG_MAG_FLOOR)
    return {"sc": float(sc), "log_mag": float(log_mag), "total": float(sc) + float(log_mag)}


# -- run --------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EmbeddingDistance:
    """``(clip_id, ref, est) -> 1 - cosine`` of the sound embeddings of two (1, T) waveforms;
    each reference clip is embedded once, however many vocoders are compared on it."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.refs: dict[str, torch.Tensor] = {}

    def _embed(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.embedder.embed([wav.cpu()], SAMPLE_RATE)[0])

    def __call__(self, clip_id: str, ref: torch.Tensor, est: torch.Tensor) -> float:
        if clip_id not in self.refs:
            self.refs[clip_id] = self._embed(ref)
        return float(1.0 - torch.nn.functional.cosine_similarity(self.refs[clip_id], self._embed(est), dim=0))


def requantised(log_mel: torch.Tensor, config: MelConfig, bits: int) -> torch.Tensor:
    """``log_mel`` as a uint8 export with ``bits`` bits stores it, read back."""
    q = quantise_mel(normalize_mel(log_mel, config), bits)
    return denormalize_mel(dequantise_mel(q).to(log_mel.device), config)


def evaluate(vocoder: torch.nn.Module, mel: MelSpectrogram, clips: list[dict[str, object]],
             device: torch.device, save_dir: Path | None = None,
             embedding_distance: EmbeddingDistance | None = None,
             bits: int | None = None) -> list[dict[str, object]]:
    """Vocode every clip; return per-clip metrics and timings (and the embedding distance
    when ``embedding_distance`` is given). ``bits``: vocode the mel quantised as a uint8 export
    with that many bits stores it (the metrics still compare with the original audio)."""
    with torch.inference_mode():  # warm-up: first calls allocate and pick kernels
        warm = torch.randn(1, SAMPLE_RATE, device=device) * 0.1
        for _ in range(2):
            vocoder(mel(warm))
        _sync(device)
    rows = []
    for clip in clips:
        wav, _ = load_audio(clip["clip_path"], mono=True)
        wav = wav.to(device)
        with torch.inference_mode():
            log_mel = mel(wav)
            if bits is not None:
                log_mel = requantised(log_mel, mel.config, bits)
            _sync(device)
            t0 = time.perf_counter()
            out = vocoder(log_mel)
            _sync(device)
            wall = time.perf_counter() - t0
            est = out[:, 0, : wav.shape[-1]]
            ref = wav[:, : est.shape[-1]]
            row = {"id": clip["id"], "category": clip["category"], "heldout": clip["heldout"],
                   "duration_s": wav.shape[-1] / SAMPLE_RATE, "wall_s": wall,
                   "mel_l1": mel_l1(mel, ref, est), **{f"mrstft_{k}": v for k, v in
                                                      mr_stft(ref, est).items()}}
            if embedding_distance is not None:
                row["emb_dist"] = embedding_distance(clip["id"], ref, est)
        rows.append(row)
        if save_dir is not None:
            save_audio(save_dir / f"{clip['id']}.wav", est.cpu(), SAMPLE_RATE)
    return rows


def summarise(results: dict[str, list[dict[str, object]]]) -> list[dict[str, object]]:
    summary = []
    for category in CATEGORIES + ("all",):
        for name, rows in results.items():
            sel = [r for r in rows if category in ("all", r["category"])]
            if not sel:
                continue
            entry = {"category": category, "vocoder": name, "clips": len(sel),
                     "audio_s": sum(r["duration_s"] for r in sel),
                     "x_real_time": sum(r["duration_s"] for r in sel) / sum(r["wall_s"] for r in sel)}
            for key in METRICS:
                if all(key in r for r in sel):
                    entry[key], entry[key + "_std"] = mean_std([r[key] for r in sel])
            summary.append(entry)
    return summary


def paired_wins(results: dict[str, list[dict[str, object]]]) -> list[dict[str, object]]:
    """Per category and vocoder after the first: on how many clips it beats the first vocoder
    (the baseline, e.g. the universal HiFi-GAN) on each measure, clip by clip."""
    names = list(results)
    if len(names) < 2:
        return []
    base = {r["id"]: r for r in results[names[0]]}
    out = []
    for category in CATEGORIES + ("all",):
        for name in names[1:]:
            sel = [r for r in results[name] if category in ("all", r["category"])]
            if not sel:
                continue
            entry = {"category": category, "vocoder": name, "baseline": names[0], "clips": len(sel)}
            for key in PAIRED_KEYS:
                if all(key in r for r in sel):
                    entry[key] = sum(r[key] < base[r["id"]][key] for r in sel)
            out.append(entry)
    return out


def wins_markdown(wins: list[dict[str, object]]) -> str:
    if not wins:
        return ""
    keys = [k for k in PAIRED_KEYS if all(k in w for w in wins)]
    rows = [[w["category"], w["vocoder"], *(f"{w[k]}/{w['clips']}" for k in keys)] for w in wins]
    intro = f"Clips on which each vocoder scores lower (better) than `{wins[0]['baseline']}` on the same clip:"
    return "\n".join([intro, "", markdown_table(["category", "vocoder", *(METRICS[k] for k in keys)], rows), ""])


def to_markdown(summary: list[dict[str, object]], machine: dict[str, object],
                args: argparse.Namespace) -> str:
    keys = [k for k in METRICS if summary and all(k in e for e in summary)]
    headers = ["category", "vocoder", "clips", *(f"{METRICS[k]} ↓" for k in keys), "speed (x real time)"]
    rows = []
    for e in summary:
        label = e["category"] + (" (held-out)" if e["category"] == "sfx-heldout" else "")
        rows.append([label, e["vocoder"], e["clips"], *(f"{e[k]:.3f} ± {e[k + '_std']:.3f}" for k in keys),
                     f"{e['x_real_time']:.1f}"])
    return "\n".join([
        "# Vocoder benchmark", "",
        f"{machine_line(machine)}. Clips: 22.05 kHz mono, <= {args.max_duration_s:g} s, "
        f"peak -1 dBFS; seed {args.seed}. Mean ± std over clips; speed = total audio s / total "
        "vocoder wall s (batch 1, after warm-up). MR-STFT = spectral convergence + log-magnitude "
        f"L1, averaged over FFT sizes {'/'.join(map(str, MRSTFT_SIZES))}. "
        + ("Embedding dist. = 1 - cosine of the aiSFX embeddings of original and resynthesis. "
           if "emb_dist" in keys else "")
        + "`sfx-heldout` comes "
        f"from packages reserved for evaluation ({', '.join(HELDOUT_PACKAGES)})."
        + "".join(f" `{item.partition('=')[0]}`: the vocoder folder {_describe_folder(item.partition('=')[2])}."
                  for item in getattr(args, "vocoder", []))
        + (" `NAME@Bbit`: that vocoder fed the mel as a uint8 export with B bits stores it "
           "(normalised to [-1, 1], quantised, read back)." if getattr(args, "mel_bits", []) else ""), "",
        markdown_table(headers, rows), ""])


def _describe_folder(path: str) -> str:
    """``path`` plus the step of its training run when it is a training export."""
    training = Path(path).expanduser() / "training.json"
    try:
        step = json.loads(training.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return f"`{path}`"
    return f"`{path}` (fine-tuned, step {step})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips-per-category", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for vocoder.json and vocoder.md")
    parser.add_argument("--max-duration-s", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--vocoders", nargs="+", default=["hifigan", "griffinlim"], choices=list(VOCODERS),
                        help="built-in vocoders to compare, the first as the baseline of the paired wins "
                             "(default: hifigan griffinlim; bundled = the default model's)")
    parser.add_argument("--vocoder", action="append", default=[], metavar="NAME=PATH",
                        help="also evaluate the HiFi-GAN folder PATH (e.g. a fine-tuned export) under NAME; "
                             "repeatable")
    parser.add_argument("--mel-bits", type=int, nargs="+", default=[], metavar="BITS",
                        help="also vocode the mel quantised to BITS (1-8) as a uint8 export stores it, "
                             "as NAME@BITSbit next to each vocoder (e.g. --mel-bits 8 6)")
    parser.add_argument("--no-embedding", action="store_true",
                        help="skip the aiSFX embedding distance (saves loading the embedding network)")
    parser.add_argument("--save-audio", type=Path, default=None,
                        help="also write the resynthesised clips here (outside the repo tree)")
    args = parser.parse_args(argv)
    if args.clips_per_category < 1:
        parser.error("--clips-per-category must be at least 1")
    bad_bits = [b for b in args.mel_bits if not 1 <= b <= 8]
    if bad_bits:
        parser.error(f"--mel-bits takes 1..8 (bits of a uint8 export), got {bad_bits}")
    sources = {name: VOCODERS[name] for name in args.vocoders}
    for item in args.vocoder:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--vocoder expects NAME=PATH, got {item!r}")
        if name in sources:
            parser.error(f"--vocoder {item!r}: the name {name!r} is already taken")
        if not Path(path).expanduser().is_dir():
            parser.error(f"--vocoder {item!r}: {path} is not a folder")
        sources[name] = str(Path(path).expanduser().resolve())

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = machine_info(device)  # load average before our own work: other jobs' load
    t_start = time.perf_counter()
    config = MelConfig()
    clips = build_clips(args.clips_per_category, args.seed, args.max_duration_s, config.hop_length)
    t_clips = time.perf_counter() - t_start
    mel = MelSpectrogram(config).to(device)
    embedding_distance = None
    if not args.no_embedding:
        from audiodiff.eval.embedding import SoundEmbedder
        embedding_distance = EmbeddingDistance(SoundEmbedder(device))
    results = {}
    for name, source in sources.items():
        vocoder = load_vocoder(source, mel_config=config, device=device).eval()
        save_dir = args.save_audio / name if args.save_audio else None
        for bits in (None, *args.mel_bits):
            label = name if bits is None else f"{name}@{bits}bit"
            results[label] = evaluate(vocoder, mel, clips, device, save_dir and save_dir.with_name(label),
                                      embedding_distance, bits)
    summary = summarise(results)
    wins = paired_wins(results)
    markdown = to_markdown(summary, machine, args) + ("\n" + wins_markdown(wins) if wins else "")
    payload = {"machine": machine, "settings": {k: str(v) if isinstance(v, Path) else v
                                                for k, v in vars(args).items()},
               "vocoder_sources": sources, "mel_config": config.to_dict(), "mrstft_sizes": list(MRSTFT_SIZES),
               "timing_s": {"build_clips": t_clips, "total": time.perf_counter() - t_start},
               "summary": summary, "paired_wins": wins, "clips": clips, "per_clip": results}
    json_path, md_path = write_results("vocoder", payload, markdown, args.out)
    print(markdown)
    print(f"wrote {json_path} and {md_path} in {time.perf_counter() - t_start:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
