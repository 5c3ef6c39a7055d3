"""A browser that used the earlier page (one localStorage document) keeps its conversations."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from tests.browser.chat_page import answers, conversation_links, last_answer, stored_conversations
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser

LEGACY = {
    "activeId": "b",
    "conversations": [
        {
            "id": "b",
            "title": "cut by a reload",
            "model": "openai/gpt-4o-mini",
            "temperature": 0.7,
            "systemPrompt": "",
            "messages": [
                {"role": "user", "content": "tell me"},
                {"role": "assistant", "content": "Half", "status": "streaming"},
            ],
        },
        {
            "id": "a",
            "title": "an old one",
            "model": "openai/gpt-4o-mini",
            "temperature": 0.7,
            "systemPrompt": "",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello!", "status": "done"},
            ],
        },
    ],
}


async def test_conversations_from_local_storage_move_to_indexeddb(open_page: OpenPage) -> None:
    page = await open_page()
    await page.evaluate(
        "data => localStorage.setItem('chatrelay.conversations.v1', data)", json.dumps(LEGACY)
    )

    await page.reload()

    await expect(conversation_links(page)).to_have_text(["cut by a reload", "an old one"])
    await conversation_links(page).filter(has_text="cut by a reload").click()
    await expect(answers(page).last).to_have_attribute("data-status", "interrupted")
    await expect(last_answer(page)).to_have_text("Half")
    assert await page.evaluate("localStorage.getItem('chatrelay.conversations.v1')") is None
    stored = {c["id"]: c for c in await stored_conversations(page)}
    assert stored["a"]["messages"][1]["content"] == "Hello!"
