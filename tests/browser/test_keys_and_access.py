"""The API key dialog (PUT /api/profile) and the access-token login, against the real server."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chat_page import answers, last_answer, send_message
from tests.browser.conftest import OpenPage, screenshot
from tests.conftest import USER_KEY
from tests.fake_openrouter import FakeOpenRouter

pytestmark = pytest.mark.browser

KEY_MISSING = "OpenRouter API Key not found. Please set it in your profile settings."


async def test_missing_key_error_is_shown_and_opens_the_key_dialog(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page(openrouter_api_key=None)

    await send_message(page, "hello")

    await expect(answers(page).last.locator(".message-error")).to_have_text(KEY_MISSING)
    dialog = page.get_by_role("dialog", name="OpenRouter API key")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("alert")).to_have_text(KEY_MISSING)
    await screenshot(page, "key-dialog")
    assert fake_openrouter.requests == []


async def test_key_saved_in_the_dialog_is_used_upstream(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page(openrouter_api_key=None)
    await send_message(page, "hello there")
    dialog = page.get_by_role("dialog", name="OpenRouter API key")
    await expect(dialog).to_be_visible()

    await dialog.get_by_label("API key").fill(USER_KEY)
    await dialog.get_by_role("button", name="Save", exact=True).click()

    # The failed answer is retried over a new socket, which carries the new session.
    await expect(dialog).to_be_hidden()
    await expect(last_answer(page)).to_have_text("hello there")
    [request] = fake_openrouter.requests
    assert request.headers["Authorization"] == f"Bearer {USER_KEY}"
    await expect(page.locator("#key-hint")).to_have_text("…" + USER_KEY[-4:])
    assert USER_KEY not in await page.content()

    await page.get_by_role("button", name="API key …").click()
    await expect(dialog.locator("#key-status")).to_have_text(
        f"A key ending in …{USER_KEY[-4:]} is saved for this browser."
    )
    await expect(dialog.get_by_label("API key")).to_have_value("")
    await dialog.get_by_role("button", name="Cancel").click()
    await send_message(page, "and again")
    await expect(last_answer(page)).to_have_text("and again")
    assert fake_openrouter.requests[1].headers["Authorization"] == f"Bearer {USER_KEY}"


async def test_login_prompt_when_an_access_token_is_required(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page(access_token="let-me-in", connected=False)
    dialog = page.get_by_role("dialog", name="Access token required")
    await expect(dialog).to_be_visible()
    await screenshot(page, "login")

    await dialog.get_by_label("Access token").fill("wrong")
    await dialog.get_by_role("button", name="Sign in").click()
    await expect(dialog.get_by_role("alert")).to_have_text("Invalid access token")
    await dialog.get_by_label("Access token").fill("let-me-in")
    await dialog.get_by_role("button", name="Sign in").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#connection")).to_have_text("Connected")
    await send_message(page, "signed in")
    await expect(last_answer(page)).to_have_text("signed in")
    assert len(fake_openrouter.requests) == 1
