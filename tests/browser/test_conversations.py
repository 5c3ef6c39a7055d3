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


# The reload is asked in the same task as the change, so the change's IndexedDB write has not
# even begun when the page goes: it is the journal in localStorage that keeps it.
RENAME_AND_RELOAD = """name => {
  const input = document.querySelector("input[aria-label='Conversation name']");
  input.value = name;
  input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  location.reload();
}"""

DELETE_AND_RELOAD = """label => {
  document.querySelector(`button[aria-label="${label}"]`).click();
  location.reload();
}"""


async def test_a_rename_and_a_delete_survive_a_reload_asked_at_once(
    open_page: OpenPage,
) -> None:
    page = await open_page()
    page.on("dialog", lambda dialog: dialog.accept())
    conversations = conversation_links(page)
    for question in ("first question", "second question", "third question"):
        await page.get_by_role("button", name="New chat").click()
        await send_message(page, question)
        await expect(last_answer(page)).to_have_text(question)
        await wait_until_answered(page)
    await expect(conversations).to_have_text(
        ["third question", "second question", "first question"]
    )

    await page.get_by_role("button", name="Rename “third question”").click()
    async with page.expect_event("load"):
        await page.evaluate(RENAME_AND_RELOAD, "Renamed just before leaving")
    await expect(conversations).to_have_text(
        ["Renamed just before leaving", "second question", "first question"]
    )

    async with page.expect_event("load"):
        await page.evaluate(DELETE_AND_RELOAD, "Delete “second question”")
    await expect(conversations).to_have_text(["Renamed just before leaving", "first question"])

    await page.reload()
    await expect(conversations).to_have_text(["Renamed just before leaving", "first question"])
