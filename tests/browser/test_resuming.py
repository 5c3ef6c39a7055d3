"""Answers outlive the socket and the page: after a reload, a dropped socket or a closed tab the
page resumes each unfinished answer from its last seq, so the text ends exact and upstream is
asked once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from server.app import create_app
from server.config import Settings
from server.runner import make_runner
from tests.browser.chat_page import answers, last_answer, send_message, wait_until_answered
from tests.browser.conftest import OpenPage
from tests.conftest import Serve
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event, sse_reply
from tests.redis_server import RedisServer
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

FIRST = ["One, ", "two, ", "three. "]
SECOND = ["Four, ", "five, ", "six."]


def answer_with_a_pause(resume: asyncio.Event) -> Reply:
    """FIRST, then nothing until the test sets `resume`, then SECOND and the end."""
    steps: list[Step] = [COMMENT, *(event(chunk(t)) for t in FIRST), resume]
    steps += [event(chunk(t)) for t in SECOND]
    return Reply(steps=[*steps, *sse_reply([]).steps[1:]])


async def ends_exact(page: Page) -> None:
    await wait_until_answered(page)
    await expect(answers(page).last).to_have_attribute("data-status", "done")
    await expect(last_answer(page)).to_have_text("".join(FIRST + SECOND))


def drop_every_connection(server: TestServer) -> None:
    """The link drops (no closing frame); the server itself stays up."""
    assert server.runner is not None and server.runner.server is not None
    for connection in server.runner.server.connections:
        assert connection.transport is not None
        connection.transport.abort()


async def test_a_reload_mid_answer_resumes_it_exactly(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    resume = asyncio.Event()
    fake_openrouter.script(answer_with_a_pause(resume))
    page = await open_page(upstream_timeout_s=30.0)
    await send_message(page, "count to six")
    await expect(last_answer(page)).to_have_text("".join(FIRST).strip())

    await page.reload()
    resume.set()

    await ends_exact(page)
    assert len(fake_openrouter.requests) == 1


async def test_a_dropped_socket_resumes_the_answer_exactly(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    resume = asyncio.Event()
    fake_openrouter.script(answer_with_a_pause(resume))
    server = await serve(upstream_timeout_s=30.0)
    page = await open_page(server)
    await send_message(page, "count to six")
    await expect(last_answer(page)).to_have_text("".join(FIRST).strip())

    drop_every_connection(server)

    await expect(page.locator("#connection")).to_contain_text("Connection lost")
    await expect(answers(page).last).to_have_attribute("data-status", "streaming")
    resume.set()
    await ends_exact(page)
    assert len(fake_openrouter.requests) == 1
    assert not fake_openrouter.requests[0].disconnected


async def test_a_second_tab_follows_and_takes_over_when_the_first_closes(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    resume = asyncio.Event()
    fake_openrouter.script(answer_with_a_pause(resume))
    first = await open_page(upstream_timeout_s=30.0)
    await send_message(first, "count to six")
    await expect(last_answer(first)).to_have_text("".join(FIRST).strip())
    second = await first.context.new_page()
    await second.goto(first.url)
    await expect(last_answer(second)).to_have_text("".join(FIRST).strip())

    await first.close()
    resume.set()

    await ends_exact(second)
    assert len(fake_openrouter.requests) == 1


async def test_the_page_has_a_session_before_its_first_chat(browser: Browser, serve: Serve) -> None:
    server = await serve()
    context = await browser.new_context()
    page = await context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url.split("/", 3)[-1]))
    page.on("websocket", lambda socket: seen.append("socket"))
    await page.goto(str(server.make_url("/")))
    await expect(page.locator("#connection")).to_have_text("Connected")

    assert seen.index("api/profile") < seen.index("socket")
    assert await context.cookies(), "the profile call gave the browser no session"


async def test_a_resume_while_the_chat_store_is_away_is_retried_not_cut_off(
    browser: Browser,
    serve: Serve,
    settings: Settings,
    fake_openrouter: FakeOpenRouter,
    make_redis_server: Callable[..., RedisServer],
    unused_tcp_port: int,
) -> None:
    redis = make_redis_server()
    resume = asyncio.Event()
    fake_openrouter.script(answer_with_a_pause(resume))
    options: dict[str, Any] = {"redis_url": redis.url, "upstream_timeout_s": 30.0}
    # The process running the chat gets SIGTERM (a deploy) while the answer pauses.
    running = make_runner(create_app(dataclasses.replace(settings, **options)))
    await running.setup()
    shutdown: asyncio.Future[None] | None = None
    context = await browser.new_context()
    try:
        await web.TCPSite(running, "127.0.0.1", unused_tcp_port).start()
        page = await context.new_page()
        received: list[str] = []

        def heard(data: str | bytes) -> None:
            received.append(str(data))

        page.on("websocket", lambda ws: ws.on("framereceived", heard))
        await page.goto(f"http://127.0.0.1:{unused_tcp_port}/")
        # Typed before the page's script is ready, Enter would only add a line.
        await expect(page.locator("#connection")).to_have_text("Connected")
        await send_message(page, "count to six")
        await expect(last_answer(page)).to_have_text("".join(FIRST).strip())

        redis.stop()
        shutdown = asyncio.ensure_future(running.cleanup())
        # The page reconnects to the next process at the address, and Redis is still away:
        # its resume gets 503, which says "try again", not "this chat is gone".
        await serve(port=unused_tcp_port, **options)
        await wait_until(
            lambda: any('"status":503' in str(f) for f in received), "a resume got 503", 20
        )
        await expect(answers(page).last).to_have_attribute("data-status", "streaming")
        redis.start()
        resume.set()

        await ends_exact(page)
        assert len(fake_openrouter.requests) == 1
    finally:
        # Even when it failed: a runner left open leaks its sockets into a later test.
        await context.close()
        resume.set()
        await asyncio.wait_for(running.cleanup() if shutdown is None else shutdown, timeout=30)
