"""tests/clients.py reads the wire as SPEC writes it, against a scripted WebSocket server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.clients import chat_frame, parse_sse, receive, text_of, until_end, ws_chat

SCRIPT = [
    {"type": "delta", "id": "other", "content": "not mine"},
    {"type": "delta", "id": "c", "content": "Hel"},
    {"type": "delta", "id": "c", "content": "lo"},
    {"type": "done", "id": "c", "finish_reason": "stop"},
    {"type": "delta", "id": "other", "content": "after"},
]


async def scripted_socket(request: web.Request) -> web.WebSocketResponse:
    """Answers the first frame with SCRIPT, echoing the frame back first; then closes."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    first = await ws.receive_str()
    await ws.send_str(orjson.dumps({"type": "echo", "id": "echo", "frame": first}).decode())
    for frame in SCRIPT:
        await ws.send_str(orjson.dumps(frame).decode())
    await ws.close()
    return ws


@pytest.fixture
async def socket_client(aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_get("/ws", scripted_socket)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


def test_chat_frame_is_a_chat_with_the_body_chatbot_ui_posts() -> None:
    frame = orjson.loads(chat_frame("c1", "Hi", temperature=0.2))
    assert (frame["type"], frame["id"]) == ("chat", "c1")
    assert frame["messages"][-1] == {"role": "user", "content": "Hi"}
    assert frame["chatSettings"]["temperature"] == 0.2
    assert "id" not in orjson.loads(chat_frame())


def test_parse_sse_gives_each_event_in_order() -> None:
    body = 'event: delta\ndata: {"content": "a: b"}\n\nevent: done\ndata: {"usage": null}\n\n'
    assert parse_sse(body) == [("delta", {"content": "a: b"}), ("done", {"usage": None})]


async def test_ws_chat_reads_its_own_chat_to_the_end(
    socket_client: TestClient[Any, Any],
) -> None:
    seen: list[str] = []
    async with socket_client.ws_connect("/ws") as ws:
        frames = await ws_chat(ws, "c", "Hi", seen=seen)
        # The frames of another chat are dropped, but kept in `seen`; reading stops at done.
        assert text_of(frames) == "Hello" and frames[-1]["type"] == "done"
        assert [orjson.loads(text)["id"] for text in seen] == ["echo", "other", "c", "c", "c"]
        assert orjson.loads(orjson.loads(seen[0])["frame"])["id"] == "c"
        assert (await receive(ws))["content"] == "after"


async def test_a_close_instead_of_a_frame_fails_the_read(
    socket_client: TestClient[Any, Any],
) -> None:
    async with socket_client.ws_connect("/ws") as ws:
        await ws.send_str(chat_frame("never"))
        with pytest.raises(AssertionError, match="CLOSE"):
            await until_end(ws, "never")
