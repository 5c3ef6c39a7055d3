"""Who may follow a chat, and how: the WebSocket's resume by the HTTP resume's rule, a
resume from past a chat's end, signing in again, and the limits on SSE listeners."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from tests.backpressure import ANSWER_BYTES, huge_reply, slow_reader, stalled
from tests.clients import chat_frame, parse_sse, receive, resume_frame, two_processes, until_end
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, USAGE, FakeOpenRouter, Reply, chunk, event

HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])
ACCESS_TOKEN = "listeners-access-token-0123456789"


def held_reply(gate: asyncio.Event) -> Reply:
    """`a`, then nothing until the test opens `gate`, then `b` and the end."""
    return Reply(
        steps=[
            COMMENT,
            event(chunk("a")),
            gate,
            event(chunk("b")),
            event(chunk(finish_reason="stop", usage=USAGE)),
            event("[DONE]"),
        ]
    )


async def resumable_post(client: Client) -> tuple[aiohttp.ClientResponse, str]:
    body = orjson.dumps({**chat_body(), "resumable": True})
    response = await client.post("/api/chat/openrouter", data=body)
    assert response.status == 200
    return response, response.headers["X-Chat-Id"]


@pytest.mark.parametrize("processes", ["one", "two sharing Redis"])
async def test_a_resume_from_past_the_last_seq_ends_with_the_final_frame(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    processes: str,
    request: pytest.FixtureRequest,
) -> None:
    if processes == "one":
        runner = follower = await make_client()
    else:
        runner, follower = await two_processes(make_client, request.getfixturevalue("redis_url"))
    gate = asyncio.Event()
    fake_openrouter.script(held_reply(gate))
    async with runner.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("past"))
        assert (await receive(ws))["content"] == "a"
        async with follower.ws_connect("/api/chat/ws") as other:
            await other.send_str(resume_frame("past", 99))
            gate.set()
            # Nothing after seq 99 ever comes, but the chat's end does: the page learns it ended.
            ended = await until_end(other, "past", timeout_s=15)
            assert ended == [await receive(ws), await receive(ws)][1:]
            assert ended[-1]["type"] == "done" and ended[-1]["finish_reason"] == "stop"
            # And the same for a chat that has ended already.
            await other.send_str(resume_frame("past", 99))
            assert await until_end(other, "past", timeout_s=15) == ended


async def test_a_websocket_resumes_an_anonymous_post_chat_by_its_id(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    # No session yet: the chat belongs to whoever holds its id, on either transport.
    response, chat_id = await resumable_post(client)
    assert await response.content.readany() == b"started"
    response.close()
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame(chat_id, 0))
        assert await receive(ws) == {"type": "delta", "id": chat_id, "seq": 1, "content": "started"}
        await ws.send_str(orjson.dumps({"type": "cancel", "id": chat_id}).decode())
        assert (await until_end(ws, chat_id))[-1]["finish_reason"] == "cancelled"
    await fake_openrouter.requests[0].wait_dropped_by_relay(5)


async def test_signing_in_again_keeps_the_sessions_chats(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(access_token=ACCESS_TOKEN)
    login = orjson.dumps({"token": ACCESS_TOKEN})
    assert (await client.post("/api/login", data=login)).status == 204
    assert (await client.get("/api/profile")).status == 200
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("mine"))
        assert (await receive(ws))["content"] == "started"
    assert (await client.post("/api/login", data=login)).status == 204
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("mine", 0))
        assert (await receive(ws))["content"] == "started"
    assert (await client.delete("/api/chats/mine")).status == 204
    await fake_openrouter.requests[0].wait_dropped_by_relay(5)


async def test_sse_listeners_count_against_the_sockets_per_client(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(max_sockets_per_client=2)
    fake_openrouter.script(HANG)
    response, chat_id = await resumable_post(client)
    assert await response.content.readany() == b"started"
    response.close()
    path = f"/api/chats/{chat_id}/events"
    first, second = await client.get(path), await client.get(path)
    assert (first.status, second.status) == (200, 200)
    async with client.get(path) as refused:
        assert refused.status == 429
        assert "listeners" in (await refused.json())["message"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused_socket:
        await client.ws_connect("/api/chat/ws")  # one budget for both kinds
    assert refused_socket.value.status == 429
    # Once the chat ends its listeners end, and their slots come back.
    assert (await client.delete(f"/api/chats/{chat_id}")).status == 204
    for listener in (first, second):
        assert parse_sse(await listener.text())[-1][0] == "done"
    async with client.get(path) as again:
        assert again.status == 200
        assert parse_sse(await again.text())[-1][0] == "done"


async def test_a_listener_that_reads_nothing_is_dropped(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(write_timeout_s=1.0)
    reply, steps = huge_reply()
    fake_openrouter.script(reply)
    response, chat_id = await resumable_post(client)
    response.close()  # detached: the chat goes on for whoever resumes it
    reader, writer = await slow_reader(client)
    writer.write(b"GET /api/chats/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % chat_id.encode())
    # The chat waits for its listener (backpressure) until the server drops the listener
    # that accepted nothing for the write timeout; then upstream runs to its end.
    await stalled(steps)
    upstream = fake_openrouter.requests[0]
    await asyncio.wait_for(upstream.ended.wait(), 30)
    assert not upstream.disconnected
    received = 0
    try:
        async with asyncio.timeout(15):
            while read := await reader.read(1 << 20):
                received += len(read)
    except ConnectionResetError:
        pass
    writer.close()
    assert 0 < received < ANSWER_BYTES
    # The chat, no longer held back by it, ran to its end for whoever follows.
    async with client.get(f"/api/chats/{chat_id}/events?after=1000000") as events:
        [(kind, final)] = parse_sse(await events.text())
    assert (kind, final["finish_reason"]) == ("done", "stop")
