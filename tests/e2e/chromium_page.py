"""A page opened in Debian's headless Chromium through playwright: what it drew, and what
went wrong in its console. No browser download: playwright drives /usr/bin/chromium."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections are refused on a
# closed network and show up as errors.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclasses.dataclass(frozen=True)
class Rendered:
    points: int
    errors: list[str]
    # The label plotly shows while the pointer rests on the first point.
    hover: str


def render(page_path: Path, screenshot: Path | None = None) -> Rendered:
    """Open ``page_path``, wait for plotly to draw, count its SVG markers, hover one."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1100, "height": 700},
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_selector("g.scatterlayer path.point", timeout=60_000)
            markers = page.locator("g.scatterlayer path.point")
            points = markers.count()
            markers.first.hover(force=True)
            page.wait_for_selector("g.hoverlayer g.hovertext", timeout=10_000)
            hover = page.locator("g.hoverlayer g.hovertext").first.text_content() or ""
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return Rendered(points, errors, hover)
