"""A client that stops reading holds the relay back: upstream is paused, not buffered in full.

aiohttp's WebSocket writer and HTTP payload writer wait for the transport to drain once
64 KiB are pending; the relay awaits each write before reading upstream again, so upstream
stalls at what the kernel buffers and a couple of MiB of read buffer hold. Then the client
reads on and gets every byte, in order.
"""

from __future__ import annotations

import asyncio
import os

import orjson

from tests.backpressure import (
    ANSWER_BYTES,
    EVENTS,
    STALL_LIMIT_BYTES,
    huge_reply,
    piece,
    post_raw,
    slow_reader,
    stalled,
)
from tests.conftest import Client, chat_body
from tests.fake_openrouter import FakeOpenRouter


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    header = b"\x81" + (
        bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(size)


def assert_whole_answer(text: str) -> None:
    assert len(text) == ANSWER_BYTES
    assert text == "".join(piece(n) for n in range(EVENTS))


async def test_websocket_client_that_stops_reading_pauses_upstream(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply, steps = huge_reply()
    fake_openrouter.script(reply)
    reader, writer = await slow_reader(client)
    writer.write(
        b"GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.write(masked_text_frame(orjson.dumps({"id": "big", **chat_body()}).decode()))

    sent = await stalled(steps)
    assert 0 < sent < STALL_LIMIT_BYTES, sent

    pieces: list[str] = []
    while True:
        opcode, payload = await asyncio.wait_for(read_ws_frame(reader), timeout=10)
        if opcode != 0x1:
            continue
        frame = orjson.loads(payload)
        assert frame["id"] == "big" and frame["type"] in ("delta", "done"), frame
        if frame["type"] == "done":
            break
        pieces.append(frame["content"])
    writer.close()
    assert_whole_answer("".join(pieces))


async def test_http_client_that_stops_reading_pauses_upstream(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply, steps = huge_reply()
    fake_openrouter.script(reply)
    reader, writer = await slow_reader(client)
    body = orjson.dumps(chat_body())
    post_raw(writer, "/api/chat/openrouter", body)

    sent = await stalled(steps)
    assert 0 < sent < STALL_LIMIT_BYTES, sent

    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    text = bytearray()
    while True:
        size = int((await asyncio.wait_for(reader.readline(), timeout=10)).strip(), 16)
        text += await reader.readexactly(size + 2)
        del text[-2:]
        if size == 0:
            break
    writer.close()
    assert_whole_answer(text.decode())
