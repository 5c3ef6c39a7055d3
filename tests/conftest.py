"""Shared fixtures: a real fake OpenRouter on a loopback port and chatrelay in front of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Settings
from tests.fake_openrouter import FakeOpenRouter

# A fixed Fernet key so cookies made by one app instance open in another.
SESSION_SECRET = "Xq0Y0s8cT3o3ZgfN0f7d4Yb1WkqJ8mZr2VvH5nD6eLs="
SERVER_KEY = "sk-or-v1-server-key-0000000000009999"
USER_KEY = "sk-or-v1-user-key-111111111111abcd"

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def fake_openrouter(aiohttp_server: Any) -> FakeOpenRouter:
    fake = FakeOpenRouter()
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/api/v1"))
    return fake


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return Settings(
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


def chat_body(
    text: str = "Hello", model: str = "openai/gpt-4o-mini", **settings: Any
) -> dict[str, Any]:
    """A chat request as chatbot-ui posts it."""
    return {
        "chatSettings": {"model": model, "temperature": 0.7, "contextLength": 4096, **settings},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }
