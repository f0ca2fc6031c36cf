"""``audiodiff prepare``: build corpora, the mel feature cache and the compact export.

    audiodiff prepare sfx --out data/corpora/sfx            # Debian sound effects (apt download)
    audiodiff prepare music --out data/corpora/music --hours 5
    audiodiff prepare synth --out data/corpora/synth --per-class 200
    audiodiff prepare folder my_sounds/ --out data/corpora/mine
    audiodiff prepare features data/corpora/*/manifest.jsonl --out data/features
    audiodiff prepare export data/features --out data/export      # <= 64 MiB for a GPU machine
    audiodiff prepare all --out data/corpora                       # sfx + music + synth + features + export
    audiodiff prepare check data/corpora/sfx/manifest.jsonl -n 30  # listen-as-a-user spot check

Every command resumes: rerun it after an interruption and finished work is skipped. Heavy
imports happen inside the commands so ``audiodiff --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _packages(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _roots(items: list[str] | None) -> dict[str, str]:
    roots = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--package-root takes NAME=FOLDER, got {item!r}")
        roots[name] = folder
    return roots


def _sfx(args: argparse.Namespace) -> None:
    from .sfx import build_sfx

    build_sfx(args.out, _packages(args.packages), roots=_roots(args.package_root), cache_dir=args.cache_dir,
              valid_fraction=args.valid_fraction, limit_per_package=args.limit_per_package, force=args.force)


def _music(args: argparse.Namespace) -> None:
    from .music_corpus import DEFAULT_SOUNDFONTS, build_music

    build_music(args.out, hours=args.hours, seed=args.seed, collections=tuple(_packages(args.collections)),
                soundfonts=tuple(args.soundfont or DEFAULT_SOUNDFONTS), max_segment_s=args.max_segment_s,
                valid_fraction=args.valid_fraction, time_limit_s=args.time_limit_s, force=args.force)


def _synth(args: argparse.Namespace) -> None:
    from .local_corpora import build_synth

    build_synth(args.out, per_class=args.per_class, duration_s=args.duration_s, seed=args.seed,
                labels=_packages(args.classes), valid_fraction=args.valid_fraction, force=args.force)


def _folder(args: argparse.Namespace) -> None:
    from .local_corpora import build_folder

    build_folder(args.out, args.folder, source=args.source, license=args.license,
                 valid_fraction=args.valid_fraction, normalize=not args.no_normalize, force=args.force)


def _features(args: argparse.Namespace) -> None:
    from .feature_cache import build_feature_cache

    build_feature_cache(args.manifests, args.out, shard_mib=args.shard_mib, splits=_packages(args.splits))


def _export(args: argparse.Namespace) -> None:
    from .feature_cache import export_compact

    export_compact(args.cache, args.out, max_mib=args.max_mib, max_clip_s=args.max_clip_s, dtype=args.dtype,
                   seed=args.seed, melody_share=args.melody_share, chunks=args.chunks)


def _check(args: argparse.Namespace) -> None:
    from .quality import format_spot_check, spot_check

    print(format_spot_check(spot_check(args.manifest, n=args.n, seed=args.seed, split=args.split)))


def _all(args: argparse.Namespace) -> None:
    from .feature_cache import build_feature_cache, export_compact
    from .local_corpora import build_synth
    from .music_corpus import build_music
    from .sfx import build_sfx

    out = Path(args.out)
    start = time.perf_counter()
    build_sfx(out / "sfx", cache_dir=args.cache_dir)
    build_music(out / "music", hours=args.hours)
    # The procedural sweeps, tones, hums, noises, clicks and drones (seconds to build): the
    # recorded corpora hold few such sounds, and the evaluator has categories of them.
    build_synth(out / "synth")
    manifests = [out / name / "manifest.jsonl" for name in ("sfx", "music", "synth")]
    build_feature_cache(manifests, out / "features")
    export_compact(out / "features", out / "export", max_mib=args.max_mib)
    print(f"prepare all: done in {time.perf_counter() - start:.0f} s; corpora, features and export in {out}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``audiodiff prepare sfx|music|synth|folder|features|export|all``."""
    prepare = subparsers.add_parser(
        "prepare", help="build training corpora (sound effects, music, synth, your folder) and features",
        description="Build captioned corpora with a manifest, a data card and a report of skipped "
                    "inputs. Every command resumes where an interrupted run stopped.")
    sub = prepare.add_subparsers(dest="corpus", metavar="CORPUS", required=True)

    def common(p: argparse.ArgumentParser, out_help: str = "output folder") -> None:
        p.add_argument("--out", required=True, help=out_help)
        p.add_argument("--valid-fraction", type=float, default=0.05, help="share of source files in 'valid'")
        p.add_argument("--force", action="store_true", help="reuse an output folder built with other settings")

    p = sub.add_parser("sfx", help="recorded sound effects from Debian packages (apt-get download)")
    common(p)
    p.add_argument("--packages", help="comma-separated Debian packages (default: all known ones)")
    p.add_argument("--package-root", action="append", metavar="NAME=FOLDER",
                   help="use an already unpacked package instead of downloading it (repeatable)")
    p.add_argument("--cache-dir", help="where packages are unpacked (default $AUDIODIFF_CACHE or ~/.cache/audiodiff)")
    p.add_argument("--limit-per-package", type=int, help="at most this many files per package (a quick trial)")
    p.set_defaults(func=_sfx)

    p = sub.add_parser("music", help="music21 scores rendered with fluidsynth, with melody labels")
    common(p)
    p.add_argument("--hours", type=float, default=5.0, help="build until the corpus holds this much (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--collections", default="bach-chorales,essen", help="music21 collections")
    p.add_argument("--soundfont", action="append", help="soundfont file (repeatable; default: the GM ones)")
    p.add_argument("--max-segment-s", type=float, default=30.0, help="longest clip (default 30)")
    p.add_argument("--time-limit-s", type=float, help="stop after this many seconds (rerun to go on)")
    p.set_defaults(func=_music)

    p = sub.add_parser("synth", help="procedural captioned sounds (tones, sweeps, noise, clicks, drones)")
    common(p)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--duration-s", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", help="comma-separated sound classes (default: all)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("folder", help="your folder of audio + captions (metadata.csv/.jsonl or .txt files)")
    p.add_argument("folder", help="folder of audio files")
    common(p)
    p.add_argument("--source", default="user", help="source name written in the manifest")
    p.add_argument("--license", default="unknown", help="licence written for clips without one in metadata")
    p.add_argument("--no-normalize", action="store_true", help="keep levels and silences as they are")
    p.set_defaults(func=_folder)

    p = sub.add_parser("features", help="cache fp16 mels of manifests in safetensors shards")
    p.add_argument("manifests", nargs="+", help="manifest.jsonl files")
    p.add_argument("--out", required=True)
    p.add_argument("--shard-mib", type=float, default=128.0)
    p.add_argument("--splits", help="comma-separated splits to cache (default: all)")
    p.set_defaults(func=_features)

    p = sub.add_parser("export", help="a compact (<= 64 MiB) copy of a feature cache for a GPU machine")
    p.add_argument("cache", help="feature cache folder (from `prepare features`)")
    p.add_argument("--out", required=True)
    p.add_argument("--max-mib", type=float, default=64.0)
    p.add_argument("--max-clip-s", type=float, default=10.0, help="keep at most this much of each clip")
    p.add_argument("--dtype", choices=("float16", "uint8"), default="float16",
                   help="uint8 quantises mels (0.48 dB steps, at most 0.24 dB off) to fit twice the audio")
    p.add_argument("--melody-share", type=float, default=0.5,
                   help="share of the budget for clips with melody labels (music); default 0.5")
    p.add_argument("--chunks", action="store_true",
                   help="cut clips longer than --max-clip-s into consecutive chunks instead of keeping the first")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_export)

    p = sub.add_parser("check", help="spot-check random clips: silence, clipping, rate, captions")
    p.add_argument("manifest")
    p.add_argument("-n", type=int, default=30, help="clips to draw (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", help="only this split")
    p.set_defaults(func=_check)

    p = sub.add_parser("all", help="sfx + music + synth + feature cache + compact export, "
                                   "in OUT/{sfx,music,synth,features,export}")
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, default=5.0, help="hours of rendered music (default 5)")
    p.add_argument("--max-mib", type=float, default=64.0)
    p.add_argument("--cache-dir")
    p.set_defaults(func=_all)
