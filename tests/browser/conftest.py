"""Browser fixtures: Debian's Chromium driven by Playwright's async API against the real app.

pytest-playwright's sync fixtures would break the async tests that run after them, so the
browser is launched here, inside each test's own event loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.conftest import Serve

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}

# Only locator waits below: they stay within the page's strict CSP. A wait lasts this long
# only when something is wrong; on a machine busy with other suites a right answer can take
# more than 10 s to show, so the bound is generous.
expect.set_options(timeout=30_000)

OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        message = f"Chromium not found at {CHROMIUM}: install Debian's chromium (make browser-deps)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        yield browser
        await browser.close()


@pytest.fixture
async def open_page(browser: Browser, serve: Serve) -> AsyncIterator[OpenPage]:
    """A fresh browser context on a served app (a new one unless given), connected by default.

    The contexts close before the served app does: a page left open keeps its WebSocket,
    and the app's shutdown would wait for that socket's handler (30 s a test).
    """
    contexts: list[BrowserContext] = []

    async def open_page(
        server: TestServer | None = None,
        *,
        viewport: ViewportSize = DESKTOP,
        bypass_csp: bool = False,
        color_scheme: Literal["light", "dark"] = "light",
        connected: bool = True,
        **overrides: Any,
    ) -> Page:
        server = server or await serve(**overrides)
        context = await browser.new_context(
            viewport=viewport, bypass_csp=bypass_csp, color_scheme=color_scheme
        )
        contexts.append(context)
        page = await context.new_page()
        await page.goto(str(server.make_url("/")))
        if connected:
            await expect(page.locator("#connection")).to_have_text("Connected")
        return page

    yield open_page
    for context in contexts:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS_DIR / f"{name}.png")
