"""What must never happen to a user's work: two tabs overwriting each other, model output taking
over the page's controls, a key change killing an answer, failed turns poisoning the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    prompt,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage
from tests.conftest import USER_KEY
from tests.fake_openrouter import (
    COMMENT,
    FakeOpenRouter,
    Reply,
    Step,
    chunk,
    error_reply,
    event,
    sse_reply,
)

pytestmark = pytest.mark.browser


async def second_tab(page: Page) -> Page:
    """Another tab of the same browser (same storage, same cookies) on the same page."""
    tab = await page.context.new_page()
    await tab.goto(page.url.split("#")[0])
    await expect(tab.locator("#connection")).to_have_text("Connected")
    return tab


async def test_two_tabs_never_overwrite_each_other(open_page: OpenPage) -> None:
    first = await open_page()
    second = await second_tab(first)

    await send_message(first, "alpha from the first tab")
    await wait_until_answered(first)
    # The other tab hears of it at once, without a reload.
    await expect(conversation_links(second)).to_have_text(["alpha from the first tab"])
    await second.get_by_role("button", name="New chat").click()
    await send_message(second, "beta from the second tab")
    await wait_until_answered(second)
    await expect(conversation_links(first)).to_have_text(
        ["beta from the second tab", "alpha from the first tab"]
    )

    for tab in (first, second):
        await tab.reload()
        await expect(conversation_links(tab)).to_have_text(
            ["beta from the second tab", "alpha from the first tab"]
        )
    await conversation_links(second).filter(has_text="alpha").click()
    await expect(last_answer(second)).to_have_text("alpha from the first tab")


CLOBBERING = (
    'Look: <span id="prompt">fake box</span> <input id="stop" name="send"> '
    '<form id="composer" name="composer"><button id="send">fake send</button></form> '
    '<a id="messages" name="prompt" href="#x">anchor</a> done'
)


async def test_model_output_cannot_reach_the_page_controls(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        sse_reply([CLOBBERING]),
        Reply(steps=[COMMENT, event(chunk("still")), event(chunk(" mine")), "hang"]),
    )
    page = await open_page()
    await send_message(page, "clobber the page")
    await wait_until_answered(page)
    await expect(last_answer(page)).to_contain_text("done")
    await expect(last_answer(page).locator("[id], [name]")).to_have_count(0)
    await expect(last_answer(page).locator("form, button:not(.copy-code)")).to_have_count(0)

    # The same conversation still sends, and the real Stop shows and works.
    await send_message(page, "and now?")
    await expect(last_answer(page)).to_have_text("still mine")
    stop = page.get_by_role("button", name="Stop", exact=True)
    await expect(stop).to_be_visible()
    await stop.click()
    await expect(answers(page).last).to_have_attribute("data-status", "cancelled")
    await expect(prompt(page)).to_have_value("")
    last_sent = fake_openrouter.requests[1].body["messages"][-1]
    assert last_sent == {"role": "user", "content": "and now?"}


async def test_saving_a_key_does_not_stop_a_running_answer(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    steps: list[Step] = [COMMENT, event(chunk("First half,")), 2.0, event(chunk(" second half."))]
    fake_openrouter.script(Reply(steps=[*steps, *sse_reply([]).steps[1:]]))
    page = await open_page(upstream_timeout_s=10.0)
    await send_message(page, "a slow answer")
    await expect(last_answer(page)).to_have_text("First half,")

    await page.get_by_role("button", name="API key").click()
    dialog = page.get_by_role("dialog", name="OpenRouter API key")
    await dialog.get_by_label("API key").fill(USER_KEY)
    await dialog.get_by_role("button", name="Save", exact=True).click()
    await expect(dialog).to_be_hidden()

    await wait_until_answered(page)
    await expect(answers(page).last).to_have_attribute("data-status", "done")
    await expect(last_answer(page)).to_have_text("First half, second half.")
    # The next chat goes over the new socket, with the new key.
    await send_message(page, "with my key")
    await expect(last_answer(page)).to_have_text("with my key")
    assert fake_openrouter.requests[1].headers["Authorization"] == f"Bearer {USER_KEY}"


async def test_a_failed_turn_stays_visible_but_out_of_the_next_request(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(error_reply(400, "This model is unavailable"))
    page = await open_page()
    await send_message(page, "first try")
    error = answers(page).first.get_by_text("This model is unavailable")
    await expect(error).to_be_visible()
    await expect(answers(page).last.get_by_role("button", name="Retry")).to_be_visible()

    await send_message(page, "second question")
    await expect(last_answer(page)).to_have_text("second question")

    await expect(error).to_be_visible()
    await expect(page.locator("#messages article.user .message-body")).to_have_text(
        ["first try", "second question"]
    )
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "second question"}
    ]


async def test_retry_sends_the_failed_turn_again(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(error_reply(502, "Provider returned error"))
    page = await open_page()
    await send_message(page, "please work")
    await expect(answers(page).last.get_by_text("Provider returned error")).to_be_visible()

    await answers(page).last.get_by_role("button", name="Retry").click()

    await expect(last_answer(page)).to_have_text("please work")
    await expect(answers(page)).to_have_count(1)
    await expect(answers(page).last).to_have_attribute("data-status", "done")
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "please work"}
    ]


async def test_a_conversation_larger_than_local_storage_is_kept_whole(
    open_page: OpenPage, tmp_path: Path
) -> None:
    big = "x" * (6 * 1024 * 1024)  # more than localStorage's 5 MB
    conversation = {
        "id": "big-one",
        "title": "big one",
        "messages": [{"id": "m1", "role": "user", "content": big}],
    }
    exported = tmp_path / "big.json"
    exported.write_text(json.dumps({"conversations": [conversation]}))
    page = await open_page()
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_role("button", name="Import").click()
    await (await chooser_info.value).set_files(exported)
    await expect(conversation_links(page)).to_have_text(["big one"])

    await page.reload()

    await conversation_links(page).first.click()
    shown = page.locator("#messages article.user .message-body")
    assert await shown.evaluate("el => el.textContent.length") == len(big)
    await expect(page.get_by_role("alert")).to_be_hidden()
