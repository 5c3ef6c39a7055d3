"""Durable chats over real sockets: a chat outlives its connection and is resumed exactly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.clients import chat_frame, parse_sse, receive, resume_frame, text_of, until_end
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply

WORDS = [f" w{n}" for n in range(30)]
ANSWER = "".join(WORDS)
HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])


def assert_exact(frames: list[dict[str, Any]], after: int = 0) -> None:
    """Seqs go up by one from `after` + 1 per event (merged frames skip the merged ones)."""
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)) and (not seqs or seqs[0] > after), seqs


@pytest.fixture
async def other_session(client: Client) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser: its own cookie jar, so its own session."""
    async with aiohttp.ClientSession(
        base_url=str(client.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


async def test_resume_after_the_last_seq_seen_gives_the_rest_without_gap_or_duplicate(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.02))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("a"))
        before = [await receive(ws) for _ in range(5)]
    # The socket is gone (a reload, a network change); the chat goes on without it.
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("a", before[-1]["seq"]))
        after = await until_end(ws, "a")
    assert_exact(before + after)
    assert text_of(before + after) == ANSWER
    assert after[-1]["type"] == "done" and after[-1]["finish_reason"] == "stop"
    assert len(fake_openrouter.requests) == 1


async def test_an_ended_chat_is_replayed_with_its_final_frame(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.005))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("b"))
        assert (await receive(ws))["seq"] == 1
    await asyncio.wait_for(fake_openrouter.requests[0].ended.wait(), timeout=5)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("b", 0))
        frames = await until_end(ws, "b")
        await ws.send_str(resume_frame("b", frames[-1]["seq"] - 3))
        tail = await until_end(ws, "b")
    assert text_of(frames) == ANSWER and frames[-1]["type"] == "done"
    assert_exact(frames)
    assert tail[-1] == frames[-1] and text_of(tail) == "".join(WORDS[-2:])


async def test_two_listeners_follow_one_chat(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.02))
    async with (
        client.ws_connect("/api/chat/ws") as first,
        client.ws_connect("/api/chat/ws") as second,
    ):
        await first.send_str(chat_frame("t"))
        assert (await receive(first))["seq"] == 1
        await second.send_str(resume_frame("t", 0))
        one, two = await asyncio.gather(until_end(first, "t"), until_end(second, "t"))
    assert text_of(two) == ANSWER
    assert WORDS[0] + text_of(one) == ANSWER
    assert one[-1] == two[-1]


async def test_another_session_gets_404_as_for_an_unknown_id(
    client: Client, fake_openrouter: FakeOpenRouter, other_session: aiohttp.ClientSession
) -> None:
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("mine"))
        assert (await receive(ws))["content"] == "started"
        async with other_session.ws_connect("/api/chat/ws") as theirs:
            for chat_id in ("mine", "nobody"):
                await theirs.send_str(resume_frame(chat_id, 0))
                frame = await receive(theirs)
                assert frame == {
                    "type": "error",
                    "id": chat_id,
                    "status": 404,
                    "message": f"No chat with id {chat_id} to resume",
                }
            # Their cancel of it is not an error (as for any unknown id), and stops nothing.
            await theirs.send_str('{"type": "cancel", "id": "mine"}')
        async with other_session.delete("/api/chats/mine") as deleted:
            assert deleted.status == 404
        async with other_session.get("/api/chats/mine/events") as events:
            assert events.status == 404
            assert await events.json() == {"message": "No chat with id mine to resume"}
        assert not fake_openrouter.requests[0].ended.is_set()
        await ws.send_str('{"type": "cancel", "id": "mine"}')
        assert (await receive(ws))["finish_reason"] == "cancelled"


async def test_an_abandoned_chat_ends_when_the_resume_window_closes(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # Margins of a second: a loaded machine may stall a test's own steps by a few hundred ms.
    client = await make_client(resume_window_s=1.0)
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("gone"))
        assert (await receive(ws))["content"] == "started"
    upstream = fake_openrouter.requests[0]
    await asyncio.sleep(0.1)
    assert not upstream.ended.is_set()
    await upstream.wait_dropped_by_relay(5)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("gone", 0))
        frames = await until_end(ws, "gone")
    assert text_of(frames) == "started"
    assert frames[-1] == {
        "type": "done",
        "id": "gone",
        "seq": 2,
        "finish_reason": "cancelled",
        "usage": None,
    }


async def test_a_listener_back_within_the_window_keeps_the_chat(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(resume_window_s=3.0)
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.04))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("w"))
        first = await receive(ws)
    await asyncio.sleep(0.3)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("w", first["seq"]))
        frames = await until_end(ws, "w")
    assert first["content"] + text_of(frames) == ANSWER
    assert frames[-1]["finish_reason"] == "stop"


async def test_an_ended_chat_is_forgotten_after_the_retention(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(chat_retention_s=1.0)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("r", "short answer"))
        assert text_of(await until_end(ws, "r")) == "short answer"
        await ws.send_str(resume_frame("r", 0))
        assert text_of(await until_end(ws, "r")) == "short answer"
        await asyncio.sleep(1.5)
        await ws.send_str(resume_frame("r", 0))
        frame = await receive(ws)
    assert (frame["type"], frame["status"]) == ("error", 404)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "resume", "id": "x"}',
        '{"type": "resume", "id": "x", "after": -1}',
        '{"type": "resume", "id": "x", "after": "3"}',
        '{"type": "resume", "after": 3}',
    ],
)
async def test_a_bad_resume_frame_is_a_400(client: Client, frame: str) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(frame)
        error = await receive(ws)
        assert (error["type"], error["status"]) == ("error", 400)
        await ws.send_str(chat_frame("ok", "still fine"))
        assert text_of(await until_end(ws, "ok")) == "still fine"


async def test_a_resumable_post_goes_on_without_its_client_and_resumes_as_sse(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.02))
    body = {**chat_body(), "resumable": True}
    response = await client.post(
        "/api/chat/openrouter", data=orjson.dumps(body), headers={"Accept": "text/event-stream"}
    )
    chat_id = response.headers["X-Chat-Id"]
    assert len(chat_id) >= 32
    first = parse_sse((await response.content.readuntil(b"\n\n")).decode())
    response.close()
    await asyncio.sleep(0.2)
    assert not fake_openrouter.requests[0].ended.is_set()
    seen = first[0][1]["seq"]
    resumed = await client.get(f"/api/chats/{chat_id}/events", headers={"Last-Event-ID": str(seen)})
    assert resumed.status == 200 and resumed.headers["Content-Type"] == "text/event-stream"
    rest = parse_sse(await resumed.text())
    assert first[0][1]["content"] + "".join(d["content"] for k, d in rest if k == "delta") == ANSWER
    # What was missed may come merged (one event, the seq of the last piece in it).
    seqs = [d["seq"] for _, d in rest]
    assert seqs == sorted(set(seqs)) and seqs[0] > seen
    assert rest[-1][0] == "done"
    again = parse_sse(await (await client.get(f"/api/chats/{chat_id}/events?after=0")).text())
    assert "".join(d["content"] for k, d in again if k == "delta") == ANSWER


async def test_a_post_without_a_session_belongs_to_whoever_holds_its_id(
    client: Client, fake_openrouter: FakeOpenRouter, other_session: aiohttp.ClientSession
) -> None:
    fake_openrouter.script(HANG)
    async with other_session.post(
        "/api/chat/openrouter", data=orjson.dumps({**chat_body(), "resumable": True})
    ) as response:
        chat_id = response.headers["X-Chat-Id"]
        assert await response.content.readany() == b"started"
    # No cookie was involved: the id alone lets another client stop it.
    async with (
        aiohttp.ClientSession(base_url=str(client.make_url(""))) as stranger,
        stranger.delete(f"/api/chats/{chat_id}") as deleted,
    ):
        assert deleted.status == 204
    await fake_openrouter.requests[0].wait_dropped_by_relay(1)
    replay = parse_sse(await (await client.get(f"/api/chats/{chat_id}/events")).text())
    assert replay[-1] == ("done", {"seq": 2, "finish_reason": "cancelled", "usage": None})


async def test_a_plain_post_chat_belongs_to_its_session(
    client: Client, fake_openrouter: FakeOpenRouter, other_session: aiohttp.ClientSession
) -> None:
    fake_openrouter.script(HANG)
    assert (await client.get("/api/profile")).status == 200  # the page's first call
    response = await client.post(
        "/api/chat/openrouter", data=orjson.dumps({**chat_body(), "resumable": True})
    )
    chat_id = response.headers["X-Chat-Id"]
    assert await response.content.readany() == b"started"
    async with other_session.delete(f"/api/chats/{chat_id}") as deleted:
        assert deleted.status == 404
    assert (await client.delete(f"/api/chats/{chat_id}")).status == 204
    await fake_openrouter.requests[0].wait_dropped_by_relay(1)
    response.close()


async def test_bad_resume_offsets_on_http_are_400(client: Client) -> None:
    # Non-ASCII digits ("²", the Arabic-Indic one): a 400, neither a 500 nor a seq.
    for query in ("?after=-1", "?after=x", "?after=1e3", "?after=%C2%B2", "?after=%D9%A1"):
        response = await client.get(f"/api/chats/abc/events{query}")
        assert response.status == 400, query
        assert "after" in (await response.json())["message"]
    response = await client.get("/api/chats/abc/events", headers={"Last-Event-ID": "²"})
    assert response.status == 400


async def test_the_chat_line_says_a_chat_ran_detached(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.chat")
    client = await make_client(resume_window_s=0.2)
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("d"))
        assert (await receive(ws))["content"] == "started"
    await fake_openrouter.requests[0].wait_dropped_by_relay(5)
    for _ in range(50):
        lines = [r for r in caplog.records if r.name == "server.chat"]
        if lines:
            break
        await asyncio.sleep(0.02)
    [line] = lines
    assert "detached=True" in line.getMessage() and "cancelled=True" in line.getMessage()
