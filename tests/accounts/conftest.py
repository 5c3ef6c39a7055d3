"""The account tests' apps: chatrelay on the test's database (each engine in turn), and
browsers of their own that are closed at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.account_clients import Browser, Client
from tests.conftest import MakeClient

MakeApp = Callable[..., Awaitable[Client]]
MakeBrowser = Callable[..., Browser]


@pytest.fixture
def make_app(make_client: MakeClient, database_url: str) -> MakeApp:
    """chatrelay on this test's database; two calls are two processes sharing it."""

    async def make(**overrides: Any) -> Client:
        return await make_client(database_url=database_url, **overrides)

    return make


@pytest.fixture
async def make_browser() -> AsyncIterator[MakeBrowser]:
    browsers: list[Browser] = []

    def make(client: Client, headers: dict[str, str] | None = None) -> Browser:
        browser = Browser.of(client, headers)
        browsers.append(browser)
        return browser

    yield make
    for browser in browsers:
        await browser.close()
