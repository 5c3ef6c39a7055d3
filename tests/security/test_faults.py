"""Upstream faults end that one chat with SPEC's status and a clear message; serving goes on."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.clients import parse_sse, ws_chat
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, error_reply, event

CHAT = "/api/chat/openrouter"
HI = event(chunk("Hi"))

# (fault, upstream reply, status, words the message must hold, whether text came first)
FAULTS: list[tuple[str, Reply, int, str, bool]] = [
    ("5xx", error_reply(503, "Provider overloaded"), 503, "Provider overloaded", False),
    ("hang before", Reply(steps=[COMMENT, "hang"]), 504, "sent nothing", False),
    ("hang mid", Reply(steps=[HI, "hang"]), 504, "sent nothing", True),
    ("drop before", Reply(steps=["drop"]), 502, "closed the stream", False),
    ("drop mid", Reply(steps=[HI, "drop"]), 502, "closed the stream", True),
    ("bad json", Reply(steps=[event("{not json")]), 502, "not valid JSON", False),
    ("bad json mid", Reply(steps=[HI, event('{"choices": [')]), 502, "not valid JSON", True),
    ("not sse", Reply(steps=[b"<html>maintenance</html>"]), 502, "closed the stream", False),
]
IDS = [f[0] for f in FAULTS]


@pytest.fixture
async def quick_client(make_client: MakeClient) -> Client:
    return await make_client(upstream_timeout_s=0.5)


async def sse_chat(client: Client, text: str = "Hello") -> tuple[int, str]:
    headers = {"Accept": "text/event-stream"}
    async with client.post(CHAT, data=orjson.dumps(chat_body(text)), headers=headers) as r:
        return r.status, await r.text()


@pytest.mark.parametrize(("name", "reply", "status", "words", "text_first"), FAULTS, ids=IDS)
async def test_http_fault_ends_the_chat_and_the_server_serves_on(
    quick_client: Client,
    fake_openrouter: FakeOpenRouter,
    name: str,
    reply: Reply,
    status: int,
    words: str,
    text_first: bool,
) -> None:
    fake_openrouter.script(reply)
    got, body = await sse_chat(quick_client)
    if text_first:
        assert got == 200
        events = parse_sse(body)
        assert events[0] == ("delta", {"seq": 1, "content": "Hi"})
        kind, data = events[-1]
        assert (kind, data["status"]) == ("error", status)
        message = data["message"]
    else:
        assert got == status
        message = orjson.loads(body)["message"]
    assert words in message and "Traceback" not in message
    got, body = await sse_chat(quick_client, "next one")
    assert got == 200 and parse_sse(body)[-1][0] == "done"


@pytest.mark.parametrize(("name", "reply", "status", "words", "text_first"), FAULTS, ids=IDS)
async def test_websocket_fault_ends_the_chat_and_the_socket_serves_on(
    quick_client: Client,
    fake_openrouter: FakeOpenRouter,
    name: str,
    reply: Reply,
    status: int,
    words: str,
    text_first: bool,
) -> None:
    fake_openrouter.script(reply)
    async with quick_client.ws_connect("/api/chat/ws") as ws:
        frames = await ws_chat(ws, "bad", "still here")
        assert [f["type"] for f in frames] == (["delta", "error"] if text_first else ["error"])
        assert (frames[-1]["id"], frames[-1]["status"]) == ("bad", status)
        assert words in frames[-1]["message"]
        frames = await ws_chat(ws, "good", "still here")
        assert frames[-1]["type"] == "done"
        assert "".join(f["content"] for f in frames[:-1]) == "still here"


async def test_refused_connection_is_502_and_the_server_serves_on(
    make_client: MakeClient,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{port}/api/v1")
    got, body = await sse_chat(client)
    assert got == 502 and orjson.loads(body)["message"].startswith("Could not reach OpenRouter: ")
    async with client.ws_connect("/api/chat/ws") as ws:
        for n in range(2):  # the socket stays open for the next try
            frames = await ws_chat(ws, f"c{n}", "still here")
            assert [(f["type"], f["status"]) for f in frames] == [("error", 502)]
            assert frames[0]["message"].startswith("Could not reach OpenRouter: ")
    async with client.get("/healthz") as r:
        assert r.status == 200
