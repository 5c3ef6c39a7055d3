"""Budgets across real processes (`python -m server`), on both database engines: chats
started together on two processes sharing Redis and the database never pass the budget,
and a process killed mid-chat leaves no reservation behind once the next one starts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from tests.budget_helpers import PASSWORD, costing
from tests.clients import chat_frame
from tests.conftest import SERVER_KEY, SESSION_SECRET, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.redis_server import free_port
from tests.server_process import server_env, start_server, stop_server
from tests.waiting import wait_until

pytestmark = pytest.mark.subprocess

WORST = 0.150012  # 10,000 tokens of claude-3.5-sonnet and a prompt of 4 tokens
SONNET = "anthropic/claude-3.5-sonnet"


def env_for(fake: FakeOpenRouter, database_url: str, **values: str) -> dict[str, str]:
    return server_env(
        OPENROUTER_API_KEY=SERVER_KEY,
        OPENROUTER_BASE_URL=fake.url,
        SESSION_SECRET=SESSION_SECRET,
        DATABASE_URL=database_url,
        MAX_CHATS_PER_CLIENT="0",
        **values,
    )


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """One browser: its cookie (the account's session) goes to every process on 127.0.0.1."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_up(session: aiohttp.ClientSession, url: str) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD}
    async with session.post(f"{url}/api/accounts", json=body) as response:
        assert response.status == 201, await response.text()


async def budget_at(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/session") as response:
        assert response.status == 200, await response.text()
        shown: dict[str, Any] = (await response.json())["budget"]
        return shown


async def socket_chats(
    session: aiohttp.ClientSession, url: str, name: str, results: list[str]
) -> None:
    """Four chats at once on one socket (its limit), each one's end put in `results`."""
    async with session.ws_connect(f"{url}/api/chat/ws") as ws:
        ids = [f"{name}-{n}" for n in range(4)]
        for chat_id in ids:
            frame = orjson.loads(chat_frame(chat_id, model=SONNET, max_tokens=10_000))
            await ws.send_str(orjson.dumps(frame).decode())
        ended: set[str] = set()
        while len(ended) < len(ids):
            frame = orjson.loads(await ws.receive_str(timeout=30))
            if frame["type"] == "done":
                results.append("done")
                ended.add(frame["id"])
            elif frame["type"] == "error":
                results.append(str(frame["status"]))
                ended.add(frame["id"])


async def post_chat(session: aiohttp.ClientSession, url: str, results: list[str]) -> None:
    body = chat_body(model=SONNET, max_tokens=10_000)
    async with session.post(f"{url}/api/chat/openrouter", json=body) as response:
        await response.read()
        results.append("done" if response.status == 200 else str(response.status))


async def test_twenty_chats_at_once_on_two_processes_never_pass_the_budget(
    fake_openrouter: FakeOpenRouter, database_url: str, redis_url: str
) -> None:
    go = asyncio.Event()
    fake_openrouter.script(*(costing(0.15, hold=go) for _ in range(20)))
    env = env_for(
        fake_openrouter, database_url, REDIS_URL=redis_url, DEFAULT_BUDGET_USD=str(5 * WORST)
    )
    processes = [await start_server(env, free_port()) for _ in range(2)]
    try:
        urls = [url for _, url in processes]
        async with browser() as session:
            await sign_up(session, urls[0])
            results: list[str] = []
            # Four sockets (two on each process) of four chats, and four POSTs: twenty.
            chats = [socket_chats(session, urls[n % 2], f"s{n}", results) for n in range(4)]
            chats += [post_chat(session, urls[n % 2], results) for n in range(4)]
            running = asyncio.gather(*chats)
            await wait_until(lambda: results.count("402") == 15, "15 chats refused", 30)
            await wait_until(lambda: len(fake_openrouter.requests) == 5, "5 reached upstream")
            go.set()
            await asyncio.wait_for(running, timeout=30)
            assert sorted(results) == ["402"] * 15 + ["done"] * 5
            for url in urls:
                shown = await budget_at(session, url)
                assert shown["spent_usd"] == pytest.approx(0.75)
                assert shown["reserved_usd"] == 0
                assert shown["spent_usd"] <= shown["limit_usd"]
    finally:
        go.set()
        for process, _ in processes:
            await stop_server(process)


async def test_a_killed_process_leaves_no_reservation_once_the_next_one_starts(
    fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Hi")), "hang"]))
    env = env_for(fake_openrouter, database_url, DEFAULT_BUDGET_USD="1")
    process, url = await start_server(env, free_port())
    try:
        async with browser() as session:
            await sign_up(session, url)
            async with session.ws_connect(f"{url}/api/chat/ws") as ws:
                await ws.send_str(chat_frame("held"))
                assert orjson.loads(await ws.receive_str(timeout=10))["content"] == "Hi"
                assert (await budget_at(session, url))["reserved_usd"] > 0
                process.send_signal(signal.SIGKILL)
                await process.wait()
            process, url = await start_server(env, free_port())
            shown = await budget_at(session, url)
            assert shown["reserved_usd"] == 0 and shown["spent_usd"] == 0
            async with session.post(f"{url}/api/chat/openrouter", json=chat_body()) as answer:
                assert answer.status == 200
            await wait_until(lambda: len(fake_openrouter.requests) == 2, "a new chat ran")
    finally:
        await stop_server(process)
