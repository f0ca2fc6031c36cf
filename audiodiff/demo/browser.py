"""Drive the web demo in a real browser: Debian's headless Chromium through Playwright.

For the browser test and ``demos/screenshots.py``; no browser is downloaded (Playwright gets
``executable_path`` of the system Chromium). Every request the page makes is recorded, so a
caller can check that nothing but the demo's own server was contacted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

# Headless, and quiet: no background services that would reach for outside hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Session:
    page: object
    requests: list[str] = field(default_factory=list)

    def outside_requests(self) -> list[str]:
        """URLs the page asked for from any host but this machine (data:/blob: URLs are local)."""
        outside = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about"):
                continue
            if parsed.hostname not in LOCAL_HOSTS:
                outside.append(url)
        return outside


@contextlib.contextmanager
def browser_session(url: str, width: int = 1280, height: int = 1000) -> Iterator[Session]:
    """Open ``url`` in headless Chromium with a fresh profile; yields the page and its requests."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="audiodiff-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height})
            try:
                page = context.new_page()
                session = Session(page)
                page.on("request", lambda request: session.requests.append(request.url))
                page.goto(url, wait_until="networkidle")
                yield session
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# tab id -> (tab label, result panel, button, text the settings show once the result is in)
ACTIONS = {
    "text": ("Text to audio", "text", "#generate", r'"call":\s*"pipe"'),
    "vary": ("Variation", "vary", "#vary-button", r"pipe\.vary"),
    "inpaint": ("Inpaint / continue", "inpaint", "#inpaint-button", r"pipe\.inpaint"),
    "continue": ("Inpaint / continue", "inpaint", "#continue-button", r"pipe\.continuation"),
    "melody": ("Melody", "melody", "#melody-button", r"pipe\.melody"),
}


def error_toasts(page) -> list[str]:
    return [t.strip() for t in page.locator(".toast-body").all_inner_texts()]


def run_action(page, action: str, prompt: str | None = None, audio: str | os.PathLike | None = None,
               timeout_s: float = 90.0) -> None:
    """Open the tab, fill the prompt / upload the audio, click, wait for the result's audio."""
    label, panel, button, done = ACTIONS[action]
    page.get_by_role("tab", name=label, exact=True).click()
    if audio is not None:
        page.locator(f"#{panel}-audio input[type=file]").set_input_files(str(audio))
        page.locator(f"#{panel}-audio audio").first.wait_for(state="attached", timeout=30_000)
    if prompt is not None:
        box = "#prompt textarea" if action == "text" else f"#{panel}-prompt textarea"
        page.locator(box).fill(prompt)
    page.locator(button).click()
    settings = page.locator(f"#{panel}-settings").filter(has_text=re.compile(done))
    try:
        settings.wait_for(state="visible", timeout=timeout_s * 1000)
        page.locator(f"#{panel}-clip-0 audio").first.wait_for(state="attached", timeout=10_000)
    except Exception as err:
        raise AssertionError(f"no result in the {label!r} tab ({action}); messages shown: "
                             f"{error_toasts(page)}") from err


def screenshot_all_tabs(url: str, out_dir: str | os.PathLike, clips: dict[str, str],
                        melody: bool = True) -> tuple[list[Path], list[str]]:
    """One generation per tab, a full-page screenshot after each; returns (paths, outside URLs)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [("text", "heavy rain falling on a roof", None),
            ("vary", "a drum loop", clips["drum_loop"]),
            ("inpaint", "a bell", clips["arpeggio"]),
            ("continue", "a bell", None)]
    if melody:
        plan.append(("melody", "a piano playing a melody", clips["arpeggio"]))
    shots = []
    with browser_session(url) as session:
        for action, prompt, audio in plan:
            run_action(session.page, action, prompt=prompt, audio=audio)
            path = out_dir / f"demo_{action}.png"
            session.page.screenshot(path=str(path), full_page=True)
            shots.append(path)
        outside = session.outside_requests()
    return shots, outside
