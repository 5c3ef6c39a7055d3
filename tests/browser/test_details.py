"""The small things a demanding user notices: Markdown details, code blocks, the heading, the
phone list, touch targets, the list order, the growing box, the network line, foreign images."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import FloatRect, Locator, expect

from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    prompt,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import PHONE, OpenPage
from tests.conftest import Serve
from tests.fake_openrouter import FakeOpenRouter, sse_reply

pytestmark = pytest.mark.browser

DETAILS = [
    "- [x] done\n- [ ] open\n\n",
    "> quoted\n\n",
    "```python\ndef f():\n    return 1\n```\n\n",
    "```\nno language here\n```\n\n",
    "![a chart](https://example.com/chart.png)\n",
]


async def box(locator: Locator) -> FloatRect:
    found = await locator.bounding_box()
    assert found is not None
    return found


async def test_markdown_and_code_blocks_look_right(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(DETAILS))
    page = await open_page()
    await send_message(page, "details")
    await wait_until_answered(page)
    answer = last_answer(page)

    checkbox = answer.get_by_role("checkbox").first
    assert (await box(checkbox))["width"] < 30
    task = answer.get_by_role("listitem").first
    assert await task.evaluate("li => getComputedStyle(li).listStyleType") == "none"
    quote = answer.locator("blockquote")
    assert await quote.evaluate("q => parseFloat(getComputedStyle(q).borderLeftWidth)") > 0

    blocks = answer.locator(".code-block")
    await expect(blocks.nth(0).locator(".code-head")).to_contain_text("python")
    await expect(blocks.nth(0).locator(".hljs-keyword").first).to_have_text("def")
    await expect(blocks.nth(1).locator(".code-head")).to_contain_text("text")
    await expect(blocks.nth(1).locator("[class^='hljs-']")).to_have_count(0)
    copy = blocks.nth(0).get_by_role("button", name="Copy code")
    code = blocks.nth(0).locator("pre")
    assert (await box(copy))["y"] + (await box(copy))["height"] <= (await box(code))["y"] + 1

    # A foreign image cannot load under the CSP: a link to it instead of a broken picture.
    link = answer.get_by_role("link", name="Image: a chart")
    await expect(link).to_have_attribute("href", "https://example.com/chart.png")
    await expect(page.get_by_role("heading", level=1)).to_have_text("chatrelay")


async def test_the_phone_list_takes_and_gives_back_focus_and_targets_are_big(
    open_page: OpenPage,
) -> None:
    page = await open_page(viewport=PHONE)
    await send_message(page, "hello")
    await wait_until_answered(page)
    menu = page.get_by_role("button", name="Show conversations")
    await menu.click()
    await expect(page.get_by_role("button", name="New chat")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu).to_be_focused()
    await expect(page.get_by_role("button", name="New chat")).not_to_be_in_viewport()

    for control in await page.locator("main button:visible").all():
        size = await box(control)
        name = await control.text_content()
        assert size["height"] >= 44 and size["width"] >= 44, name


async def test_the_list_keeps_no_empty_chats_and_puts_recent_activity_first(
    open_page: OpenPage,
) -> None:
    page = await open_page()
    for _ in range(3):
        await page.get_by_role("button", name="New chat").click()
    await expect(conversation_links(page)).to_have_count(0)
    await send_message(page, "older")
    await wait_until_answered(page)
    await page.get_by_role("button", name="New chat").click()
    await send_message(page, "newer")
    await wait_until_answered(page)
    await expect(conversation_links(page)).to_have_text(["newer", "older"])

    await conversation_links(page).filter(has_text="older").click()
    await send_message(page, "older again")
    await wait_until_answered(page)
    await expect(conversation_links(page)).to_have_text(["older", "newer"])


async def test_the_message_box_grows_with_its_text(open_page: OpenPage) -> None:
    page = await open_page()
    before = (await box(prompt(page)))["height"]
    await prompt(page).fill("one\ntwo\nthree\nfour\nfive")
    assert (await box(prompt(page)))["height"] > before + 40


async def test_offline_and_back_online(open_page: OpenPage) -> None:
    page = await open_page()
    await page.context.set_offline(True)
    await expect(page.locator("#connection")).to_contain_text("Offline")
    await page.context.set_offline(False)
    await expect(page.locator("#connection")).to_have_text("Connected")
    await send_message(page, "online again")
    await expect(last_answer(page)).to_have_text("online again")


async def test_reconnecting_counts_down_and_can_retry_now(
    open_page: OpenPage, serve: Serve
) -> None:
    server = await serve()
    port = server.port
    page = await open_page(server)
    await server.close()
    connection = page.locator("#connection")
    # Wait for a wait long enough to watch: a few tries in, the backoff is seconds.
    seconds = 0
    for _ in range(40):
        match = re.search(r"Reconnecting in (\d+) s", await connection.inner_text())
        seconds = int(match.group(1)) if match else 0
        if seconds >= 3:
            break
        await asyncio.sleep(0.25)
    assert seconds >= 3
    await expect(connection).to_contain_text(f"Reconnecting in {seconds - 1} s", timeout=3000)

    await serve(port=port)
    await page.get_by_role("button", name="Retry now").click()
    await expect(connection).to_have_text("Connected", timeout=2000)
    await send_message(page, "retried")
    await expect(answers(page).last).to_be_visible()
