"""The page on a 375 px wide phone, and what it does when the socket drops."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from tests.browser.chat_page import answers, last_answer, prompt, send_message
from tests.browser.conftest import PHONE, OpenPage, screenshot
from tests.conftest import Serve
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event

pytestmark = pytest.mark.browser


async def horizontal_overflow_px(page: Page) -> int:
    overflow: int = await page.evaluate(
        "document.scrollingElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


async def test_the_page_works_at_375_px(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page(viewport=PHONE, color_scheme="dark")
    await expect(prompt(page)).to_be_in_viewport()
    await expect(page.get_by_role("button", name="Send", exact=True)).to_be_in_viewport()
    long_word = "x" * 300

    await send_message(page, f"wide {long_word}")
    await expect(last_answer(page)).to_have_text(f"wide {long_word}")
    await screenshot(page, "phone-answer")

    assert await horizontal_overflow_px(page) == 0
    box = await last_answer(page).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    await expect(prompt(page)).to_be_in_viewport()
    # The conversation list is one tap away and closes again.
    new_chat = page.get_by_role("button", name="New chat")
    await expect(new_chat).not_to_be_in_viewport()
    await page.get_by_role("button", name="Show conversations").click()
    await expect(new_chat).to_be_in_viewport()
    await screenshot(page, "phone-conversations")
    await new_chat.click()
    await expect(new_chat).not_to_be_in_viewport()
    await expect(answers(page)).to_have_count(0)


async def cut_the_network(server: TestServer) -> None:
    """Like a dead link: stop listening and abort every connection, without a closing frame."""
    assert server.runner is not None and server.runner.server is not None
    for site in server.runner.sites:
        await site.stop()
    for connection in server.runner.server.connections:
        assert connection.transport is not None
        connection.transport.abort()


async def test_a_dropped_socket_is_reported_and_an_answer_the_server_lost_is_marked(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Half an")), "hang"]))
    server = await serve()
    port = server.port
    page = await open_page(server)
    await send_message(page, "long answer please")
    await expect(last_answer(page)).to_have_text("Half an")

    await cut_the_network(server)

    connection = page.locator("#connection")
    await expect(connection).to_contain_text("Connection lost. Reconnecting in")
    await expect(page.get_by_role("button", name="Retry now")).to_be_visible()
    # The server may still have the answer: it is not called cut off while nobody knows.
    await expect(answers(page).last).to_have_attribute("data-status", "streaming")
    await expect(last_answer(page)).to_have_text("Half an")
    await asyncio.wait_for(fake_openrouter.requests[0].ended.wait(), timeout=5)
    await screenshot(page, "connection-lost")

    # A new process that never saw the chat: now the answer is known to be cut off.
    await serve(port=port)

    await expect(connection).to_have_text("Connected", timeout=20_000)
    await expect(answers(page).last).to_have_attribute("data-status", "interrupted")
    cut_off = answers(page).last.get_by_text("Connection lost: this answer was cut off.")
    await expect(cut_off).to_be_visible()
    await expect(last_answer(page)).to_have_text("Half an")
    await send_message(page, "back again")
    await expect(last_answer(page)).to_have_text("back again")
