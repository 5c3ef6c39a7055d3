"""A running chat holds about its request's size, not a multiple of it (SPEC "Limits";
issue 21.4: a 15 MiB request held 30 MiB traced while its chat ran, a 16 MiB `tools` body on
/v1 48 MiB)."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import MakeClient, chat_body
from tests.security.hostile_upstream import Hostile

MIB = 1024 * 1024
REQUEST_MIB = 15
PART_BYTES = 256 * 1024


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


async def in_parts(data: bytes) -> AsyncIterator[bytes]:
    """The test's request sent a slice at a time: the client keeps no copy of its own, so
    what is traced while the chat runs is the relay's."""
    for start in range(0, len(data), PART_BYTES):
        yield data[start : start + PART_BYTES]


def big_text() -> str:
    # Varied text (a base64 image's worth): no string interning or compression helps.
    return random.randbytes(REQUEST_MIB * MIB // 2).hex()


def request_of(kind: str) -> tuple[str, bytes]:
    text = big_text()
    if kind in ("http", "ws"):
        body: dict[str, Any] = chat_body(text)
        if kind == "ws":
            return "ws", orjson.dumps({"type": "chat", "id": "big", **body})
        return "/api/chat/openrouter", orjson.dumps(body)
    messages = [{"role": "user", "content": "Hi" if kind == "v1-tools" else text}]
    openai: dict[str, Any] = {"model": "m", "messages": messages, "stream": True}
    if kind == "v1-tools":
        tool = {"type": "function", "function": {"name": "f", "description": text}}
        openai["tools"] = [tool]
    return "/v1/chat/completions", orjson.dumps(openai)


@pytest.mark.parametrize("kind", ["http", "ws", "v1", "v1-tools"])
async def test_a_running_chat_holds_about_its_requests_size(
    aiohttp_server: Any, make_client: MakeClient, traced: None, kind: str
) -> None:
    async def thinking(request: web.Request, response: web.StreamResponse) -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b": OPENROUTER PROCESSING\n\n"
            await asyncio.sleep(0.05)

    hostile = Hostile(thinking)
    server = await aiohttp_server(hostile.app())
    client = await make_client(openrouter_base_url=str(server.make_url("/v1")))
    path, encoded = request_of(kind)
    size = len(encoded)
    assert size > REQUEST_MIB * MIB
    async with client.ws_connect("/api/chat/ws") as ws:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        if path == "ws":
            await ws.send_str(encoded.decode())
            chat = None
        else:
            chat = asyncio.ensure_future(client.post(path, data=in_parts(encoded)))
        await asyncio.wait_for(hostile.asked.wait(), timeout=20)
        await asyncio.sleep(0.2)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        if chat is not None:
            chat.cancel()
    assert hostile.body_bytes > size  # upstream got it all
    # The relay holds the request once while the chat runs: not twice, not three times.
    assert held < 1.3 * size, f"a running chat holds {held / size:.2f}x its request"
