"""The ``audiodiff`` command line: one sub-command per job, each a thin layer over the public API.

Errors a user can fix (a missing file, a bad value) print one line ``error: ...`` and exit with
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError)


def _cmd_vocode(args: argparse.Namespace) -> None:
    import torch

    from .audio import MelSpectrogram, load_audio, save_audio
    from .models.vocoder import load_vocoder

    vocoder = load_vocoder(args.vocoder, device=args.device)
    mel_config = vocoder.mel_config
    wav, _ = load_audio(args.input, sample_rate=mel_config.sample_rate, mono=True)
    start = time.perf_counter()
    with torch.inference_mode():
        log_mel = MelSpectrogram(mel_config).to(args.device)(wav.to(args.device))
        out = vocoder(log_mel)[0].cpu()
    elapsed = time.perf_counter() - start
    path = save_audio(args.output, out, mel_config.sample_rate)
    seconds = out.shape[-1] / mel_config.sample_rate
    print(f"wrote {path} ({seconds:.2f} s of audio, {args.vocoder}, {seconds / elapsed:.1f}x real time)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="audiodiff",
        description="Audio diffusion toolkit: generate sound from text, make variations, train models.",
    )
    parser.add_argument("--version", action="version", version=f"audiodiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("vocode", help="audio -> mel spectrogram -> audio through a vocoder",
                       description="Round-trip a file through the mel front-end and a vocoder.")
    p.add_argument("input", help="audio file (wav, flac, ogg, mp3; any rate, mono or stereo)")
    p.add_argument("-o", "--output", required=True, help="output file (.wav, .flac or .ogg)")
    p.add_argument("--vocoder", default="hifigan",
                   help="hifigan (packaged universal HiFi-GAN), griffinlim, or a vocoder folder")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_vocode)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Sub-commands defined in other modules register themselves here (keeps this file small).
_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        args.func(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
