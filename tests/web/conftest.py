"""Browser tests: Playwright for Python driving Debian's Chromium against a real server.

Each test gets a fresh server (``server`` from tests/conftest.py) serving the built
web client, and a headless Chromium launched from ``TAUBE_TEST_CHROMIUM`` (default
/usr/bin/chromium; ``make test`` installs it where missing). Without Chromium or
without the built client the tests skip with the reason, except in CI (``CI=true``),
where they fail. Screenshots of the main screens go to ``build/test-artifacts``
(``TAUBE_TEST_ARTIFACTS``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from taube.server.web import static_dir
from tests.conftest import IN_CI
from tests.serverproc import UNIT_S, ServerProcess

CHROMIUM = os.environ.get("TAUBE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get(
        "TAUBE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
    )
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = int(10_000 * UNIT_S)

PageFactory = Callable[[], Awaitable[Page]]


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason} (with CI=true this fails)")


@pytest.fixture
def browser_ready() -> None:
    _require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (make chromium)")
    _require((static_dir() / "index.html").is_file(), "the web client is not built (make web)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
async def browser(browser_ready: None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def new_page(browser: Browser, server: ServerProcess) -> AsyncIterator[PageFactory]:
    """``await new_page()``: a page of the client in a fresh browser context (its own
    IndexedDB: a separate device). Console errors and CSP violations fail the test."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    async def make() -> Page:
        context = await browser.new_context(viewport={"width": 1200, "height": 800})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        await page.goto(server.url + "/")
        return page

    try:
        yield make
    finally:
        for context in contexts:
            await context.close()
    # Failed fetches while the server is down on purpose are expected console noise.
    serious = [p for p in problems if "Content Security Policy" in p or "page error" in p]
    assert not serious, serious


async def screenshot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
