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


def output_paths(output: str, n: int) -> list[Path]:
    """OUT.wav for one item; OUT_0.wav, OUT_1.wav, ... for several."""
    path = Path(output)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]


def write_outputs(result, output: str) -> None:
    from .audio import save_audio

    paths = output_paths(output, len(result))
    for path, wav, seed in zip(paths, result.waveforms, result.seeds):
        save_audio(path, wav, result.sample_rate)
        print(f"wrote {path} ({wav.shape[-1] / result.sample_rate:.2f} s, seed {seed})")


def load_pipeline(args: argparse.Namespace, mode: str | None = None):
    """The command's model; ``mode`` ("melody") picks the default autoguidance weight checked."""
    from .pipelines import TextToAudioPipeline

    guide = getattr(args, "guide", None)
    pipe = TextToAudioPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype, guide=guide)
    if guide is not None and pipe.autoguidance(args.autoguidance, mode=mode) == 0:
        raise ValueError(f"--guide {guide} is only used with --autoguidance W > 0 (this model's default weight "
                         f"{'in this mode ' if mode else ''}is 0)")
    return pipe


def _cmd_generate(args: argparse.Namespace) -> None:
    from .audio import WRITE_FORMATS

    if Path(args.output).suffix.lower() not in WRITE_FORMATS:
        raise ValueError(f"output must end in one of {', '.join(WRITE_FORMATS)}, got {args.output}")
    start = time.perf_counter()
    pipe = load_pipeline(args)
    result = pipe(args.prompt, negative_prompt=args.negative, duration_s=args.duration_s,
                  num_steps=args.steps, guidance_scale=args.guidance, sampler=args.sampler,
                  seed=args.seed, batch_size=args.n, progress=not args.quiet,
                  guidance_interval=args.guidance_interval, sound_s=args.sound_s,
                  autoguidance=args.autoguidance)
    write_outputs(result, args.output)
    s = result.settings
    sound = ""
    if "sound_s" in s:
        values = s["sound_s"] if isinstance(s["sound_s"], list) else [s["sound_s"]]
        sound = (f", sound {'/'.join(f'{v:g}' for v in values)} s"
                 + (" predicted from the prompt" if s["sound_s_from"] == "prompt" else ""))
    from .pipelines.base import dtype_name

    weights = dtype_name(pipe.dtype)
    auto = f", autoguidance {s['autoguidance']:g}" if s.get("autoguidance") else ""
    print(f"{len(result)} clip(s) in {time.perf_counter() - start:.1f} s "
          f"({s['sampler']}, {s['num_steps']} steps, guidance {s['guidance_scale']:g}{auto}, {weights}{sound})")


def sound_seconds(text: str) -> float | str | None:
    """--sound-s: a number of seconds, 'auto' or 'none'."""
    word = text.strip().lower()
    if word in ("auto", "none"):
        return None if word == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 'auto' or 'none', got {text!r}") from None


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every generating command."""
    p.add_argument("-o", "--output", default="out.wav", help="output file (.wav/.flac/.ogg); "
                   "with -n > 1, OUT_0.wav, OUT_1.wav, ...")
    p.add_argument("-n", type=int, default=1, help="number of clips (default 1)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--sampler", default=None, help="dpmpp_2m (default), dpmpp_2m_sde (stochastic), dpmpp_3m (for 25 or more steps), euler, heun or ddim")
    p.add_argument("--seed", type=int, default=None, help="base seed (clip i uses seed + i)")
    p.add_argument("--negative", default=None, help="negative prompt: what to steer away from")
    p.add_argument("--model", default=None, help="model folder or hub id (default: the bundled model)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: cpu)")
    add_dtype_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_autoguidance_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--autoguidance", type=float, default=None, metavar="W",
                   help="weight of autoguidance by the model's guide network, D + W (D - G) (model default; "
                        "0 = off, one network call less per step)")
    p.add_argument("--guide", default=None, metavar="DIR",
                   help="guide network for --autoguidance instead of the model's own guide/: a UNet folder or "
                        "a pipeline folder (its unet/), e.g. an earlier checkpoint of the same model")


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    from .config import DTYPE_NAMES

    p.add_argument("--dtype", default="auto", choices=DTYPE_NAMES,
                   help="weights of the denoiser and vocoder; 'auto' (default): bf16 on CPUs with native "
                        "bf16 (AVX512-BF16, AMX), ~1.6x faster; fp32 elsewhere")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="audiodiff",
        description="Audio diffusion toolkit: generate sound from text, make variations, train models.",
    )
    parser.add_argument("--version", action="version", version=f"audiodiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("generate", help="generate audio from a text prompt",
                       description="Generate audio from a text prompt with a text-to-audio model.")
    p.add_argument("prompt", help='what to generate, e.g. "heavy rain falling on a roof"')
    p.add_argument("--duration-s", type=float, default=None, help="seconds of audio (model default: 5)")
    p.add_argument("--sound-s", type=sound_seconds, default="auto",
                   help="seconds of sound from the start, then silence (models with a timing input); "
                        "'auto' (default): predicted from the prompt when the model has a sound length "
                        "head; 'none': the model decides")
    add_generation_args(p)
    p.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("SIGMA_LO", "SIGMA_HI"),
                   help="guide only the steps with SIGMA_LO < sigma <= SIGMA_HI, the others cost half "
                        "(model default; 0 1e9 guides every step)")
    add_autoguidance_arg(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("vocode", help="audio -> mel spectrogram -> audio through a vocoder",
                       description="Round-trip a file through the mel front-end and a vocoder.")
    p.add_argument("input", help="audio file (wav, flac, ogg, mp3; any rate, mono or stereo)")
    p.add_argument("-o", "--output", required=True, help="output file (.wav, .flac or .ogg)")
    p.add_argument("--vocoder", default="default",
                   help="default (the bundled model's HiFi-GAN, fine-tuned on effects, music and speech), "
                        "hifigan (the packaged universal HiFi-GAN), griffinlim, or a vocoder folder")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_vocode)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Sub-commands defined in other modules register themselves here (keeps this file small).
# Their modules import no torch, so `audiodiff --help` stays fast.
from .data.cli import register as register_prepare  # noqa: E402  (audiodiff prepare ...)
from .training.cli import register as register_training  # noqa: E402  (train, train-vocoder, export)
from .eval.cli import register as register_evaluate  # noqa: E402  (evaluate)
from .variations_cli import register as register_variations  # noqa: E402  (vary, inpaint, continue, ...)
from .demo.cli import register as register_demo  # noqa: E402  (demo: the Gradio web demo)

_EXTRA_COMMANDS: list = [register_training, register_prepare, register_variations, register_demo, register_evaluate]


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
