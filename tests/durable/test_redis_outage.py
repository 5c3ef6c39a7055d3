"""Durable chats on two processes sharing a real redis-server, while a model is still
thinking and while Redis goes away: a chat exists for every process from the moment its id
is known, and only the process running it may end it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import orjson
from yarl import URL

from tests.clients import (
    Frame,
    chat_frame,
    parse_sse,
    receive,
    resume_frame,
    text_of,
    two_processes,
    until_end,
)
from tests.conftest import SERVER_KEY, SESSION_SECRET, Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, USAGE, FakeOpenRouter, Reply, Step, chunk, event
from tests.redis_server import RedisServer, free_port
from tests.server_process import server_env, start_server
from tests.waiting import wait_until

WORDS = [f" w{n}" for n in range(20)]
ANSWER = "".join(WORDS)
# Longer than a listener's quiet check (5 s), after which it asks Redis whether its chat
# still runs: what broke listeners on the other process.
OUTAGE_S = 7.0
Chats = dict[str, list[Frame]]


class Thinking(list[Step]):
    """A reply's steps: the words before, then OpenRouter's keep-alive comments (a model
    thinking) until the test opens `gate`, then the words after and the end."""

    def __init__(self, before: list[str], gate: asyncio.Event, after: list[str]) -> None:
        super().__init__([COMMENT, *(event(chunk(w)) for w in before)])
        self.gate = gate
        self.after: list[Step] = [event(chunk(w)) for w in after]
        self.after += [event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]

    def __iter__(self) -> Iterator[Step]:
        yield from super().__iter__()
        while not self.gate.is_set():
            yield COMMENT
            yield 0.2
        yield from self.after


def held(before: list[str], gate: asyncio.Event, after: list[str]) -> Reply:
    return Reply(steps=Thinking(before, gate, after))


async def upstream_has(fake: FakeOpenRouter, count: int) -> None:
    await wait_until(lambda: len(fake.requests) >= count, f"{count} chats reached upstream")


async def sse_text(response: aiohttp.ClientResponse) -> tuple[str, list[tuple[str, Frame]]]:
    events = parse_sse(await response.text())
    return "".join(d.get("content", "") for k, d in events if k == "delta"), events


async def test_a_thinking_chat_is_resumed_and_stopped_on_another_process(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    thinking = asyncio.Event()
    fake_openrouter.script(held([], thinking, WORDS))
    first, second = await two_processes(make_client, redis_url)
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("think"))
        await upstream_has(fake_openrouter, 1)
        # Not a word yet anywhere: the other process knows the chat all the same.
        async with second.ws_connect("/api/chat/ws") as other:
            await other.send_str(resume_frame("think", 0))
            async with second.get("/api/chats/think/events?after=0") as listener:
                assert listener.status == 200
                thinking.set()
                text, events = await sse_text(listener)
            frames = await until_end(other, "think", timeout_s=10)
        assert text == text_of(frames) == text_of(await until_end(ws, "think")) == ANSWER
        assert events[-1][0] == "done" and frames[-1]["finish_reason"] == "stop"

        fake_openrouter.script(held([], asyncio.Event(), []))
        await ws.send_str(chat_frame("stopme"))
        await upstream_has(fake_openrouter, 2)
        async with second.delete("/api/chats/stopme") as deleted:
            assert deleted.status == 204
        await fake_openrouter.requests[1].wait_dropped_by_relay(5)
        assert (await until_end(ws, "stopme"))[-1]["finish_reason"] == "cancelled"


async def test_a_resumable_posts_id_is_known_to_every_process_before_it_goes_out(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    # The 200 and its X-Chat-Id go out after a short silence, before any text exists.
    first, second = await two_processes(make_client, redis_url, first_byte_s=0.2)
    body = orjson.dumps({**chat_body(), "resumable": True})
    for attempt in range(4):
        thinking = asyncio.Event()
        fake_openrouter.script(held([], thinking, WORDS))
        async with first.post(
            "/api/chat/openrouter", data=body, headers={"Accept": "text/event-stream"}
        ) as posted:
            chat_id = posted.headers["X-Chat-Id"]
            async with second.get(f"/api/chats/{chat_id}/events?after=0") as resumed:
                assert resumed.status == 200, attempt
                thinking.set()
                assert (await sse_text(resumed))[0] == ANSWER
    # And at once after the first text arrived (the chat's log may not be in Redis yet).
    for attempt in range(8):
        fake_openrouter.script(held(WORDS[:1], asyncio.Event(), []))
        async with first.post("/api/chat/openrouter", data=body) as posted:
            assert await posted.content.readany() == WORDS[0].encode()
            chat_id = posted.headers["X-Chat-Id"]
            async with second.get(f"/api/chats/{chat_id}/events?after=0") as resumed:
                assert resumed.status == 200, attempt
            assert (await second.delete(f"/api/chats/{chat_id}")).status == 204


async def resume_until_served(client: Client, chat_id: str) -> aiohttp.ClientResponse:
    """Resume as the page does while the store is away: a 503 is retried, never a 404."""
    statuses = []
    for _ in range(200):
        response = await client.get(f"/api/chats/{chat_id}/events?after=0")
        statuses.append(response.status)
        if response.status != 503:
            assert response.status == 200, statuses
            return response
        response.close()
        await asyncio.sleep(0.05)
    raise AssertionError(f"never served: {statuses}")


async def until_all_end(ws: aiohttp.ClientWebSocketResponse, chats: Chats) -> Chats:
    """Each chat's frames (after those it has) up to its done or error frame."""
    while any(not f or f[-1]["type"] not in ("done", "error") for f in chats.values()):
        frame = await receive(ws, timeout_s=30)
        chats[frame["id"]].append(frame)
    return chats


async def test_a_chat_is_not_lost_to_resumes_around_a_redis_restart(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    make_redis_server: Callable[..., RedisServer],
) -> None:
    redis = make_redis_server()
    gates = [asyncio.Event(), asyncio.Event()]
    # One chat still thinking, one that said a few words and is thinking again.
    fake_openrouter.script(held([], gates[0], WORDS), held(WORDS[:3], gates[1], WORDS[3:]))
    first, second = await two_processes(make_client, redis.url)
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("quiet"))
        await upstream_has(fake_openrouter, 1)
        await ws.send_str(chat_frame("said"))
        said: list[Frame] = []
        while text_of(said) != "".join(WORDS[:3]):
            said.append(await receive(ws))
        redis.stop()
        async with second.get("/api/chats/quiet/events") as away:
            assert away.status == 503  # the store is away: the page tries again
        redis.start()  # empty, as a restarted Redis without persistence is
        quiet = await resume_until_served(second, "quiet")
        # No new word since Redis came back, yet what the chat said is there again.
        resumed = await resume_until_served(second, "said")
        heard = ""
        while heard != "".join(WORDS[:3]):
            block = await asyncio.wait_for(resumed.content.readuntil(b"\n\n"), 10)
            [(_, data)] = parse_sse(block.decode())
            heard += data["content"]
        for gate in gates:
            gate.set()
        frames = await until_all_end(ws, {"quiet": [], "said": said})
        text, events = await sse_text(quiet)
        assert text == text_of(frames["quiet"]) == ANSWER and events[-1][0] == "done"
        text, events = await sse_text(resumed)
        assert heard + text == text_of(frames["said"]) == ANSWER and events[-1][0] == "done"


async def test_listeners_on_another_process_wait_out_a_long_redis_outage(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    make_redis_server: Callable[..., RedisServer],
) -> None:
    redis = make_redis_server()
    gates = [asyncio.Event(), asyncio.Event()]
    fake_openrouter.script(held(WORDS[:5], gates[0], WORDS[5:]), held([], gates[1], WORDS))
    first, second = await two_processes(make_client, redis.url)
    async with (
        first.ws_connect("/api/chat/ws") as ws,
        second.ws_connect("/api/chat/ws") as other,
    ):
        await ws.send_str(chat_frame("talking"))
        await ws.send_str(chat_frame("thinking"))
        await upstream_has(fake_openrouter, 2)
        # The other process follows both: one has said a few words, one nothing yet.
        heard: list[Frame] = []
        await other.send_str(resume_frame("talking", 0))
        while text_of(heard) != "".join(WORDS[:5]):
            heard.append(await receive(other, timeout_s=10))
        await other.send_str(resume_frame("thinking", 0))
        # A socket handles its frames in order: this one's 409 says it follows the chat.
        await other.send_str(resume_frame("thinking", 0))
        assert (await receive(other))["status"] == 409
        redis.stop()
        await asyncio.sleep(OUTAGE_S)  # the outage itself is what is tested
        redis.start()  # empty
        # The chats go on a while after Redis is back, as long answers do.
        await asyncio.sleep(1.0)
        for gate in gates:
            gate.set()
        frames = await until_all_end(ws, {"talking": [], "thinking": []})
        followed = await until_all_end(other, {"talking": heard, "thinking": []})
    for chat_id in ("talking", "thinking"):
        assert text_of(frames[chat_id]) == text_of(followed[chat_id]) == ANSWER, chat_id
        assert followed[chat_id][-1] == frames[chat_id][-1]
        assert followed[chat_id][-1]["finish_reason"] == "stop"
    # What every process replays is the chat the running process finished, not a "lost" one
    # written by a listener elsewhere; its keys came back with Redis.
    for client in (first, second):
        async with client.ws_connect("/api/chat/ws") as again:
            for chat_id in ("talking", "thinking"):
                await again.send_str(resume_frame(chat_id, 0))
                replay = await until_end(again, chat_id, timeout_s=10)
                assert text_of(replay) == ANSWER and replay[-1]["finish_reason"] == "stop"


async def test_a_chat_whose_process_died_ends_for_its_listeners_elsewhere(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str, tmp_path: Path
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("started")), "hang"]))
    env = server_env(
        DATA_DIR=str(tmp_path / "data"),
        SESSION_SECRET=SESSION_SECRET,
        OPENROUTER_API_KEY=SERVER_KEY,
        OPENROUTER_BASE_URL=fake_openrouter.url,
        REDIS_URL=redis_url,
    )
    process, url = await start_server(env, free_port())
    other = await make_client(redis_url=redis_url)
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(url, cookie_jar=jar) as browser:
            assert (await browser.get("/api/profile")).status == 200
            other.session.cookie_jar.update_cookies(jar.filter_cookies(URL(url)))
            async with browser.ws_connect("/api/chat/ws") as ws:
                await ws.send_str(chat_frame("doomed"))
                assert (await receive(ws, timeout_s=10))["content"] == "started"
                async with other.ws_connect("/api/chat/ws") as elsewhere:
                    await elsewhere.send_str(resume_frame("doomed", 0))
                    assert (await receive(elsewhere, timeout_s=10))["content"] == "started"
                    process.kill()  # no cleanup, no final event: only its keys lapse
                    # Its run's key lapses (30 s), and its listeners wait a while longer (15 s)
                    # in case it is Redis that forgot it; then the chat ends for them.
                    [lost] = await until_end(elsewhere, "doomed", timeout_s=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    assert lost == {
        "type": "error",
        "id": "doomed",
        "seq": 2,
        "status": 503,
        "message": "The chat stopped: the server running it went away",
    }
