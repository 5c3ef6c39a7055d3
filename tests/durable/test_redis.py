"""Durable chats across processes: two app instances sharing one real redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import orjson
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.runner import make_runner
from tests.clients import (
    chat_frame,
    receive,
    resume_frame,
    text_of,
    two_processes,
    until_end,
)
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.redis_server import RedisServer

WORDS = [f" w{n}" for n in range(30)]
ANSWER = "".join(WORDS)
HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])


async def test_a_chat_is_resumed_on_another_process(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.03))
    first, second = await two_processes(make_client, redis_url)
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("moved"))
        before = [await receive(ws) for _ in range(4)]
    async with second.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("moved", before[-1]["seq"]))
        after = await until_end(ws, "moved")
    assert text_of(before + after) == ANSWER
    seqs = [f["seq"] for f in before + after]
    assert seqs == sorted(set(seqs))
    assert after[-1]["type"] == "done" and after[-1]["finish_reason"] == "stop"
    # And replayed whole from there once it ended, as from the process that ran it.
    async with second.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(resume_frame("moved", 0))
        assert text_of(await until_end(ws, "moved")) == ANSWER
    assert len(fake_openrouter.requests) == 1


async def test_a_cancel_reaches_the_process_running_the_chat(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    fake_openrouter.script(HANG)
    first, second = await two_processes(make_client, redis_url)
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("far"))
        assert (await receive(ws))["content"] == "started"
        async with second.ws_connect("/api/chat/ws") as other:
            await other.send_str(resume_frame("far", 1))
            await other.send_str('{"type": "cancel", "id": "far"}')
            await fake_openrouter.requests[0].wait_dropped_by_relay(2)
            ended = await until_end(other, "far")
        assert ended[-1]["finish_reason"] == "cancelled" and ended[-1]["seq"] == 2
        assert (await until_end(ws, "far"))[-1] == {**ended[-1]}
    async with second.delete("/api/chats/far") as deleted:
        assert deleted.status == 204  # ended: nothing to stop, but it is theirs


async def test_an_http_chat_is_resumed_as_sse_on_another_process(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.02))
    first, second = await two_processes(make_client, redis_url)
    body = orjson.dumps({**chat_body(), "resumable": True})
    response = await first.post("/api/chat/openrouter", data=body)
    chat_id = response.headers["X-Chat-Id"]
    await response.content.readany()
    response.close()
    resumed = await second.get(f"/api/chats/{chat_id}/events?after=0")
    text = await resumed.text()
    assert "event: done" in text
    deltas = [
        orjson.loads(line[6:])["content"]
        for line in text.splitlines()
        if line.startswith("data: ") and "content" in line
    ]
    assert "".join(deltas) == ANSWER


async def test_redis_stopped_and_started_mid_run(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    make_redis_server: Callable[..., RedisServer],
) -> None:
    redis = make_redis_server()
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.05))
    first, second = await two_processes(make_client, redis.url)
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("storm"))
        frames = [await receive(ws) for _ in range(3)]
        redis.stop()
        # The running chat goes on for its listener here; a new chat cannot be kept: 503.
        await ws.send_str(chat_frame("new"))
        while (frame := await receive(ws))["id"] == "storm":
            frames.append(frame)
        assert frame["status"] == 503 and frame["message"] == "Chat store unavailable"
        async with first.post("/api/chat/openrouter", data=orjson.dumps(chat_body())) as post:
            assert post.status == 503
        assert (await first.get("/healthz")).status == 200
        await asyncio.sleep(0.3)
        redis.start()
        frames += await until_end(ws, "storm")
    assert text_of(frames) == ANSWER
    # Back without a restart: new chats work, and what Redis missed was written up to it,
    # so the other process replays the whole answer.
    async with first.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("after", "back again"))
        assert text_of(await until_end(ws, "after")) == "back again"
    for _ in range(100):
        async with second.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(resume_frame("storm", 0))
            replay = await until_end(ws, "storm", timeout_s=10)
        if replay[-1]["type"] == "done":
            break
        await asyncio.sleep(0.1)
    assert text_of(replay) == ANSWER and replay[-1]["finish_reason"] == "stop"


@dataclasses.dataclass
class Restart:
    """A process about to get SIGTERM, the page's socket to it, and another process that
    already holds the page's session cookie (one router in front of both)."""

    runner: web.AppRunner
    ws: aiohttp.ClientWebSocketResponse
    other: Client


@asynccontextmanager
async def restarting(
    settings: Settings, make_client: MakeClient, redis_url: str, port: int, grace_s: float
) -> AsyncIterator[Restart]:
    app = create_app(dataclasses.replace(settings, redis_url=redis_url, shutdown_grace_s=grace_s))
    runner = make_runner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    other = await make_client(redis_url=redis_url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        await browser.get(f"http://127.0.0.1:{port}/api/profile")
        other.session.cookie_jar.update_cookies(jar.filter_cookies(other.make_url("/")))
        ws = await browser.ws_connect(f"http://127.0.0.1:{port}/api/chat/ws")
        yield Restart(runner, ws, other)


async def test_on_shutdown_with_redis_sockets_close_1012_and_the_chat_goes_on_elsewhere(
    settings: Settings,
    fake_openrouter: FakeOpenRouter,
    redis_url: str,
    unused_tcp_port: int,
    make_client: MakeClient,
) -> None:
    fake_openrouter.script(sse_reply(WORDS, delay_s=0.05))
    async with restarting(settings, make_client, redis_url, unused_tcp_port, 10.0) as restart:
        await restart.ws.send_str(chat_frame("deploy"))
        frames = [await receive(restart.ws)]
        shutdown = asyncio.ensure_future(restart.runner.cleanup())
        # At once, not after the grace: the page reconnects to another process.
        closed = await asyncio.wait_for(restart.ws.receive(), timeout=2)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1012
        async with restart.other.ws_connect("/api/chat/ws") as again:
            await again.send_str(resume_frame("deploy", frames[-1]["seq"]))
            frames += await until_end(again, "deploy", timeout_s=10)
    await asyncio.wait_for(shutdown, timeout=15)
    assert text_of(frames) == ANSWER and frames[-1]["finish_reason"] == "stop"


async def test_a_chat_still_running_when_the_grace_ends_ends_with_503_elsewhere(
    settings: Settings,
    fake_openrouter: FakeOpenRouter,
    redis_url: str,
    unused_tcp_port: int,
    make_client: MakeClient,
) -> None:
    fake_openrouter.script(HANG)
    async with restarting(settings, make_client, redis_url, unused_tcp_port, 0.5) as restart:
        await restart.ws.send_str(chat_frame("cut"))
        assert (await receive(restart.ws))["content"] == "started"
        shutdown = asyncio.ensure_future(restart.runner.cleanup())
        assert (await asyncio.wait_for(restart.ws.receive(), timeout=2)).data == 1012
        async with restart.other.ws_connect("/api/chat/ws") as again:
            await again.send_str(resume_frame("cut", 1))
            ended = await until_end(again, "cut", timeout_s=10)
    await asyncio.wait_for(shutdown, timeout=15)
    assert ended[-1]["type"] == "error" and ended[-1]["status"] == 503 and ended[-1]["seq"] == 2
