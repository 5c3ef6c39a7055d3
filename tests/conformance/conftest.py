"""The conformance probes' apps: chatrelay on the test's SQLite DATA_DIR (or a database of
the test's choosing), browsers of their own that are closed at the end, and two accounts
(ann, bob) on the test module's `server`, each signed in on a device of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from tests.accounts.conftest import make_app, make_browser
from tests.history.devices import Client, device

__all__ = ["make_app", "make_browser"]


@pytest.fixture
async def ann(server: TestServer) -> AsyncIterator[Client]:
    client = await device(server, "ann@example.com", new=True)
    yield client
    await client.close()


@pytest.fixture
async def bob(server: TestServer, ann: Client) -> AsyncIterator[Client]:
    client = await device(server, "bob@example.com", new=True)
    yield client
    await client.close()
