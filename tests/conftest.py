"""Shared fixtures: a real fake OpenRouter on a loopback port and chatrelay in front of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Settings
from tests.fake_openrouter import FakeOpenRouter
from tests.redis_server import RedisServer

# A fixed Fernet key so cookies made by one app instance open in another.
SESSION_SECRET = "Xq0Y0s8cT3o3ZgfN0f7d4Yb1WkqJ8mZr2VvH5nD6eLs="
SERVER_KEY = "sk-or-v1-server-key-0000000000009999"
USER_KEY = "sk-or-v1-user-key-111111111111abcd"

# The database fixtures: a real PostgreSQL, SQLite in a temporary DATA_DIR, both engines.
pytest_plugins = ["tests.databases"]

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
Serve = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def fake_openrouter(aiohttp_server: Any) -> FakeOpenRouter:
    fake = FakeOpenRouter()
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/api/v1"))
    return fake


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One plain redis-server for the session; tests that stop Redis use make_redis_server."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def make_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Own redis-servers (`tls=True` for rediss://) that the test may stop and restart."""
    servers: list[RedisServer] = []

    def make(*, tls: bool = False) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(servers)}", tls=tls).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        openrouter_base_url=fake_openrouter.url,
        openrouter_api_key=SERVER_KEY,
        session_secret=SESSION_SECRET,
        upstream_timeout_s=2.0,
        app_url="https://chatrelay.test",
    )


@pytest.fixture
def make_client(aiohttp_client: Any, settings: Settings) -> MakeClient:
    """chatrelay over a real loopback socket, with any Settings field overridden."""

    async def make(**overrides: Any) -> Client:
        client: Client = await aiohttp_client(
            create_app(dataclasses.replace(settings, **overrides))
        )
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest.fixture
def serve(aiohttp_server: Any, settings: Settings) -> Serve:
    """chatrelay on a real loopback port (a given one, to restart it), any Settings overridden."""

    async def serve(port: int | None = None, **overrides: Any) -> TestServer:
        app = create_app(dataclasses.replace(settings, **overrides))
        server: TestServer = await aiohttp_server(app, port=port)
        return server

    return serve


def chat_body(
    text: str = "Hello", model: str = "openai/gpt-4o-mini", **settings: Any
) -> dict[str, Any]:
    """A chat request as chatbot-ui posts it."""
    return {
        "chatSettings": {"model": model, "temperature": 0.7, "contextLength": 4096, **settings},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }
