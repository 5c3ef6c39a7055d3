"""What errors say, whatever upstream or a client sends: no Python repr, a sensible status for
an impossible one, and no `100 Continue` for a body that is refused anyway (issue 21.14)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter, Reply, chunk, event
from tests.security.hostile_upstream import RawUpstream

CHAT = "/api/chat/openrouter"


@pytest.mark.parametrize(
    "error", [["bad", {"x": 1}], True, {"message": ["not", "text"]}, 7.5, {"nested": None}]
)
async def test_an_error_that_is_not_text_is_said_without_python_repr(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, error: Any
) -> None:
    client = await make_client()
    body = orjson.dumps({"error": error})
    fake_openrouter.script(Reply(status=400, steps=[body]))
    fake_openrouter.script(Reply(steps=[event(chunk("Hi")), event({"error": error})]))
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 400
        message = (await response.json())["message"]
    assert message == "OpenRouter answered with status 400"
    async with client.post(CHAT, data=orjson.dumps(chat_body()), headers=SSE) as response:
        said = await response.text()
    assert said.endswith('"message":"OpenRouter reported an error"}\n\n'), said[-200:]
    for text in (message, said):
        assert "['" not in text and "True" not in text and "{'" not in text


SSE = {"Accept": "text/event-stream"}


@pytest.mark.parametrize("status", [999, 600, 101, 199])
async def test_an_impossible_upstream_status_is_a_502(make_client: MakeClient, status: int) -> None:
    answer = f"HTTP/1.1 {status} Odd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    async with RawUpstream(answer) as raw:
        client = await make_client(openrouter_base_url=raw.url)
        async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
            assert response.status == 502
            message = (await response.json())["message"]
        for stream in (False, True):
            body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
            async with client.post("/v1/chat/completions", data=orjson.dumps(body)) as response:
                assert response.status == 502
                assert (await response.json())["error"]["message"] == message
        async with client.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(orjson.dumps({"id": "s", **chat_body()}).decode())
            frame = await ws.receive_json(timeout=5)
            assert (frame["type"], frame["status"], frame["message"]) == ("error", 502, message)
    assert "OpenRouter" in message and "Odd" not in message, message


async def test_a_body_announced_over_the_limit_gets_413_and_no_100_continue(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client()
    assert client.port is not None
    # Every route that takes a body, those added later included.
    paths = sorted(
        (route.method, re.sub(r"\{[^}]*\}", "x", route.resource.canonical))
        for route in client.app.router.routes()
        if route.method in ("POST", "PUT", "PATCH") and route.resource is not None
    )
    assert ("POST", CHAT) in paths and ("POST", "/v1/chat/completions") in paths
    for method, path in paths:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Expect: 100-continue\r\nContent-Length: 100000000000\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        # Inviting the body would have the client send 100 GB to be thrown away.
        assert head.startswith(b"HTTP/1.1 413"), (path, head)
        length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
        body = orjson.loads(await asyncio.wait_for(reader.readexactly(length), timeout=5))
        said = body["error"]["message"] if path.startswith("/v1/") else body["message"]
        assert said == f"The request body is larger than {16 * 1024 * 1024} bytes"
        writer.close()
    # A body within the limit is still invited, and answered.
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    chat = orjson.dumps(chat_body())
    writer.write(
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(chat)}\r\nConnection: close\r\n\r\n".encode()
    )
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(chat)
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"Hello\r\n0\r\n\r\n")
    writer.close()
    assert len(fake_openrouter.requests) == 1
