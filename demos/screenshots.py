"""Screenshot every tab of the web demo after one generation in each, in headless Chromium.

    python demos/screenshots.py                          # a tiny random model: checks the page, fast
    python demos/screenshots.py --model MODEL_DIR --out shots/

Writes demo_text.png, demo_vary.png, demo_inpaint.png, demo_continue.png and demo_melody.png
(default folder tests/artifacts/screenshots/, which git ignores) and fails if the page asked
any host but this machine for anything. Needs Debian's chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audiodiff.demo import build_demo, launch_demo  # noqa: E402
from audiodiff.demo.browser import screenshot_all_tabs  # noqa: E402
from audiodiff.demo.handlers import supports_melody  # noqa: E402
from audiodiff.demo.media import write_example_clips  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: a tiny random melody model)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.model is None:
        from audiodiff.testing import tiny_text_to_audio_pipeline

        pipe = tiny_text_to_audio_pipeline(cond_channels=12)
    else:
        from audiodiff.pipelines import TextToAudioPipeline

        pipe = TextToAudioPipeline.from_pretrained(args.model)
    demo = build_demo(pipe)
    url = launch_demo(demo, port=free_port(), block=False, quiet=True)
    try:
        clips = write_example_clips(Path(tempfile.mkdtemp(prefix="audiodiff-shots-")), pipe.sample_rate)
        shots, outside = screenshot_all_tabs(url, args.out, clips, melody=supports_melody(pipe))
    finally:
        demo.close()
    for path in shots:
        print(f"wrote {path}")
    if outside:
        print(f"error: the page contacted outside hosts: {outside}", file=sys.stderr)
        return 1
    print("the page contacted no host but this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
