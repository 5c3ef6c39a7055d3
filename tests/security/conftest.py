"""Fixtures for the security tests: clients that pose as another address or as HTTPS."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from server.app import create_app
from server.config import Settings
from server.runner import make_runner
from tests.conftest import Client, MakeClient
from tests.security.raw_http import ServeFn

ACCESS_TOKEN = "access-token-7f3c9a1e5d2b4c6a8e0f"
TEST_REMOTE = "X-Test-Remote"
TEST_SCHEME = "X-Test-Scheme"


@web.middleware
async def as_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Play a proxy middleware: the test says which address and scheme the request came from."""
    remote = request.headers.get(TEST_REMOTE)
    scheme = request.headers.get(TEST_SCHEME)
    if remote is not None or scheme is not None:
        request = request.clone(
            remote=remote or request.remote or "", scheme=scheme or request.scheme
        )
    return await handler(request)


@pytest.fixture
def make_peer_client(aiohttp_client: Any, settings: Settings) -> MakeClient:
    """Like make_client, with X-Test-Remote / X-Test-Scheme honoured as a proxy would."""

    async def make(**overrides: Any) -> Client:
        app = create_app(dataclasses.replace(settings, **overrides))
        app.middlewares.insert(0, as_peer)
        client: Client = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[ServeFn]:
    """chatrelay behind the runner `python -m server` and gunicorn use (server/runner.py),
    on a loopback port; returns the port."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> int:
        runner = make_runner(create_app(dataclasses.replace(settings, **overrides)))
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site.port

    yield start
    for runner in runners:
        await runner.cleanup()
