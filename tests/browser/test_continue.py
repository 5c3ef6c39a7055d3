"""An answer the server could not finish (503 at the end of a shutdown's grace) can be continued:
a new chat whose messages end with the partial answer, its text appended to that answer."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chat_page import answers, last_answer, send_message, wait_until_answered
from tests.browser.conftest import OpenPage
from tests.fake_openrouter import FakeOpenRouter, sse_reply, stream_error_reply

pytestmark = pytest.mark.browser


async def test_a_503_answer_offers_to_continue(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        stream_error_reply(503, "The server is restarting", ("Roses are red, ",)),
        sse_reply(["violets are blue."]),
    )
    page = await open_page()
    await send_message(page, "a poem")
    await expect(answers(page).last.get_by_text("The server is restarting")).to_be_visible()
    await expect(last_answer(page)).to_have_text("Roses are red,")

    await answers(page).last.get_by_role("button", name="Continue").click()

    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("Roses are red, violets are blue.")
    await expect(answers(page)).to_have_count(1)
    await expect(answers(page).last.get_by_text("The server is restarting")).to_have_count(0)
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "a poem"},
        {"role": "assistant", "content": "Roses are red, "},
    ]
