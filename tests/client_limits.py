"""Chats held open and refused: what the per-client limit tests share (tests/security)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.conftest import Client, chat_body
from tests.fake_openrouter import COMMENT, Reply

CHAT = "/api/chat/openrouter"
WS = "/api/chat/ws"
BODY = orjson.dumps(chat_body())
HANG = Reply(steps=[COMMENT, "hang"])


async def hold_chat(client: Client, **headers: str) -> aiohttp.ClientResponse:
    """A POST chat whose answer is never read: it holds its slot until the client leaves."""
    response = await client.post(CHAT, data=BODY, headers=headers)
    assert response.status == 200
    return response


async def refused(client: Client, **headers: str) -> dict[str, Any]:
    async with client.post(CHAT, data=BODY, headers=headers) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        body: dict[str, Any] = await response.json()
        return body


async def answered(client: Client, **headers: str) -> None:
    async with client.post(CHAT, data=BODY, headers=headers) as response:
        assert response.status == 200
        assert await response.text() == "Hello"
