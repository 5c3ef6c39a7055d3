"""Durable chats on Redis under load: hundreds of chats at once in one process, every one
whole, on a small and constant number of Redis connections; Redis going away mid-run with
many chats writes a line when it goes and one when it is back, not one per chat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from server.config import Settings
from server.store.events import Delta, Done
from server.store.redis_conn import make_redis, outage_log
from server.store.redis_store import RedisStore
from tests.clients import chat_frame, resume_frame, text_of, until_end
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter, sse_reply
from tests.redis_server import RedisServer
from tests.waiting import wait_until

WORDS = [f" t{n}" for n in range(10)]
ANSWER = "".join(WORDS)
SOCKETS, CHATS_PER_SOCKET, POSTS = 50, 4, 100  # 300 chats at once
# The redis-server's clients while they run: the app's pool and this test's own client.
MAX_CONNECTIONS = 40
NO_LIMITS = {
    "max_sockets_per_client": 0,
    "max_chats_per_client": 0,
    "chats_per_minute": 0,
    "upstream_max_connections": 0,
    # Hundreds of chats, the fake and the clients share one loop: on a busy machine the
    # fake may be seconds late, which is not what these tests are about.
    "upstream_timeout_s": 30.0,
}


async def socket_chats(
    client: Client, socket_no: int, with_text: set[str] | None = None
) -> dict[str, str]:
    """CHATS_PER_SOCKET chats on one socket at once: each chat's text, or its error; the ids
    of those that got text so far are added to `with_text`."""
    ids = [f"s{socket_no}c{n}" for n in range(CHATS_PER_SOCKET)]
    texts: dict[str, list[str]] = {chat_id: [] for chat_id in ids}
    ended: dict[str, str] = {}
    async with client.ws_connect("/api/chat/ws") as ws:
        for chat_id in ids:
            await ws.send_str(chat_frame(chat_id))
        while len(ended) < len(ids):
            frame = orjson.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if frame["type"] == "delta":
                texts[frame["id"]].append(frame["content"])
                if with_text is not None:
                    with_text.add(frame["id"])
            elif frame["type"] == "done":
                ended[frame["id"]] = "".join(texts[frame["id"]])
            elif frame["type"] == "error":
                ended[frame["id"]] = f"error {frame['status']} {frame['message']}"
    return ended


async def post_chat(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(url, data=orjson.dumps(chat_body())) as response:
        if response.status != 200:
            return f"error {response.status} {await response.text()}"
        return await response.text()


class ConnectionPeak:
    """The most clients the redis-server has had at once since it was made, sampled by a
    task of the test's own (not a fixture's: a task must live in the loop that awaits it)."""

    def __init__(self, redis_url: str) -> None:
        self.redis = Redis.from_url(redis_url)
        self.peak, self.stopped = 0, False
        self.task = asyncio.ensure_future(self.watch())

    async def watch(self) -> None:
        while not self.stopped:
            info = await self.redis.info("clients")
            self.peak = max(self.peak, int(info["connected_clients"]))
            await asyncio.sleep(0.02)

    async def stop(self) -> int:
        # A flag, not a cancel: redis-py can lose a cancel that lands inside a command.
        self.stopped = True
        await self.task
        await self.redis.aclose()
        return self.peak


def everyone_in(first: Client, second: Client) -> None:
    second.session.cookie_jar.update_cookies(
        first.session.cookie_jar.filter_cookies(first.make_url("/"))
    )


async def test_hundreds_of_chats_at_once_each_get_their_whole_answer_on_few_connections(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    total = SOCKETS * CHATS_PER_SOCKET + POSTS
    # Every chat's tokens come at the same moments: the most Redis writes at once.
    fake_openrouter.script(*[sse_reply(WORDS, delay_s=0.05) for _ in range(total)])
    client = await make_client(redis_url=redis_url, **NO_LIMITS)
    await client.get("/api/profile")
    url = str(client.make_url("/api/chat/openrouter"))
    peak = ConnectionPeak(redis_url)
    with caplog.at_level(logging.WARNING, logger="server"):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as posts:
            results = await asyncio.gather(
                *[socket_chats(client, n) for n in range(SOCKETS)],
                *[post_chat(posts, url) for _ in range(POSTS)],
            )
    answers = [a for r in results for a in (r.values() if isinstance(r, dict) else [r])]
    failed = [a for a in answers if a != ANSWER]
    assert not failed, f"{len(failed)} of {total} chats failed, e.g. {failed[0]}"
    assert len(answers) == total
    assert (most := await peak.stop()) <= MAX_CONNECTIONS, f"{most} Redis connections"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    # What Redis holds is every chat whole: another process replays them exactly.
    other = await make_client(redis_url=redis_url, **NO_LIMITS)
    everyone_in(client, other)
    async with other.ws_connect("/api/chat/ws") as ws:
        for socket_no in range(0, SOCKETS, 10):
            await ws.send_str(resume_frame(f"s{socket_no}c3", 0))
            frames = await until_end(ws, f"s{socket_no}c3", timeout_s=10)
            assert text_of(frames) == ANSWER and frames[-1]["type"] == "done"


async def test_redis_gone_mid_run_with_many_chats_is_one_warning_and_one_line_when_back(
    # Before make_client: its app closes before this Redis stops.
    make_redis_server: Callable[..., RedisServer],
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = make_redis_server()
    chats = 25 * CHATS_PER_SOCKET
    words = [f" t{n}" for n in range(40)]
    fake_openrouter.script(*[sse_reply(words, delay_s=0.05) for _ in range(chats)])
    client = await make_client(redis_url=redis.url, **NO_LIMITS)
    await client.get("/api/profile")
    outage_log.answered()  # this test's outage is a new one, whatever earlier tests did
    with caplog.at_level(logging.INFO, logger="server"):
        with_text: set[str] = set()
        running = asyncio.gather(*[socket_chats(client, n, with_text) for n in range(25)])
        await wait_until(lambda: len(with_text) == chats, "every chat has some text", 30)
        redis.stop()
        await asyncio.sleep(0.8)  # tokens keep coming while Redis is away
        redis.start()
        results = await running
        # Until what Redis missed is written up: the line that says it is back.
        for _ in range(100):
            if "Redis is back" in caplog.text:
                break
            await asyncio.sleep(0.1)
    answers = [a for r in results for a in r.values()]
    assert answers == ["".join(words)] * chats
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "\n".join(r.getMessage() for r in warnings)
    assert [r for r in caplog.records if "Redis is back" in r.getMessage()], caplog.text


async def resume_live(client: Client, ids: list[str]) -> dict[str, str]:
    """Follow these chats from seq 1 on one socket: each chat's text from there, or its error."""
    texts: dict[str, list[str]] = {chat_id: [] for chat_id in ids}
    ended: dict[str, str] = {}
    async with client.ws_connect("/api/chat/ws") as ws:
        for chat_id in ids:
            await ws.send_str(resume_frame(chat_id, 1))
        while len(ended) < len(ids):
            frame = orjson.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if frame["type"] == "delta":
                texts[frame["id"]].append(frame["content"])
            elif frame["type"] == "done":
                ended[frame["id"]] = "".join(texts[frame["id"]])
            elif frame["type"] == "error":
                ended[frame["id"]] = f"error {frame['status']} {frame['message']}"
    return ended


async def test_hundreds_of_listeners_on_another_process_follow_live_on_few_connections(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    redis_url: str,
) -> None:
    sockets = 50
    words = [f" t{n}" for n in range(30)]
    fake_openrouter.script(*[sse_reply(words, delay_s=0.05) for _ in range(sockets * 4)])
    first = await make_client(redis_url=redis_url, **NO_LIMITS)
    second = await make_client(redis_url=redis_url, **NO_LIMITS)
    await first.get("/api/profile")
    everyone_in(first, second)
    groups = [[f"s{n}c{m}" for m in range(4)] for n in range(sockets)]

    async def start_and_leave(ids: list[str]) -> None:
        async with first.ws_connect("/api/chat/ws") as ws:
            for chat_id in ids:
                await ws.send_str(chat_frame(chat_id))
            started: set[str] = set()
            while len(started) < len(ids):
                started.add(orjson.loads((await asyncio.wait_for(ws.receive(), 30)).data)["id"])

    peak = ConnectionPeak(redis_url)
    await asyncio.gather(*[start_and_leave(ids) for ids in groups])
    # Every chat goes on on the first process; the second follows them all through Redis.
    results = await asyncio.gather(*[resume_live(second, ids) for ids in groups])
    most = await peak.stop()
    answers = [a for r in results for a in r.values()]
    failed = [a for a in answers if a != "".join(words[1:])]
    assert not failed, f"{len(failed)} of {len(answers)} listeners failed, e.g. {failed[0]}"
    assert most <= MAX_CONNECTIONS, f"{most} Redis connections"


async def test_a_url_that_caps_connections_is_obeyed_and_every_chat_still_whole(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    make_redis_server: Callable[..., RedisServer],
) -> None:
    # A small plan's cap shared by several processes: 3 each, the least that works. A
    # redis-server of its own, so no earlier test's closing connections are counted.
    redis_url = make_redis_server().url
    sockets = 10
    fake_openrouter.script(*[sse_reply(WORDS, delay_s=0.05) for _ in range(sockets * 4)])
    client = await make_client(redis_url=f"{redis_url}?max_connections=3", **NO_LIMITS)
    await client.get("/api/profile")
    peak = ConnectionPeak(redis_url)
    results = await asyncio.gather(*[socket_chats(client, n) for n in range(sockets)])
    most = await peak.stop()
    assert [a for r in results for a in r.values()] == [ANSWER] * sockets * 4
    assert most <= 3 + 1, f"{most} Redis connections"  # +1: this test's own


async def test_a_listener_elsewhere_that_falls_behind_still_gets_every_event_once(
    redis_url: str,
) -> None:
    """A slow reader on another process leaves the shared read and catches up by itself."""
    clients = [make_redis(Settings(redis_url=redis_url)) for _ in range(2)]
    running, following = (RedisStore(c, 300.0, 600.0) for c in clients if c is not None)
    try:
        log = await running.create("o:slow", NoRun())
        await log.append([Delta("t0 ")])
        got: list[str] = []

        async def read_slowly() -> None:
            async for _, events in following.read("o:slow", 0):
                got.extend(e.content if isinstance(e, Delta) else "<end>" for e in events)
                await asyncio.sleep(0.06)

        reading = asyncio.ensure_future(read_slowly())
        # Far more flushes than a listener may have waiting (MAX_INBOX) while it sleeps.
        for n in range(1, 120):
            await log.append([Delta(f"t{n} ")])
            await asyncio.sleep(0.005)
        await log.append([Done("stop", None)])
        await asyncio.wait_for(reading, 30)
        assert "".join(got) == "".join(f"t{n} " for n in range(120)) + "<end>"
    finally:
        for store in (running, following):
            await store.close()
        for client in clients:
            if client is not None:
                await client.aclose()


class NoRun:
    def cancel(self) -> None: ...

    def abandon(self) -> None: ...
