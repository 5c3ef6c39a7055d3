"""GET /api/chat/ws over a real socket: frames, several chats, cancel, limits, bad frames."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from server.errors import KEY_NOT_FOUND_MESSAGE
from server.store.memory import MemoryStore
from tests.clients import chat_frame, receive, text_of, until_end
from tests.conftest import Client, MakeClient
from tests.fake_openrouter import (
    COMMENT,
    FakeOpenRouter,
    Reply,
    chunk,
    error_reply,
    event,
    sse_reply,
    stream_error_reply,
)

NOT_JSON = "OpenRouter sent an event that is not valid JSON"
CUT_SHORT = "OpenRouter closed the stream before it finished"
HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])


async def test_chat_streams_deltas_then_one_done(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo", " 世界"], delay_s=0.01))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        frames = await until_end(ws, "c1")
    assert text_of(frames) == "Hello 世界"
    assert all(f["type"] == "delta" for f in frames[:-1])
    assert frames[-1]["type"] == "done"
    assert frames[-1]["finish_reason"] == "stop"
    assert frames[-1]["usage"]["total_tokens"] == 15


async def test_type_and_id_may_be_left_out(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        frame = orjson.loads(chat_frame(text="no id"))
        del frame["type"]
        await ws.send_str(orjson.dumps(frame).decode())
        first = await receive(ws)
        assert isinstance(first["id"], str) and first["id"]
        frames = [first, *await until_end(ws, first["id"])]
    assert text_of(frames) == "no id"


async def test_reasoning_frames(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    reply = sse_reply(["42"])
    reply.steps.insert(1, event(chunk(reasoning="Let me think")))
    reply.steps.insert(2, 0.02)
    fake_openrouter.script(reply)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("r"))
        frames = await until_end(ws, "r")
    assert frames[0] == {"type": "reasoning", "id": "r", "seq": 1, "content": "Let me think"}
    assert text_of(frames) == "42"


async def test_several_chats_run_at_once_and_keep_their_text_apart(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        for n in range(3):
            await ws.send_str(chat_frame(f"chat-{n}", f"answer number {n} here"))
        texts: dict[str, str] = {}
        ended: set[str] = set()
        while len(ended) < 3:
            frame = await receive(ws)
            if frame["type"] == "delta":
                texts[frame["id"]] = texts.get(frame["id"], "") + frame["content"]
            else:
                assert frame["type"] == "done" and frame["id"] not in ended
                ended.add(frame["id"])
    assert texts == {f"chat-{n}": f"answer number {n} here" for n in range(3)}


async def test_cancel_closes_upstream_and_ends_with_done_cancelled(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c"))
        assert await receive(ws) == {"type": "delta", "id": "c", "seq": 1, "content": "started"}
        await ws.send_str('{"type": "cancel", "id": "c"}')
        frame = await receive(ws)
        assert frame == {
            "type": "done",
            "id": "c",
            "seq": 2,
            "finish_reason": "cancelled",
            "usage": None,
        }
        seen = fake_openrouter.requests[0]
        await seen.wait_dropped_by_relay(1)
        # Exactly one terminal frame: nothing more comes for "c", and the socket still works.
        await ws.send_str(chat_frame("after", "still here"))
        frames = await until_end(ws, "after")
        assert text_of(frames) == "still here"


async def test_cancel_of_a_finished_chat_says_nothing_more(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("x", "quick"))
        assert (await until_end(ws, "x"))[-1]["type"] == "done"
        await ws.send_str('{"type": "cancel", "id": "x"}')
        await ws.send_str(chat_frame("y", "next"))
        frames = await until_end(ws, "y")
        assert text_of(frames) == "next"


async def test_closing_the_socket_closes_every_upstream_with_no_resume_window(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(resume_window_s=0)
    fake_openrouter.script(HANG, HANG)
    ws = await client.ws_connect("/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    await ws.send_str(chat_frame("b"))
    assert {(await receive(ws))["id"], (await receive(ws))["id"]} == {"a", "b"}
    await ws.close()
    for seen in fake_openrouter.requests:
        await seen.wait_dropped_by_relay(1)


async def test_a_fifth_running_chat_is_refused_with_429(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(*[HANG] * 4)
    async with client.ws_connect("/api/chat/ws") as ws:
        for n in range(4):
            await ws.send_str(chat_frame(f"c{n}"))
        for _ in range(4):
            assert (await receive(ws))["type"] == "delta"
        await ws.send_str(chat_frame("c4"))
        frame = await receive(ws)
        assert frame["type"] == "error" and frame["id"] == "c4" and frame["status"] == 429
        # Once one ends, a new chat is welcome again.
        await ws.send_str('{"type": "cancel", "id": "c0"}')
        assert (await receive(ws))["finish_reason"] == "cancelled"
        await ws.send_str(chat_frame("c5", "room again"))
        assert text_of(await until_end(ws, "c5")) == "room again"


async def test_a_running_id_reused_is_409(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(HANG)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("same"))
        assert (await receive(ws))["type"] == "delta"
        await ws.send_str(chat_frame("same"))
        frame = await receive(ws)
        assert (frame["type"], frame["id"], frame["status"]) == ("error", "same", 409)


@pytest.mark.parametrize(
    ("frame", "frame_id", "message"),
    [
        ("not json", None, "The frame is not valid JSON"),
        ("[1, 2]", None, "The frame must be a JSON object"),
        ('{"type": "dance", "id": "d"}', "d", "type must be chat or cancel or resume"),
        ('{"type": "cancel"}', None, "A cancel frame needs the id of the chat to stop"),
        ('{"type": "chat", "id": 7}', None, "id must be a string of at most 64 characters"),
        ('{"type": "chat", "id": "' + "i" * 65 + '"}', None, "id must be a string"),
        ('{"id": "m", "chatSettings": {"model": "m"}}', "m", "messages must be a non-empty list"),
        (chat_frame("t", temperature=9), "t", "chatSettings.temperature must be a number"),
    ],
)
async def test_bad_frames_get_an_error_and_other_chats_go_on(
    client: Client, fake_openrouter: FakeOpenRouter, frame: str, frame_id: str | None, message: str
) -> None:
    fake_openrouter.script(sse_reply(["slow", " and", " steady"], delay_s=0.05))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("ok"))
        await ws.send_str(frame)
        frames: list[dict[str, Any]] = []
        error = None
        while len(frames) == 0 or frames[-1]["type"] not in ("done", "error"):
            received = await receive(ws)
            if received["id"] == "ok":
                frames.append(received)
            else:
                error = received
        if error is None:
            error = await receive(ws)
    assert error["type"] == "error" and error["status"] == 400 and error["id"] == frame_id
    assert error["message"].startswith(message)
    assert text_of(frames) == "slow and steady" and frames[-1]["type"] == "done"


async def test_binary_frame_gets_an_error(client: Client) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_bytes(b"\x00\x01")
        frame = await receive(ws)
        assert (frame["type"], frame["id"], frame["status"]) == ("error", None, 400)
        await ws.send_str(chat_frame("z", "alive"))
        assert text_of(await until_end(ws, "z")) == "alive"


async def test_frame_over_max_body_bytes_closes_with_1009(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=1024 * 1024)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("big", "x" * (1024 * 1024 + 1)))
        message = await asyncio.wait_for(ws.receive(), timeout=3)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_missing_key_is_an_error_frame_with_the_seed_message(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(openrouter_api_key=None)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("k"))
        frame = await receive(ws)
    assert frame == {"type": "error", "id": "k", "status": 401, "message": KEY_NOT_FOUND_MESSAGE}
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("reply", "status", "message", "extra"),
    [
        (error_reply(402, "Insufficient credits"), 402, "Insufficient credits", {}),
        (error_reply(429, "Slow", {"Retry-After": "12"}), 429, "Slow", {"retry_after": 12}),
        (stream_error_reply(429, "Provider rate limit"), 429, "Provider rate limit", {}),
        (stream_error_reply("x", "Provider gone", ("a",)), 502, "Provider gone", {}),
        (Reply(steps=[b"data: {oops\n\n"]), 502, NOT_JSON, {}),
        (Reply(steps=[event(chunk("a")), 0.05, "drop"]), 502, CUT_SHORT, {}),
    ],
)
async def test_upstream_errors_become_error_frames(
    client: Client,
    fake_openrouter: FakeOpenRouter,
    reply: Reply,
    status: int,
    message: str,
    extra: dict[str, Any],
) -> None:
    fake_openrouter.script(reply)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("e"))
        frames = await until_end(ws, "e")
    seq = len(frames)
    assert frames[-1] == {
        "type": "error",
        "id": "e",
        "seq": seq,
        "status": status,
        "message": message,
        **extra,
    }


async def test_unreachable_and_silent_upstream(
    make_client: MakeClient, unused_tcp_port: int
) -> None:
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{unused_tcp_port}/v1")
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("u"))
        frame = await receive(ws)
    assert frame["status"] == 502 and frame["message"].startswith("Could not reach OpenRouter: ")


async def test_silent_upstream_is_504(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(upstream_timeout_s=0.3)
    fake_openrouter.script(Reply(steps=[COMMENT, "hang"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("s"))
        frame = await receive(ws)
    assert frame == {
        "type": "error",
        "id": "s",
        "seq": 1,
        "status": 504,
        "message": "OpenRouter sent nothing for 0.3 seconds",
    }


async def test_after_done_a_cancel_or_a_reused_id_is_not_a_second_ending(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # Upstream keeps its body open after [DONE] while chatrelay winds its connection down.
    first = sse_reply(["first"])
    fake_openrouter.script(Reply(steps=[*first.steps, 2.0]), sse_reply(["second"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("a"))
        assert (await until_end(ws, "a"))[-1]["type"] == "done"
        await ws.send_str('{"type": "cancel", "id": "a"}')
        await ws.send_str(chat_frame("a"))
        frames = await until_end(ws, "a")
    assert text_of(frames) == "second"
    assert [f["type"] for f in frames] == ["delta", "done"]
    assert frames[-1]["finish_reason"] == "stop"


async def test_a_listener_that_trips_a_bug_ends_its_chat_with_500_and_spares_the_others(
    client: Client,
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    read = MemoryStore.read

    def read_or_explode(store: MemoryStore, key: str, *args: Any) -> Any:
        if key.endswith(":bad"):
            raise RuntimeError("log on fire")
        return read(store, key, *args)

    monkeypatch.setattr(MemoryStore, "read", read_or_explode)
    fake_openrouter.script(sse_reply(["a", "b"], delay_s=0.05), sse_reply(["o", "k"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("bad"))
        bad = await until_end(ws, "bad")
        # The socket and its other chats go on.
        await ws.send_str(chat_frame("good"))
        good = await until_end(ws, "good")
    assert bad[-1] == {
        "type": "error",
        "id": "bad",
        "status": 500,
        "message": "An unexpected error occurred",
    }
    assert text_of(good) == "ok" and good[-1]["type"] == "done"
    assert "log on fire" in caplog.text
