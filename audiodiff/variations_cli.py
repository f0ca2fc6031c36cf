"""``audiodiff vary | inpaint | continue | long | melody``: the audio-to-audio modes of
``TextToAudioPipeline`` on the command line. Imports no torch until a command runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _run(args: argparse.Namespace, mode: str) -> None:
    from .audio import WRITE_FORMATS
    from .cli import load_pipeline, write_outputs

    if Path(args.output).suffix.lower() not in WRITE_FORMATS:
        raise ValueError(f"output must end in one of {', '.join(WRITE_FORMATS)}, got {args.output}")
    start = time.perf_counter()
    pipe = load_pipeline(args, mode=mode)
    kw = dict(negative_prompt=args.negative, num_steps=args.steps, guidance_scale=args.guidance,
              sampler=args.sampler, seed=args.seed, batch_size=args.n, progress=not args.quiet,
              autoguidance=args.autoguidance)
    if mode == "vary":
        result = pipe.vary(args.input, args.strength, prompt=args.prompt, **kw)
    elif mode == "inpaint":
        result = pipe.inpaint(args.input, args.start_s, args.end_s, prompt=args.prompt, **kw)
    elif mode == "continue":
        result = pipe.continuation(args.input, args.seconds, prompt=args.prompt, **kw)
    elif mode == "long":
        result = pipe.generate_long(args.prompt, args.duration_s, window_s=args.window_s,
                                    overlap_s=args.overlap_s, **kw)
    else:
        result = pipe.melody(args.input, prompt=args.prompt, melody_guidance=not args.no_melody_guidance, **kw)
    write_outputs(result, args.output)
    s = result.settings
    auto = f", autoguidance {s['autoguidance']:g}" if s.get("autoguidance") else ""
    print(f"{len(result)} clip(s) in {time.perf_counter() - start:.1f} s ({mode}, {s['sampler']}, "
          f"{s['num_steps']} steps, guidance {s['guidance_scale']:g}{auto})")


def register(sub) -> None:
    from .cli import add_autoguidance_arg, add_generation_args

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description)
        p.set_defaults(func=lambda args, mode=name: _run(args, mode))
        add_autoguidance_arg(p)
        return p

    audio_help = "input audio file (wav, flac, ogg, mp3; any rate, mono or stereo; at most 10 min)"
    p = command("vary", "variations of an audio file",
                "Make variations of an audio file: its mel is noised by --strength and denoised.")
    p.add_argument("input", help=audio_help)
    p.add_argument("--strength", type=float, default=0.5,
                   help="0 = the input (vocoded), 1 = ignore the input (default 0.5)")
    p.add_argument("--prompt", default=None, help="what the variation should sound like (default: none)")
    add_generation_args(p)

    p = command("inpaint", "regenerate a region of an audio file",
                "Regenerate [--start-s, --end-s) of an audio file; the rest is kept.")
    p.add_argument("input", help=audio_help)
    p.add_argument("--start-s", type=float, required=True, help="region start, seconds")
    p.add_argument("--end-s", type=float, required=True, help="region end, seconds")
    p.add_argument("--prompt", default=None, help="what the region should contain (default: none)")
    add_generation_args(p)

    p = command("continue", "extend an audio file",
                "Continue an audio file by --seconds of new audio.")
    p.add_argument("input", help=audio_help)
    p.add_argument("--seconds", type=float, required=True, help="seconds of new audio to add")
    p.add_argument("--prompt", default=None, help="what the continuation should sound like (default: none)")
    add_generation_args(p)

    p = command("long", "generate audio longer than the model's window",
                "Generate long audio (up to 10 min) from a prompt, window by window.")
    p.add_argument("prompt", help='what to generate, e.g. "calm piano music"')
    p.add_argument("--duration-s", type=float, default=60.0, help="seconds of audio (default 60)")
    p.add_argument("--window-s", type=float, default=10.0, help="window length, seconds (default 10)")
    p.add_argument("--overlap-s", type=float, default=2.5, help="overlap of windows, seconds (default 2.5)")
    add_generation_args(p)

    p = command("melody", "generate audio that follows a melody",
                "Generate audio following the melody (chroma) of a reference recording; "
                "needs a model trained with melody conditioning.")
    p.add_argument("input", metavar="REF", help="reference audio with the melody")
    p.add_argument("--prompt", default=None, help="what it should sound like, e.g. 'a flute'")
    p.add_argument("--no-melody-guidance", action="store_true",
                   help="guide towards the prompt only (default: towards the prompt and the melody)")
    add_generation_args(p)
