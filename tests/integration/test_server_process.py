"""`python -m server` as users run it: its own process, run_app's settings, real signals."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import SERVER_KEY, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.server_process import ROOT, start_server, stop_server

pytestmark = pytest.mark.subprocess


@pytest.fixture
async def server_url(fake_openrouter: FakeOpenRouter, unused_tcp_port: int) -> AsyncIterator[str]:
    env = {
        **os.environ,
        "OPENROUTER_BASE_URL": fake_openrouter.url,
        "OPENROUTER_API_KEY": SERVER_KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PORT", None)
    process, url = await start_server(env, unused_tcp_port)
    yield url
    assert await stop_server(process) == 0


async def test_post_client_leaving_closes_upstream(
    server_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("one")), "hang"]))
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{server_url}/api/chat/openrouter", data=orjson.dumps(chat_body())
        )
        assert response.status == 200
        assert await response.content.readany() == b"one"
        response.close()
    seen = fake_openrouter.requests[0]
    await seen.wait_dropped_by_relay(1)


async def test_post_client_leaving_while_model_is_silent_closes_upstream(
    server_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, "hang"]))
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(f"{server_url}/api/chat/openrouter", data=orjson.dumps(chat_body()))
        )
        await asyncio.wait_for(fake_openrouter.started.wait(), timeout=5)
        request.cancel()
    seen = fake_openrouter.requests[0]
    await seen.wait_dropped_by_relay(1)


async def test_a_closed_socket_leaves_its_chat_running_and_a_cancel_stops_it(
    server_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("one")), "hang"]))
    # unsafe: keep cookies of an IP address host (127.0.0.1), as browsers do.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        ws = await session.ws_connect(f"{server_url}/api/chat/ws")
        frame = {"type": "chat", "id": "s", **chat_body()}
        await ws.send_str(orjson.dumps(frame).decode())
        assert orjson.loads((await ws.receive()).data)["content"] == "one"
        await ws.close()
        seen = fake_openrouter.requests[0]
        await asyncio.sleep(0.3)
        assert not seen.ended.is_set()
        # The same session (its cookie came with the first handshake) stops it from a new socket.
        async with session.ws_connect(f"{server_url}/api/chat/ws") as again:
            await again.send_str('{"type": "cancel", "id": "s"}')
            await seen.wait_dropped_by_relay(1)


async def test_open_relay_refuses_to_start(unused_tcp_port: int) -> None:
    env = {**os.environ, "OPENROUTER_API_KEY": "k", "HOST": "0.0.0.0", "PORT": str(unused_tcp_port)}
    env.pop("ACCESS_TOKEN", None)
    env.pop("OPEN_ACCESS", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode != 0
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "ACCESS_TOKEN" in lines[0]


def open_files_limits(pid: int) -> tuple[int, int]:
    """The soft and hard 'Max open files' of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


async def test_a_low_soft_open_files_limit_is_lifted_to_the_hard_one(
    fake_openrouter: FakeOpenRouter, unused_tcp_port: int
) -> None:
    # A soft limit of 1,024 (many distributions' default) would stop the server near 500
    # chats, each holding a client and an upstream descriptor.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    assert hard > low, "the test needs a hard limit above 256 to show anything"

    def lower_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    env = {**os.environ, "OPENROUTER_BASE_URL": fake_openrouter.url, "LOG_LEVEL": "WARNING"}
    env.pop("PORT", None)
    process, _ = await start_server(env, unused_tcp_port, preexec_fn=lower_soft_limit)
    try:
        assert open_files_limits(process.pid) == (hard, hard)
    finally:
        assert await stop_server(process) == 0
