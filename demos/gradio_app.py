"""The audiodiff web demo: text to audio, variation, inpaint / continue and melody, in one page.

    python demos/gradio_app.py --model MODEL_DIR            # http://127.0.0.1:7860, this machine only
    audiodiff demo --model MODEL_DIR --port 7861            # the same, as a CLI command
    python demos/gradio_app.py --model MODEL_DIR --share    # also a public link (explicit only)

Or from Python, on any pipeline object::

    from audiodiff.demo import build_demo, launch_demo
    from audiodiff.pipelines import TextToAudioPipeline

    demo = build_demo(TextToAudioPipeline.from_pretrained("MODEL_DIR"))   # a gr.Blocks
    launch_demo(demo)

``build_demo(pipeline) -> gr.Blocks`` uses only audiodiff's public API (the pipeline's
``__call__``, ``vary``, ``inpaint``, ``continuation`` and ``melody``); its implementation lives in
``audiodiff/demo/`` so that the installed ``audiodiff demo`` command can import it.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from audiodiff.demo import DemoLimits, build_demo, launch_demo  # noqa: E402,F401  (re-exported)
from audiodiff.demo.cli import add_demo_args, run_demo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_args(parser)
    args = parser.parse_args(argv)
    try:
        run_demo(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
