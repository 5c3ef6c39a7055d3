"""A POST client that accepts no byte of its answer is dropped after the write timeout
(60 s by default) and its chat stopped, so it cannot hold an upstream connection forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from tests.backpressure import (
    ANSWER_BYTES,
    huge_reply,
    post_raw,
    slow_reader,
    stalled,
)
from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter


def first_chat_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The fields of the first `chat end` line logged."""
    return vars(next(r for r in caplog.records if r.name == "server.chat"))


async def test_a_client_that_reads_nothing_is_dropped_and_its_chat_stopped(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.chat")
    client = await make_client(write_timeout_s=1.0)
    reply, steps = huge_reply()
    fake_openrouter.script(reply)
    reader, writer = await slow_reader(client)
    body = orjson.dumps(chat_body())
    post_raw(writer, "/api/chat/openrouter", body)
    await stalled(steps)
    # Upstream is closed once the client has accepted nothing for the write timeout.
    await fake_openrouter.requests[0].wait_dropped_by_relay(timeout_s=10)

    # And the client's connection was dropped: it never gets a complete answer.
    received = 0
    try:
        async with asyncio.timeout(10):
            while read := await reader.read(1 << 20):
                received += len(read)
    except ConnectionResetError:
        pass
    writer.close()
    assert 0 < received < ANSWER_BYTES
    # Its log line says the server dropped it (408), not that the client cancelled.
    line = first_chat_line(caplog)
    assert (line["status"], line["outcome"], line["cancelled"]) == (408, "error", False)

    # Nothing else was hurt: the next chat runs to its end.
    async with client.post("/api/chat/openrouter", data=orjson.dumps(chat_body())) as response:
        assert (response.status, await response.text()) == (200, "Hello")


async def test_a_client_that_reads_slowly_but_steadily_is_not_dropped(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(write_timeout_s=1.0)
    reply, _ = huge_reply()
    fake_openrouter.script(reply)
    async with client.post("/api/chat/openrouter", data=orjson.dumps(chat_body())) as response:
        assert response.status == 200
        total = 0
        loop = asyncio.get_running_loop()
        slow_until = loop.time() + 3.0
        # Three write timeouts of reading a little, often; then the rest at full speed.
        async for piece in response.content.iter_any():
            total += len(piece)
            if loop.time() < slow_until:
                await asyncio.sleep(0.1)
    assert total == ANSWER_BYTES


async def test_a_v1_client_that_reads_nothing_is_dropped_and_its_chat_stopped(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.chat")
    client = await make_client(write_timeout_s=1.0)
    reply, steps = huge_reply()
    fake_openrouter.script(reply)
    reader, writer = await slow_reader(client)
    body = orjson.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    post_raw(writer, "/v1/chat/completions", body)
    await stalled(steps)
    await fake_openrouter.requests[0].wait_dropped_by_relay(timeout_s=10)
    received = b""
    try:
        async with asyncio.timeout(10):
            while read := await reader.read(1 << 20):
                received += read[-64:]
    except ConnectionResetError:
        pass
    writer.close()
    assert not received.endswith(b"data: [DONE]\n\n")  # never a complete answer
    line = first_chat_line(caplog)
    assert (line["transport"], line["status"], line["outcome"], line["cancelled"]) == (
        "v1",
        408,
        "error",
        False,
    )
