"""The page as a user sees it: the locators and steps the browser tests share."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page, expect


def prompt(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message", exact=True)


def answers(page: Page) -> Locator:
    return page.locator("#messages article.assistant")


def last_answer(page: Page) -> Locator:
    return answers(page).last.locator(".message-body")


def conversation_links(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Conversation list").get_by_role("link")


async def send_message(page: Page, text: str) -> None:
    await prompt(page).fill(text)
    await prompt(page).press("Enter")


async def wait_until_answered(page: Page) -> None:
    """The last answer has ended, well or not: Send is back and the answer is no longer busy."""
    await expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
    await expect(answers(page).last).not_to_have_attribute("data-status", "streaming")


# What the page keeps in IndexedDB (read with the browser's own API, not the page's code).
READ_STORED = """async () => {
  const request = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result);
                                                     r.onerror = () => fail(r.error); });
  const db = await request(indexedDB.open("chatrelay"));
  const all = await request(db.transaction("conversations").objectStore("conversations").getAll());
  db.close();
  return all.sort((a, b) => b.updatedAt - a.updatedAt);
}"""


async def stored_conversations(page: Page) -> list[dict[str, Any]]:
    conversations: list[dict[str, Any]] = await page.evaluate(READ_STORED)
    return conversations
