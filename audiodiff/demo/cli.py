"""``audiodiff demo``: serve the web demo. Imports no gradio or torch until the command runs."""

from __future__ import annotations

import argparse
import ipaddress
import sys

LOOPBACK = ("localhost",)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    from ..cli import add_dtype_arg

    p.add_argument("--model", default=None, help="model folder or hub id (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: cpu)")
    add_dtype_arg(p)
    p.add_argument("--concurrency", type=int, default=1, help="generations running at once (default 1)")
    p.add_argument("--max-duration-s", type=float, default=30.0, help="longest generation accepted (default 30)")
    p.add_argument("--max-steps", type=int, default=100, help="most sampling steps accepted (default 100)")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_demo(args: argparse.Namespace) -> None:
    from ..pipelines import TextToAudioPipeline
    from .app import build_demo, launch_demo
    from .handlers import DemoLimits

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    limits = DemoLimits(concurrency=args.concurrency, max_duration_s=args.max_duration_s, max_steps=args.max_steps)
    pipe = TextToAudioPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    demo = build_demo(pipe, limits)
    if not is_loopback(args.host):
        print(f"note: listening on {args.host}: other machines on the network can use this demo", file=sys.stderr)
    if args.share:
        print("note: --share makes this demo reachable by anyone with the link", file=sys.stderr)
    launch_demo(demo, host=args.host, port=args.port, share=args.share)


def register(sub) -> None:
    p = sub.add_parser("demo", help="serve the Gradio web demo (local only by default)",
                       description="Serve the web demo: text to audio, variation, inpaint/continue, melody.")
    add_demo_args(p)
    p.set_defaults(func=run_demo)
