"""Several conversations in the side list, kept in localStorage across reloads."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chat_page import (
    conversation_links,
    last_answer,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage, screenshot

pytestmark = pytest.mark.browser


async def test_history_survives_a_reload_with_rename_and_delete(open_page: OpenPage) -> None:
    page = await open_page()
    page.on("dialog", lambda dialog: dialog.accept())
    conversations = conversation_links(page)
    await send_message(page, "alpha question")
    await expect(last_answer(page)).to_have_text("alpha question")
    await wait_until_answered(page)
    await page.get_by_role("button", name="New chat").click()
    await send_message(page, "beta question")
    await expect(last_answer(page)).to_have_text("beta question")
    await wait_until_answered(page)
    await page.get_by_role("button", name="Rename “beta question”").click()
    await page.get_by_role("textbox", name="Conversation name").fill("Beta chat")
    await page.get_by_role("textbox", name="Conversation name").press("Enter")
    await expect(conversations).to_have_text(["Beta chat", "alpha question"])

    await page.reload()

    await expect(conversations).to_have_text(["Beta chat", "alpha question"])
    await expect(page.locator("[aria-current='page']")).to_have_text("Beta chat")
    await expect(last_answer(page)).to_have_text("beta question")
    await conversations.filter(has_text="alpha question").click()
    await expect(page.locator("#messages article.user .message-body")).to_have_text(
        ["alpha question"]
    )
    await expect(last_answer(page)).to_have_text("alpha question")
    await screenshot(page, "conversations")

    await page.get_by_role("button", name="Delete “Beta chat”").click()
    await expect(conversations).to_have_text(["alpha question"])
    await page.reload()
    await expect(conversations).to_have_text(["alpha question"])
