"""The web demo in a real browser: Debian's headless Chromium, driven by Playwright.

Screenshots go to tests/artifacts/ (ignored by git). Skipped, with the reason, where Chromium or
the playwright package is missing (``setup.sh`` installs both when run as root).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")

from audiodiff.demo import build_demo, launch_demo  # noqa: E402
from audiodiff.demo.browser import browser_session, find_chromium, run_action, screenshot_all_tabs  # noqa: E402
from audiodiff.demo.media import write_example_clips  # noqa: E402
from audiodiff.testing import tiny_text_to_audio_pipeline  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium is not installed (Debian: apt-get install chromium; setup.sh does it as root)")


@pytest.fixture(scope="module")
def demo_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(tiny_text_to_audio_pipeline(cond_channels=12))
    yield launch_demo(demo, port=port, block=False, quiet=True)
    demo.close()


def test_page_generates_audio_and_contacts_no_outside_host(demo_url):
    with browser_session(demo_url) as session:
        page = session.page
        # A mistake shows a readable message, and the page goes on working.
        page.locator("#generate").click()
        page.locator(".toast-body").filter(has_text=re.compile("prompt is empty")).first.wait_for(timeout=30_000)
        run_action(page, "text", prompt="heavy rain falling on a roof")
        href = page.locator("#text-clip-0 a[download]").first.get_attribute("href")
        assert href and "/gradio_api/file=" in href and href.endswith(".wav")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo_browser_text.png"), full_page=True)
        assert session.outside_requests() == []
        assert len(session.requests) > 10  # the page really loaded its scripts and styles


@pytest.mark.slow
def test_every_tab_in_the_browser(demo_url, tmp_path):
    """One generation per tab, a screenshot after each (also: python demos/screenshots.py)."""
    clips = write_example_clips(tmp_path, 22050)
    shots, outside = screenshot_all_tabs(demo_url, ARTIFACTS / "screenshots", clips)
    assert [p.name for p in shots] == [f"demo_{a}.png" for a in ("text", "vary", "inpaint", "continue", "melody")]
    assert all(p.stat().st_size > 10_000 for p in shots)
    assert outside == []
