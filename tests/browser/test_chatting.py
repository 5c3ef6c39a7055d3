"""Chatting in a real Chromium: streaming, Stop, Regenerate, edit, settings, errors."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.chat_page import (
    answers,
    last_answer,
    prompt,
    send_message,
    stored_conversations,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage, screenshot
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


async def test_a_message_streams_in_and_lands_exactly(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    tokens = ["Hel", "lo, ", "**wor", "ld**", "! Ünïcode ✓", "\n\n", "Line", " two."]
    fake_openrouter.script(sse_reply(tokens, delay_s=0.02))
    page = await open_page()

    await send_message(page, "Say hello")

    await wait_until_answered(page)
    await expect(last_answer(page).locator("p")).to_have_text(
        ["Hello, world! Ünïcode ✓", "Line two."]
    )
    await expect(last_answer(page).locator("strong")).to_have_text("world")
    await expect(page.locator("#messages article.user .message-body")).to_have_text("Say hello")
    stored = await stored_conversations(page)
    question, answer = stored[0]["messages"]
    assert (question["role"], question["content"]) == ("user", "Say hello")
    assert (answer["role"], answer["content"], answer["status"], answer["model"]) == (
        "assistant",
        "".join(tokens),
        "done",
        "openai/gpt-4o-mini",
    )
    [request] = fake_openrouter.requests
    assert request.body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert request.body["model"] == "openai/gpt-4o-mini"
    await screenshot(page, "answer-desktop")


def hanging_reply(*tokens: str) -> Reply:
    """Some tokens, then a model that thinks forever: only a cancel can end it."""
    return Reply(steps=[COMMENT, *(event(chunk(token)) for token in tokens), "hang"])


async def test_stop_cancels_upstream_and_keeps_what_arrived(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(hanging_reply("Partial ", "answer"))
    page = await open_page()

    await send_message(page, "Tell me a long story")
    # Shown while upstream is still open: the answer streams in, it does not wait for the end.
    await expect(last_answer(page)).to_have_text("Partial answer")
    await screenshot(page, "streaming")
    await page.get_by_role("button", name="Stop", exact=True).click()

    [request] = fake_openrouter.requests
    await request.wait_dropped_by_relay(5)
    await wait_until_answered(page)
    await expect(answers(page).last).to_have_attribute("data-status", "cancelled")
    await expect(answers(page).last.locator(".message-note")).to_have_text("Stopped.")
    await expect(last_answer(page)).to_have_text("Partial answer")
    await screenshot(page, "stopped")


async def test_regenerate_replaces_the_last_answer(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["First", " answer"]), sse_reply(["A fresh", " answer"]))
    page = await open_page()
    await send_message(page, "Question")
    await expect(last_answer(page)).to_have_text("First answer")
    await wait_until_answered(page)

    await page.get_by_role("button", name="Regenerate").click()

    await expect(last_answer(page)).to_have_text("A fresh answer")
    await expect(answers(page)).to_have_count(1)
    # The replaced answer is kept as a version.
    await wait_until_answered(page)
    await expect(answers(page).last.get_by_text("2/2")).to_be_visible()
    await page.get_by_role("button", name="Previous version").click()
    await expect(last_answer(page)).to_have_text("First answer")
    await expect(answers(page).last.get_by_text("1/2")).to_be_visible()
    await page.get_by_role("button", name="Next version").click()
    await expect(last_answer(page)).to_have_text("A fresh answer")
    first, second = fake_openrouter.requests
    assert (
        second.body["messages"]
        == first.body["messages"]
        == [{"role": "user", "content": "Question"}]
    )


async def test_edit_resends_from_that_message(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    await send_message(page, "first try")
    await expect(last_answer(page)).to_have_text("first try")
    await wait_until_answered(page)

    await page.get_by_role("button", name="Edit this message and resend").click()
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill("second try")
    await editor.press("Enter")

    await expect(page.locator("#messages article.user .message-body")).to_have_text(["second try"])
    await expect(last_answer(page)).to_have_text("second try")
    await expect(answers(page)).to_have_count(1)
    # The first exchange is kept: its version shows the question it answered.
    await wait_until_answered(page)
    await page.get_by_role("button", name="Previous version").click()
    await expect(page.locator("#messages article.user .message-body")).to_have_text(["first try"])
    await expect(last_answer(page)).to_have_text("first try")
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "second try"}
    ]


async def test_editing_an_earlier_question_keeps_the_turns_after_it_as_a_branch(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    questions = page.locator("#messages article.user .message-body")
    for text in ("one", "two"):
        await send_message(page, text)
        await expect(last_answer(page)).to_have_text(text)
        await wait_until_answered(page)

    await page.get_by_role("button", name="Edit this message and resend").first.click()
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill("one, again")
    await editor.press("Enter")

    await expect(last_answer(page)).to_have_text("one, again")
    await wait_until_answered(page)
    await expect(questions).to_have_text(["one, again"])
    assert fake_openrouter.requests[2].body["messages"] == [
        {"role": "user", "content": "one, again"}
    ]
    # Nothing is lost: the old branch, both its turns, is one click away, and so is the new one,
    # after a reload too.
    await page.reload()
    await expect(page.locator("#messages article.user").get_by_text("2/2")).to_be_visible()
    await page.get_by_role("button", name="Previous version").click()
    await expect(questions).to_have_text(["one", "two"])
    await expect(answers(page).locator(".message-body")).to_have_text(["one", "two"])
    await page.get_by_role("button", name="Next version").click()
    await expect(questions).to_have_text(["one, again"])
    await expect(answers(page).locator(".message-body")).to_have_text(["one, again"])
    # The conversation goes on from the branch shown.
    await send_message(page, "three")
    await expect(last_answer(page)).to_have_text("three")
    assert fake_openrouter.requests[3].body["messages"] == [
        {"role": "user", "content": "one, again"},
        {"role": "assistant", "content": "one, again"},
        {"role": "user", "content": "three"},
    ]


async def test_shift_enter_adds_a_line_and_settings_reach_upstream(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    model = page.get_by_role("combobox", name="Model")
    # The picker lists /api/models and still takes any id typed in.
    await model.click()
    await expect(page.get_by_role("option")).to_have_count(3)
    await model.fill("some-lab/brand-new-model")
    await page.get_by_role("button", name="Settings").click()
    await page.get_by_label("Temperature").fill("1.3")
    await page.get_by_label("System prompt for this conversation").fill("Be brief.")
    await screenshot(page, "settings")

    await prompt(page).fill("line one")
    await prompt(page).press("Shift+Enter")
    await prompt(page).press_sequentially("line two")
    await prompt(page).press("Enter")

    await expect(last_answer(page)).to_have_text("line one\nline two", use_inner_text=True)
    [request] = fake_openrouter.requests
    assert request.body["model"] == "some-lab/brand-new-model"
    assert request.body["temperature"] == 1.3
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "line one\nline two"},
    ]


async def test_an_error_frame_is_shown_with_its_message(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(error_reply(429, "Rate limit exceeded", {"Retry-After": "7"}))
    page = await open_page()

    await send_message(page, "Hello")

    error = answers(page).last.locator(".message-error")
    await expect(error).to_have_text("Rate limit exceeded (try again in 7 s)")
    await wait_until_answered(page)
    await screenshot(page, "error")


async def scrolled_to_end(page: Page) -> bool:
    gap: float = await page.locator("#messages").evaluate(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    )
    return gap < 2


async def test_scrolling_follows_the_stream_until_the_user_scrolls_up(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    first = [f"line {n}\n\n" for n in range(40)]
    second = [f"more {n}\n\n" for n in range(40)]
    pause_s = 2.0  # room for the test to scroll up between the two bursts
    steps: list[Step] = [COMMENT, *(event(chunk(t)) for t in first), pause_s]
    steps += [*(event(chunk(t)) for t in second), "hang"]
    fake_openrouter.script(Reply(steps=steps))
    page = await open_page(upstream_timeout_s=10.0)

    await send_message(page, "long")
    await expect(last_answer(page).get_by_text("line 39")).to_be_visible()
    assert await scrolled_to_end(page)
    await page.locator("#messages").evaluate("el => el.scrollTop = 0")
    assert not await last_answer(page).get_by_text("more 0").count(), "scrolled too late"

    await expect(last_answer(page).get_by_text("more 39")).to_be_attached()
    assert await page.locator("#messages").evaluate("el => el.scrollTop") == 0
    await page.locator("#messages").evaluate("el => el.scrollTop = el.scrollHeight")
    await page.get_by_role("button", name="Stop", exact=True).click()
    await wait_until_answered(page)
    assert await scrolled_to_end(page)


async def test_reasoning_is_shown_apart_from_the_answer(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    steps: list[Step] = [COMMENT, event(chunk(reasoning="Weighing it up.")), event(chunk("42"))]
    fake_openrouter.script(Reply(steps=[*steps, *sse_reply([]).steps[1:]]))
    page = await open_page()

    await send_message(page, "meaning?")

    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("42")
    reasoning = answers(page).last.locator("details.reasoning")
    await reasoning.get_by_text("Reasoning").click()
    await expect(reasoning).to_contain_text("Weighing it up.")


async def test_keyboard_alone_sends_and_stops(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    # Ends with a full stop: a piece's last "s" could begin the key ("sk-or-…"), and the relay
    # holds such an end back for the next piece (key redaction), which a hanging model never sends.
    fake_openrouter.script(hanging_reply("Some", " words."))
    page = await open_page()
    await prompt(page).focus()

    await page.keyboard.type("typed only")
    await page.keyboard.press("Enter")
    await expect(last_answer(page)).to_have_text("Some words.")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")

    await expect(answers(page).last).to_have_attribute("data-status", "cancelled")
    await expect(prompt(page)).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("button", name="Attach images")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("button", name="Regenerate")).to_be_focused()
