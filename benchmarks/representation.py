"""What the evaluator's scores allow at best: real clips in the form a generator hands them over.

``audiodiff evaluate`` classifies generated clips against real ones (top-1 / top-5 of a per-class
k-NN classifier over aiSFX embeddings) and calls the real clips' leave-one-out accuracy the
ceiling. But a generated clip differs from a real one in ways that have nothing to do with how
well the denoiser learned: it is a mel with 80 bands up to 8 kHz, turned into sound by a vocoder,
and it always lasts the asked duration (a short sound is followed by silence), while the real clips
were trimmed of their silence when the corpora were built. This benchmark puts the evaluator's
real clips through each of those steps and classifies them the evaluator's way, each clip scored
against the other real clips (never its own original):

- ``original``: the real clip as the evaluator embeds it (the leave-one-out ceiling, a self-check);
- ``padded``: zero-padded to the evaluation duration, as a generated clip is;
- ``below_8k``: low-passed to the mel's 8 kHz (resampled to 16 kHz);
- ``vocoded``: its normalised log-mel through the model's vocoder (a denoiser that reproduced
  the clip's mel exactly would give this), at the clip's own length;
- ``oracle``: padded to the evaluation duration, then mel and vocoder: what a perfect denoiser
  asked for this clip at that duration would hand the evaluator;
- ``oracle_trimmed``: the oracle with leading and trailing silence cut at the corpora's threshold
  (-60 dB below the peak), as the real clips were and as ``audiodiff evaluate`` now cuts
  generated clips (``audiodiff.eval.evaluate.trim_generated``).

For each: top-1 / top-5, the Frechet distance of one half against the other half of the original
real clips (the evaluator's half-vs-half floor is ``original``'s row), and which category wins
most often (a category that many clips are mistaken for).

    python benchmarks/representation.py --threads 2

Writes ``representation.json`` / ``.md`` under ``--out`` (default benchmarks/results). Needs the
evaluation corpora (``audiodiff prepare all --out data/corpora`` and ``prepare synth``).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm.auto import tqdm

from audiodiff.config import DTYPE_NAMES

try:  # run as `python -m benchmarks.representation` or as `python benchmarks/representation.py`
    from benchmarks._common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results
except ImportError:
    from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # type: ignore

VARIANTS = ("original", "padded", "below_8k", "vocoded", "oracle", "oracle_trimmed")
LOWPASS_RATE = 16000  # Nyquist 8 kHz: the mel's f_max


def pad_to(wav: torch.Tensor, n: int) -> torch.Tensor:
    """(T,) cropped or zero-padded to n samples."""
    return torch.nn.functional.pad(wav[:n], (0, max(0, n - wav.shape[-1])))


def score(emb: np.ndarray, real_emb: np.ndarray, real_idx: np.ndarray, names: list[str], k: int) -> dict:
    """The evaluator's classifier, each clip kept from its own original; FD of the first half of
    the variant against the second half of the originals (the evaluator's floor pairs halves)."""
    from audiodiff.eval.evaluate import _halves
    from audiodiff.eval.metrics import class_scores, frechet_distance, true_class_ranks

    scores = class_scores(emb, real_emb, real_idx, len(names), k, exclude=np.arange(len(emb)))
    ranks = true_class_ranks(scores, real_idx)
    pred = scores.argmax(axis=1)
    a, b = _halves([names[i] for i in real_idx])
    top_pred = collections.Counter(names[p] for p in pred).most_common(3)
    return {"top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
            "fd_half_vs_half": frechet_distance(emb[a], real_emb[b]),
            "per_category_top1": {n: float(np.mean(ranks[real_idx == c] == 1)) for c, n in enumerate(names)},
            "most_predicted": top_pred}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder whose mel and vocoder to use (default: bundled)")
    p.add_argument("--data", nargs="+", default=["data/corpora"], help="corpora folders (default data/corpora)")
    p.add_argument("--categories", default=None, help="comma-separated category names (default: all)")
    p.add_argument("--real-per-category", type=int, default=16, help="as audiodiff evaluate (default 16)")
    p.add_argument("--cache-dir", default=None, help="real-clip embedding cache (default: audiodiff evaluate's)")
    p.add_argument("--duration-s", type=float, default=4.0, help="as audiodiff evaluate (default 4)")
    p.add_argument("--k-neighbours", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--dtype", default="auto", choices=DTYPE_NAMES, help="vocoder weights (default auto, as the CLI)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--name", default="representation")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.duration_s <= 0 or args.real_per_category < 2:
        p.error("need --duration-s > 0 and --real-per-category >= 2")

    from audiodiff.audio import MelConfig, load_audio
    from audiodiff.eval.embedding import EmbeddingCache, SoundEmbedder, embed_files
    from audiodiff.eval.evaluate import collect_real_clips, find_manifests, trim_generated
    from audiodiff.eval.taxonomy import get_categories
    from audiodiff.pipelines import TextToAudioPipeline
    from audiodiff.pipelines.variations import input_mel

    start = time.perf_counter()
    try:
        categories = get_categories([n.strip() for n in args.categories.split(",")] if args.categories else None)
    except ValueError as err:
        p.error(str(err))
    names = [c.name for c in categories]
    real = collect_real_clips(find_manifests(args.data), categories, args.real_per_category)
    real_idx = np.array([names.index(r.category) for r in real])
    embedder = SoundEmbedder()
    real_emb = embed_files(embedder, [r.path for r in real], args.duration_s, EmbeddingCache(args.cache_dir))

    needs_vocoder = {"vocoded", "oracle", "oracle_trimmed"} & set(args.variants)
    pipe = TextToAudioPipeline.from_pretrained(args.model, dtype=args.dtype) if needs_vocoder else None
    sr = pipe.sample_rate if pipe else MelConfig().sample_rate
    n_eval = round(args.duration_s * sr)

    def vocode(wav: torch.Tensor) -> torch.Tensor:
        return pipe.decode(input_mel(wav[None], pipe.config.mel), num_samples=wav.shape[-1])[0, 0]

    made: dict[str, list[tuple[torch.Tensor, int]]] = {v: [] for v in args.variants if v != "original"}
    for clip in tqdm(real, desc="real clips through the pipeline", unit="clip"):
        wav, file_sr = load_audio(clip.path, mono=True)
        wav = wav[0, :n_eval] if file_sr == sr else AF.resample(wav[0], file_sr, sr)[:n_eval]
        oracle = None  # one vocoder call serves both oracles
        for v in made:
            if v == "padded":
                made[v].append((pad_to(wav, n_eval), sr))
            elif v == "below_8k":
                made[v].append((AF.resample(wav, sr, LOWPASS_RATE), LOWPASS_RATE))
            elif v == "vocoded":
                made[v].append((vocode(wav), sr))
            else:  # the oracles
                oracle = vocode(pad_to(wav, n_eval)) if oracle is None else oracle
                made[v].append((trim_generated(oracle[None], sr)[0] if v == "oracle_trimmed" else oracle, sr))

    results = {}
    for v in args.variants:
        if v == "original":
            emb = real_emb
        else:
            rate = made[v][0][1]
            emb = embedder.embed([w for w, _ in made[v]], rate)
        results[v] = score(emb, real_emb, real_idx, names, args.k_neighbours)
        print(f"{v:15s} top-1 {results[v]['top1']:.3f}  top-5 {results[v]['top5']:.3f}  "
              f"FD {results[v]['fd_half_vs_half']:.1f}  most predicted {results[v]['most_predicted'][0]}", flush=True)

    info = machine_info()
    payload = {"machine": info, "settings": {**vars(args), "clips": len(real)},
               "results": results, "seconds": round(time.perf_counter() - start, 1)}
    rows = [[v, round(r["top1"], 3), round(r["top5"], 3), round(r["fd_half_vs_half"], 1),
             ", ".join(f"{n} {c}" for n, c in r["most_predicted"])] for v, r in results.items()]
    md = "\n".join([
        f"# Real clips in the generator's form ({len(real)} clips, {len(names)} categories, "
        f"{args.duration_s:g} s, {args.k_neighbours}-NN)", "",
        markdown_table(["variant", "top-1", "top-5", "FD (half vs half)", "most predicted"], rows), "",
        f"Each clip is classified against the other real clips, never its own original. "
        f"{machine_line(info)}; {payload['seconds']:.0f} s."])
    json_path, _ = write_results(args.name, payload, md, args.out)
    print(md)
    print(f"wrote {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
