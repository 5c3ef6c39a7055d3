"""Graceful shutdown through the real runner: chats finish within the grace, then 503 and 1001."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.metrics import metrics_key
from server.runner import GracefulRunner, make_runner, shutdown_budget_s
from tests.clients import chat_frame, receive
from tests.conftest import chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.waiting import wait_until

HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])
WS = aiohttp.ClientWebSocketResponse


@dataclasses.dataclass
class Served:
    url: str
    runner: GracefulRunner
    session: aiohttp.ClientSession
    shutdown: asyncio.Future[None] | None = None

    def shut_down(self) -> asyncio.Future[None]:
        """What SIGTERM starts: the runner's cleanup, running while the test goes on."""
        self.shutdown = asyncio.ensure_future(self.runner.cleanup())
        return self.shutdown

    async def refuses_connections(self) -> bool:
        """Whether listening stopped, as a new client sees it; the drain starts with it."""
        host, port = self.url.removeprefix("http://").split(":")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except ConnectionError:  # refused, or reset while queued on the closed listener
            return True
        writer.close()
        await writer.wait_closed()
        return False


ServeGraceful = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve_graceful(
    settings: Settings, unused_tcp_port_factory: Any
) -> AsyncIterator[ServeGraceful]:
    """chatrelay through the runner both start paths use; each one is shut down at the end."""
    served: list[Served] = []
    async with aiohttp.ClientSession() as session:

        async def start(**overrides: Any) -> Served:
            runner = make_runner(create_app(dataclasses.replace(settings, **overrides)))
            await runner.setup()
            port = unused_tcp_port_factory()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            served.append(Served(f"http://127.0.0.1:{port}", runner, session))
            return served[-1]

        yield start
    for one in served:
        await asyncio.wait_for(one.shutdown or one.shut_down(), timeout=30)


async def close_code(ws: WS) -> int:
    """The code in the server's close frame, which is what a browser's onclose reports."""
    message = await asyncio.wait_for(ws.receive(), timeout=10)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    code: int = message.data
    return code


async def test_a_running_chat_finishes_within_the_grace_then_the_socket_closes_1001(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["one", " two", " three"], delay_s=0.3))
    served = await serve_graceful(shutdown_grace_s=10.0)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    assert (await receive(ws))["content"] == "one"
    shutdown = served.shut_down()
    await wait_until(served.refuses_connections, "the server stopped listening")
    # The socket is still read during the grace: a new chat is refused, not ignored.
    await ws.send_str(chat_frame("late"))
    frames = [await receive(ws)]
    while frames[-1]["type"] != "done":
        frames.append(await receive(ws))
    [refused] = [f for f in frames if f["id"] == "late"]
    assert refused["type"] == "error" and refused["status"] == 503
    text = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert "one" + text == "one two three"
    assert frames[-1]["finish_reason"] == "stop"
    assert await close_code(ws) == 1001
    await asyncio.wait_for(shutdown, timeout=10)
    assert len(fake_openrouter.requests) == 1


async def test_aiohttp_own_cleanup_stops_reading_open_websockets(unused_tcp_port: int) -> None:
    """Pins the aiohttp behaviour GracefulRunner (server/runner.py) works around:
    `AppRunner.cleanup()` calls `Server.pre_shutdown()`, which closes every connection's
    request handler, before `on_shutdown` runs; from then on what a client sends on an open
    WebSocket is not delivered. Were the grace held in on_shutdown, cancel frames and the
    heartbeat's pongs would be lost. If this starts failing, aiohttp changed its order."""

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        return ws

    async def hold(app: web.Application) -> None:
        await asyncio.sleep(1.0)

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.on_shutdown.append(hold)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{unused_tcp_port}/echo")
        await ws.send_str("before")
        assert (await ws.receive(timeout=2)).data == "before"
        cleanup = asyncio.ensure_future(runner.cleanup())
        await asyncio.sleep(0.2)  # on_shutdown is holding now
        await ws.send_str("during")
        message = await ws.receive(timeout=5)
        assert message.type is not aiohttp.WSMsgType.TEXT, message
        await cleanup


async def test_cancel_still_works_during_the_grace(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    # GracefulRunner holds the grace before aiohttp's cleanup: see the test above.
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=10.0)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    assert (await receive(ws))["content"] == "started"
    shutdown = served.shut_down()
    await wait_until(served.refuses_connections, "the server stopped listening")
    await ws.send_str(orjson.dumps({"type": "cancel", "id": "a"}).decode())
    assert (await receive(ws))["finish_reason"] == "cancelled"
    # The last chat ended, so the shutdown goes on without waiting out the 10 s.
    assert await close_code(ws) == 1001
    await asyncio.wait_for(shutdown, timeout=5)


async def test_when_the_grace_runs_out_ws_chats_get_503_then_close_1001(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=0.3)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    assert (await receive(ws))["content"] == "started"
    shutdown = served.shut_down()
    ended = await receive(ws)
    assert ended["type"] == "error" and ended["id"] == "a" and ended["status"] == 503
    assert await close_code(ws) == 1001
    await asyncio.wait_for(shutdown, timeout=10)
    upstream = fake_openrouter.requests[0]
    await upstream.wait_dropped_by_relay(2)


async def test_when_the_grace_runs_out_sse_gets_an_error_event(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=0.3)
    response = await served.session.post(
        f"{served.url}/api/chat/openrouter",
        data=orjson.dumps(chat_body()),
        headers={"Accept": "text/event-stream"},
    )
    assert response.status == 200
    first = await response.content.readuntil(b"\n\n")
    assert first.startswith(b"event: delta")
    shutdown = served.shut_down()
    rest = await asyncio.wait_for(response.content.read(), timeout=10)
    name, seq, data = rest.strip().split(b"\n")
    assert (name, seq) == (b"event: error", b"id: 2")
    assert orjson.loads(data.removeprefix(b"data: "))["status"] == 503
    await asyncio.wait_for(shutdown, timeout=10)
    upstream = fake_openrouter.requests[0]
    await upstream.wait_dropped_by_relay(2)


async def test_when_the_grace_runs_out_a_plain_stream_is_aborted(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=0.3)
    # `async with`: the broken response's connection is closed here, not left for the garbage
    # collector to warn about in a later test.
    async with served.session.post(
        f"{served.url}/api/chat/openrouter", data=orjson.dumps(chat_body())
    ) as response:
        assert await response.content.readany() == b"started"
        shutdown = served.shut_down()
        # Plain text cannot say "failed" in-band: the client's read fails instead.
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.content.read(), timeout=10)
    await asyncio.wait_for(shutdown, timeout=10)


async def test_a_post_on_a_kept_alive_connection_during_the_grace_gets_503(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=10.0)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    assert (await receive(ws))["content"] == "started"
    # One idle keep-alive connection to the server, opened before the shutdown.
    async with served.session.get(f"{served.url}/healthz") as health:
        assert health.status == 200
    shutdown = served.shut_down()
    await wait_until(served.refuses_connections, "the server stopped listening")
    async with served.session.post(
        f"{served.url}/api/chat/openrouter", data=orjson.dumps(chat_body())
    ) as late:
        assert late.status == 503
        assert "restarting" in (await late.json())["message"]
    await ws.close()
    await asyncio.wait_for(shutdown, timeout=5)


async def test_idle_sockets_close_at_once(serve_graceful: ServeGraceful) -> None:
    served = await serve_graceful(shutdown_grace_s=10.0)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    loop = asyncio.get_running_loop()
    started = loop.time()
    shutdown = served.shut_down()
    assert await close_code(ws) == 1001
    await asyncio.wait_for(shutdown, timeout=10)
    assert loop.time() - started < 5


def test_the_default_grace_ends_before_the_platform_kill() -> None:
    assert shutdown_budget_s(Settings().shutdown_grace_s) < 29


async def test_a_chat_ended_by_the_shutdown_is_logged_and_counted_as_503_not_a_cancel(
    serve_graceful: ServeGraceful, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.chat")
    fake_openrouter.script(HANG)
    served = await serve_graceful(shutdown_grace_s=0.3)
    ws = await served.session.ws_connect(f"{served.url}/api/chat/ws")
    await ws.send_str(chat_frame("a"))
    assert (await receive(ws))["content"] == "started"
    metrics = served.runner.app[metrics_key]
    shutdown = served.shut_down()
    assert (await receive(ws))["status"] == 503
    await asyncio.wait_for(shutdown, timeout=10)
    [line] = [r for r in caplog.records if r.name == "server.chat"]
    fields = vars(line)
    assert (fields["status"], fields["outcome"], fields["cancelled"]) == (503, "error", False)
    counted = metrics.registry.get_sample_value
    assert counted("chatrelay_chats_total", {"transport": "ws", "outcome": "error"}) == 1
    assert counted("chatrelay_chats_total", {"transport": "ws", "outcome": "cancelled"}) == 0
