"""A hostile upstream can end its own chat, never take the process's memory or loop (SPEC
"Limits"), never redirect the user's messages, and never get the key or its own internals
into what the user sees or the log."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.clients import chat_frame, parse_sse, until_end
from tests.conftest import SERVER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import (
    FakeOpenRouter,
    Reply,
    Step,
    chunk,
    error_reply,
    event,
    sse_reply,
)
from tests.security.hostile_upstream import Hostile, RawUpstream, endless, gzip_bomb

CHAT = "/api/chat/openrouter"
SSE = {"Accept": "text/event-stream"}
MIB = 1024 * 1024


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


async def hostile_client(
    aiohttp_server: Any, make_client: MakeClient, hostile: Hostile, **kw: Any
) -> Client:
    server = await aiohttp_server(hostile.app())
    return await make_client(openrouter_base_url=str(server.make_url("/v1")), **kw)


async def sse_chat(client: Client) -> tuple[int, str]:
    async with client.post(CHAT, data=orjson.dumps(chat_body()), headers=SSE) as response:
        return response.status, await response.text()


def message_of(status: int, body: str) -> tuple[int, str]:
    """The error's status and message, before the 200 (JSON) or after it (SSE error event)."""
    if status != 200:
        return status, str(orjson.loads(body)["message"])
    kind, data = parse_sse(body)[-1]
    assert kind == "error", body[-300:]
    return int(data["status"]), str(data["message"])


class LoopWatch:
    """The longest the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest_s = max(self.longest_s, now - last)
            last = now

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_data_lines_without_a_blank_line_end_the_chat_with_bounded_memory(
    aiohttp_server: Any, make_client: MakeClient, traced: None
) -> None:
    line = b"data: " + b"x" * 1000 + b"\n"
    hostile = Hostile(lambda request, response: endless(line * 64, 200 * MIB))
    client = await hostile_client(aiohttp_server, make_client, hostile)
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    status, message = message_of(*await sse_chat(client))
    peak = tracemalloc.get_traced_memory()[1] - start
    assert (status, message) == (502, "OpenRouter sent an event larger than 1 MiB")
    assert hostile.sent_bytes < 50 * MIB  # the relay hung up long before the 200 MB
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"


async def test_one_line_that_never_ends_ends_the_chat(
    aiohttp_server: Any, make_client: MakeClient
) -> None:
    hostile = Hostile(lambda request, response: endless(b"data: " + b"y" * 65530, 100 * MIB))
    client = await hostile_client(aiohttp_server, make_client, hostile)
    assert message_of(*await sse_chat(client)) == (
        502,
        "OpenRouter sent an event larger than 1 MiB",
    )


async def test_a_gzip_bomb_ends_the_chat_and_never_blocks_the_loop(
    aiohttp_server: Any, make_client: MakeClient, traced: None
) -> None:
    bomb = gzip_bomb(b": keep-alive\n", 256 * MIB)
    assert len(bomb) < MIB

    async def answer(request: web.Request, response: web.StreamResponse) -> AsyncIterator[bytes]:
        yield bomb

    hostile = Hostile(
        answer, headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
    )
    client = await hostile_client(aiohttp_server, make_client, hostile, max_body_bytes=4 * MIB)
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    with LoopWatch() as loop:
        status, message = message_of(*await sse_chat(client))
    peak = tracemalloc.get_traced_memory()[1] - start
    assert status == 502
    assert message == f"OpenRouter sent a compressed answer larger than {4 * MIB} bytes"
    assert loop.longest_s < 1.0, f"the loop stood still for {loop.longest_s:.2f} s"
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"


async def test_a_compression_the_relay_does_not_read_is_502_without_the_header(
    aiohttp_server: Any, make_client: MakeClient
) -> None:
    async def answer(request: web.Request, response: web.StreamResponse) -> AsyncIterator[bytes]:
        yield b"\x1b\x00\x00"

    headers = {"Content-Type": "text/event-stream", "Content-Encoding": "br-x-secret"}
    client = await hostile_client(aiohttp_server, make_client, Hostile(answer, headers=headers))
    status, message = message_of(*await sse_chat(client))
    assert status == 502 and "compressed" in message and "secret" not in message


@pytest.mark.parametrize(
    ("header", "seconds"), [("1e400", 86400), ("nan", None), ("-5", 0), ("7.4", 7)]
)
async def test_any_retry_after_is_a_429_never_a_500(
    client: Client, fake_openrouter: FakeOpenRouter, header: str, seconds: int | None
) -> None:
    fake_openrouter.script(error_reply(429, "Slow down", headers={"Retry-After": header}))
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 429
        assert response.headers.get("Retry-After") == (None if seconds is None else str(seconds))
    fake_openrouter.script(error_reply(429, "Slow down", headers={"Retry-After": header}))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("r"))
        (frame,) = await until_end(ws, "r")
    assert (frame["status"], frame.get("retry_after")) == (429, seconds)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(
    aiohttp_server: Any, make_client: MakeClient, fake_openrouter: FakeOpenRouter, status: int
) -> None:
    elsewhere = FakeOpenRouter()
    server = await aiohttp_server(elsewhere.app())
    target = str(server.make_url("/api/v1/chat/completions"))
    fake_openrouter.script(Reply(status=status, headers={"Location": target}))
    client = await make_client()
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 502
        message = (await response.json())["message"]
    assert "redirect" in message and str(server.port) not in message
    assert elsewhere.requests == []  # the user's messages went nowhere else


async def test_a_key_echoed_in_finish_reason_or_usage_reaches_no_frame_or_log(
    client: Client, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    escaped = "".join(f"\\u{ord(c):04x}" for c in SERVER_KEY)  # the key, spelt in JSON escapes

    def echoing() -> Reply:
        return Reply(
            steps=[
                event(chunk("Hi")),
                event(chunk(finish_reason=SERVER_KEY)),
                event(chunk(finish_reason="stop", usage={"prompt_tokens": 1, "note": SERVER_KEY})),
                event(orjson.dumps(chunk(usage={"echo": "@@"})).decode().replace("@@", escaped)),
                event("[DONE]"),
            ]
        )

    fake_openrouter.script(echoing(), echoing(), echoing())
    said = [await (await client.post(CHAT, data=orjson.dumps(chat_body()))).text()]
    said.append(await (await client.post(CHAT, data=orjson.dumps(chat_body()), headers=SSE)).text())
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("k"))
        said += [orjson.dumps(f).decode() for f in await until_end(ws, "k")]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert said[0] == "Hi" and "[redacted]" in said[1]
    assert "chat end" in logged
    for text in [*said, logged]:
        assert SERVER_KEY not in text and SERVER_KEY[-12:] not in text


@pytest.mark.parametrize(
    "echo",
    [SERVER_KEY.upper(), " ".join(SERVER_KEY), "-".join(SERVER_KEY.upper())],
    ids=["upper", "spaced", "dashed-upper"],
)
async def test_a_disguised_key_in_an_error_is_caught(
    client: Client, fake_openrouter: FakeOpenRouter, echo: str
) -> None:
    fake_openrouter.script(error_reply(401, f"Key {echo} is not valid"))
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 401
        assert (await response.json())["message"] == "Key [redacted] is not valid"


BROKEN_HTTP = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Leak: \x01secret-bytes\r\n\r\n",
    b"HTTP/1.1 2OO NOT-A-STATUS secret-bytes\r\n\r\n",
    b"NOT HTTP AT ALL secret-bytes\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
    b"zz secret-bytes\r\n",
]


@pytest.mark.parametrize("answer", BROKEN_HTTP, ids=["header", "status", "garbage", "chunk"])
async def test_error_messages_carry_no_url_or_raw_bytes(
    make_client: MakeClient, answer: bytes
) -> None:
    async with RawUpstream(answer) as raw:
        client = await make_client(openrouter_base_url=raw.url)
        async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
            assert response.status == 502
            message = (await response.json())["message"]
        async with client.get("/api/models") as response:
            assert response.status == 502
            models_message = (await response.json())["message"]
    for text in (message, models_message):
        assert "OpenRouter" in text
        for internal in ("127.0.0.1", str(raw.port), "/v1", "secret", "X-Leak", "\\x01"):
            assert internal not in text, text


@pytest.mark.parametrize("transport", ["http", "ws", "v1"])
async def test_a_chat_held_by_many_tiny_parts_holds_about_its_size(
    aiohttp_server: Any, make_client: MakeClient, traced: None, transport: str
) -> None:
    async def thinking(request: web.Request, response: web.StreamResponse) -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b": OPENROUTER PROCESSING\n\n"
            await asyncio.sleep(0.05)

    hostile = Hostile(thinking)
    client = await hostile_client(aiohttp_server, make_client, hostile)
    body = chat_body()
    body["messages"] = [{"role": "user", "content": [{"type": ""}] * 74_884}]
    encoded = orjson.dumps(body)
    assert 0.8 * MIB < len(encoded) < 0.9 * MIB
    frame = orjson.dumps({"type": "chat", "id": "big", **body}).decode()
    openai_body = orjson.dumps({"model": "m", "messages": body["messages"], "stream": True})
    async with client.ws_connect("/api/chat/ws") as ws:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        if transport == "ws":
            await ws.send_str(frame)
            chat = None
        elif transport == "v1":
            chat = asyncio.ensure_future(client.post("/v1/chat/completions", data=openai_body))
        else:
            chat = asyncio.ensure_future(client.post(CHAT, data=encoded, headers=SSE))
        await asyncio.wait_for(hostile.asked.wait(), timeout=5)
        await asyncio.sleep(0.1)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        if chat is not None:
            chat.cancel()
    # Decoded, those parts take 16 MB; sent on as their JSON, a few times the body's 0.86 MiB.
    assert held < 5 * MIB, f"a running chat holds {held / MIB:.1f} MiB"


async def test_a_chat_that_never_gets_a_pooled_connection_is_503_not_504(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # The first chat holds the only connection: a model thinking aloud, never silent.
    pauses: list[Step] = [b": OPENROUTER PROCESSING\n\n", 0.2]
    thinking = Reply(steps=pauses * 8 + sse_reply(["done"]).steps)
    fake_openrouter.script(thinking)
    client = await make_client(upstream_max_connections=1, upstream_timeout_s=0.5)
    first = asyncio.ensure_future(client.post(CHAT, data=orjson.dumps(chat_body()), headers=SSE))
    await asyncio.wait_for(fake_openrouter.started.wait(), timeout=2)
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 503
        assert await response.json() == {"message": "Too many chats at once on this server"}
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("q"))
        (frame,) = await until_end(ws, "q")
    assert (frame["status"], frame["message"]) == (503, "Too many chats at once on this server")
    response = await first
    assert response.status == 200 and parse_sse(await response.text())[-1][0] == "done"
    assert len(fake_openrouter.requests) == 1  # the queued chats never reached upstream


async def test_a_refused_connection_says_so_without_the_address(make_client: MakeClient) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{port}/v1")
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 502
        message = (await response.json())["message"]
    assert message == "Could not reach OpenRouter: Connection refused"
