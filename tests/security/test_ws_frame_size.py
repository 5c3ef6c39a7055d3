"""A WebSocket frame is held to MAX_BODY_BYTES exactly like an HTTP body: one of exactly the
limit is a chat, one byte more is refused (close 1009 / 413); a frame far over the limit
gets its 1009 close frame before the connection ends, not a TCP reset."""

from __future__ import annotations

import asyncio
import base64
import os

import aiohttp
import orjson
import pytest

from tests.conftest import Client, MakeClient, chat_body
from tests.security.raw_http import ServeFn

LIMIT = 64 * 1024
CLOSE_MESSAGE_TOO_BIG = 1009


def padded_chat(size: int) -> str:
    """A chat frame of exactly `size` bytes: trailing spaces are still valid JSON."""
    text = orjson.dumps({"id": "big", **chat_body()}).decode()
    return text + " " * (size - len(text))


async def chat_over_ws(client: Client, frame: str) -> tuple[str, str]:
    """Send one frame; the text of its chat and how it ended, or ("", close code)."""
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(frame)
        text = ""
        while True:
            message = await ws.receive(timeout=5)
            if message.type is not aiohttp.WSMsgType.TEXT:
                return "", f"close {ws.close_code}"
            reply = orjson.loads(message.data)
            if reply["type"] != "delta":
                return text, reply["type"]
            text += reply["content"]


async def test_a_frame_of_exactly_the_limit_is_a_chat_like_a_body_of_that_size(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_body_bytes=LIMIT)
    body = padded_chat(LIMIT)
    assert len(body.encode()) == LIMIT
    async with client.post("/api/chat/openrouter", data=body) as response:
        assert (response.status, await response.text()) == (200, "Hello")
    assert await chat_over_ws(client, body) == ("Hello", "done")


async def test_one_byte_over_the_limit_is_refused_on_both_transports(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_body_bytes=LIMIT)
    body = padded_chat(LIMIT + 1)
    async with client.post("/api/chat/openrouter", data=body) as response:
        assert response.status == 413
    assert await chat_over_ws(client, body) == ("", f"close {CLOSE_MESSAGE_TOO_BIG}")


def masked_frame(payload: bytes) -> bytes:
    # A client must mask; an all-zero mask leaves the payload as it is.
    return bytes([0x81, 0x80 | 127]) + len(payload).to_bytes(8, "big") + bytes(4) + payload


async def raw_oversized_frame(port: int, size: int) -> tuple[bytes, bytes]:
    """Open a WebSocket by hand and send one text frame of `size` bytes at full speed;
    the first frame the server answers, and everything after it until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.write(masked_frame(b"x" * size))
    await writer.drain()  # a reset would fail the send already
    first = await asyncio.wait_for(reader.readexactly(4), timeout=10)
    rest = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return first, rest


@pytest.mark.parametrize("size", [4 * 1024 * 1024, 1024 * 1024 + 1])
async def test_a_frame_far_over_the_limit_gets_its_1009_close_not_a_reset(
    serve: ServeFn, size: int
) -> None:
    port = await serve(max_body_bytes=1024 * 1024)
    first, rest = await raw_oversized_frame(port, size)
    # A close frame (0x88) with two bytes of payload: 1009, message too big.
    assert first == b"\x88\x02" + CLOSE_MESSAGE_TOO_BIG.to_bytes(2, "big")
    assert rest == b""


async def test_a_frame_far_over_the_limit_gets_1009_on_any_server_that_runs_the_app(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_body_bytes=1024 * 1024)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str("x" * (4 * 1024 * 1024))
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == CLOSE_MESSAGE_TOO_BIG
