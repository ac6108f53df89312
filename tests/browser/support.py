"""Helpers of the browser tests: the laptop screen, screenshots, and what the UI's pages share."""

from __future__ import annotations

from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.test_web_support import output_dir

__all__ = [
    "CHROMIUM_ARGS",
    "LAPTOP",
    "fits_the_screen",
    "new_context",
    "shot",
    "unlabelled",
    "watch",
]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LAPTOP = {"width": 1366, "height": 768}


def new_context(browser: Browser, base_url: str) -> BrowserContext:
    ctx = browser.new_context(viewport=LAPTOP, base_url=base_url)  # type: ignore[arg-type]
    ctx.set_default_timeout(15_000)
    return ctx


def fits_the_screen(page: Page) -> bool:
    """No sideways scrolling on a laptop screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    return int(width) <= LAPTOP["width"]


def shot(page: Page, name: str) -> None:
    """A screenshot of the whole page under the test output directory."""
    page.screenshot(path=str(output_dir() / f"{name}.png"), full_page=True)


def watch(page: Page) -> list[str]:
    """Collects what goes wrong in the page: console errors (a refused script or style, a
    failed request) and uncaught exceptions."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


_UNLABELLED = """
() => Array.from(document.querySelectorAll("input, select, textarea, button"))
  .filter(el => el.type !== "hidden")
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80))
"""


def unlabelled(page: Page) -> list[str]:
    """Form controls a screen reader could not name (no label, no aria-label, no text)."""
    return list(page.evaluate(_UNLABELLED))
