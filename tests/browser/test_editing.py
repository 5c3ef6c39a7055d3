"""Editing a question and switching versions: the edit box closes once sent, never shows text
that is no longer the question, and each answer says the model that wrote the version shown."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.chat_page import send_message, wait_until_answered
from tests.browser.conftest import OpenPage
from tests.fake_openrouter import FakeOpenRouter

pytestmark = pytest.mark.browser


async def edit(page: Page, index: int, text: str) -> None:
    await page.get_by_role("button", name="Edit this message and resend").nth(index).click()
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill(text)
    await page.get_by_role("button", name="Save & send").click()


async def test_the_edit_box_closes_once_sent_and_never_shows_stale_text(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    editor = page.get_by_role("textbox", name="Edit message")
    user = page.locator("#messages article.user .message-body")
    for text in ("one", "two"):
        await send_message(page, text)
        await wait_until_answered(page)

    await edit(page, 1, "two, again")  # the last question: a new version of its answer
    await expect(editor).to_have_count(0)
    await expect(user).to_have_text(["one", "two, again"])
    await wait_until_answered(page)

    await edit(page, 0, "one, again")  # an earlier one: a new branch
    await expect(editor).to_have_count(0)
    await expect(user).to_have_text(["one, again"])
    await wait_until_answered(page)

    # An edit box left open while another version of its question is shown closes.
    first_question = page.locator("#messages article.user").first
    await first_question.get_by_role("button", name="Previous version").click()
    await expect(user).to_have_text(["one", "two, again"])
    await page.get_by_role("button", name="Edit this message and resend").nth(1).click()
    await expect(editor).to_have_value("two, again")
    await (
        page.locator("#messages article.assistant")
        .last.get_by_role("button", name="Previous version")
        .click()
    )
    await expect(user).to_have_text(["one", "two"])
    await expect(editor).to_have_count(0)
    await expect(page.get_by_role("button", name="Edit this message and resend")).to_have_count(2)


async def test_the_model_label_follows_regenerate_and_versions(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    label = page.locator("#messages article.assistant .message-role")
    await send_message(page, "hello")
    await wait_until_answered(page)
    await expect(label).to_have_text("Assistant · openai/gpt-4o-mini")

    await page.get_by_role("combobox", name="Model").fill("anthropic/claude-3.5-sonnet")
    await page.get_by_role("button", name="Regenerate").click()
    await expect(label).to_have_text("Assistant · anthropic/claude-3.5-sonnet")
    await wait_until_answered(page)
    assert fake_openrouter.requests[1].body["model"] == "anthropic/claude-3.5-sonnet"

    await page.get_by_role("button", name="Previous version").click()
    await expect(label).to_have_text("Assistant · openai/gpt-4o-mini")
    await page.get_by_role("button", name="Next version").click()
    await expect(label).to_have_text("Assistant · anthropic/claude-3.5-sonnet")
