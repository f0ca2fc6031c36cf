"""The Gradio web demo over the public pipeline API (``audiodiff demo``, ``demos/gradio_app.py``).

Importing this package is cheap; gradio loads on first use of :func:`build_demo`.
"""

from __future__ import annotations

__all__ = ["DemoLimits", "build_demo", "launch_demo"]


def __getattr__(name: str):
    if name in ("build_demo", "launch_demo"):
        from . import app
        return getattr(app, name)
    if name == "DemoLimits":
        from .handlers import DemoLimits
        return DemoLimits
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
