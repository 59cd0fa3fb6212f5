"""End-to-end status tests: the cluster fixtures of tests/cluster (three real nodes on
PostgreSQL and NATS; skipped without them, failing with CI=true), and a headless
Chromium as in tests/web (skipped without it, failing with CI=true)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.cluster.conftest import make_cluster
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, _require

__all__ = ["chromium", "make_cluster"]


@pytest.fixture
def chromium_ready() -> None:
    _require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (make chromium)")


@pytest.fixture
async def chromium(chromium_ready: None) -> AsyncIterator[Browser]:
    """Headless Chromium (Debian's, as in tests/web); no web client build needed."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
