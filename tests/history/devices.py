"""Devices of one account for the history tests: each its own cookie jar on one server,
signed in through the account routes as a browser is."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient, TestServer

from tests.clients import WS, receive
from tests.conftest import chat_body

PASSWORD = "correct horse battery"
# The keys SPEC "History and sync" gives a conversation and a message, no more.
CONVERSATION_KEYS = {"id", "title", "created_at", "updated_at", "pinned", "archived", "version"}
MESSAGE_KEYS = {
    "id", "conversation_id", "parent_id", "role", "content", "status", "chat_id", "model",
    "usage", "error", "created_at", "version",
}  # fmt: skip
Client = TestClient[Any, Any]


async def sign_up(client: Client, email: str = "ann@example.com") -> str:
    """Create the account (the first device) and return its id; the client is signed in."""
    response = await client.post("/api/accounts", json={"email": email, "password": PASSWORD})
    assert response.status == 201, await response.text()
    account_id: str = (await response.json())["account"]["id"]
    return account_id


async def sign_in(client: Client, email: str = "ann@example.com") -> None:
    response = await client.post("/api/session", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()


async def device(
    server: TestServer, email: str = "ann@example.com", *, new: bool = False
) -> Client:
    """A browser of its own (its own cookies) on the server, signed in to the account."""
    client: Client = TestClient(server)
    await client.start_server()
    if new:
        await sign_up(client, email)
    else:
        await sign_in(client, email)
    return client


async def json_of(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json()


def chat_with(conversation: dict[str, Any], chat_id: str, text: str = "Hello") -> str:
    """A WebSocket chat frame that writes its answer into `conversation`'s history."""
    frame = {"type": "chat", "id": chat_id, **chat_body(text), "conversation": conversation}
    return orjson.dumps(frame).decode()


async def next_sync(ws: WS, timeout_s: float = 5.0) -> int:
    """The version of the next `sync` frame; other frames are skipped."""
    async with asyncio.timeout(timeout_s):
        while True:
            frame = await receive(ws, timeout_s)
            if frame.get("type") == "sync":
                version: int = frame["version"]
                return version


async def pull(client: Client, since: int) -> tuple[int, list[dict[str, Any]]]:
    """Every change after `since`, page by page, as a device pulls them; the new cursor."""
    changes: list[dict[str, Any]] = []
    while True:
        page = await json_of(await client.get("/api/sync", params={"since": since}), 200)
        assert "reset" not in page, page
        changes += page["changes"]
        since = page["version"]
        if not page["more"]:
            return since, changes


async def chat_frames(ws: WS, chat_id: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The chat's frames up to its done or error; `sync` frames (this device's own writes)
    and other chats' frames are skipped."""
    frames = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = await receive(ws, timeout_s)
            if frame.get("type") == "sync" or frame.get("id") != chat_id:
                continue
            frames.append(frame)
            if frame["type"] in ("done", "error"):
                return frames
