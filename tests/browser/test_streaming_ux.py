"""A streaming answer as a daily user meets it: finished parts stay put (selectable, never
rebuilt), a screen reader hears each answer once, nothing jumps at the end, focus stays useful."""

from __future__ import annotations

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
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event, sse_reply

pytestmark = pytest.mark.browser


def paced_reply(tokens: list[str], pause_s: float, *, then: tuple[str, ...] = ()) -> Reply:
    """Tokens, a pause (for the test to act mid-answer), more tokens, then a normal end."""
    steps: list[Step] = [COMMENT, *(event(chunk(t)) for t in tokens), pause_s]
    steps += [event(chunk(t)) for t in then]
    return Reply(steps=[*steps, *sse_reply([]).steps[1:]])


async def test_finished_blocks_are_never_rebuilt_and_stay_selectable(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    first = ["The first ", "paragraph is ", "finished.\n\n", "The second "]
    fake_openrouter.script(paced_reply(first, 2.0, then=("goes on", " and on.\n\n", "Third.")))
    page = await open_page(upstream_timeout_s=10.0)
    await send_message(page, "stream please")
    paragraph = last_answer(page).locator("p").first
    await expect(paragraph).to_have_text("The first paragraph is finished.")
    handle = await paragraph.element_handle()
    assert handle is not None
    # A user selects the finished paragraph while the answer still streams.
    await paragraph.dblclick()
    await paragraph.evaluate("p => getSelection().selectAllChildren(p)")

    await wait_until_answered(page)

    await expect(last_answer(page).locator("p")).to_have_text(
        ["The first paragraph is finished.", "The second goes on and on.", "Third."]
    )
    assert await handle.evaluate("p => p.isConnected"), "the finished paragraph was rebuilt"
    selected = await page.evaluate("getSelection().toString()")
    assert selected == "The first paragraph is finished."


# Counts every character that enters a live region (what a screen reader would announce).
COUNT_ANNOUNCED = """() => {
  window.announced = [];
  const live = "[aria-live], [role=log], [role=status], [role=alert]";
  new MutationObserver((records) => {
    for (const record of records) {
      const target = record.target.nodeType === 1 ? record.target : record.target.parentElement;
      if (!target?.closest(live) || target.closest("#connection")) continue;
      if (record.type === "characterData") window.announced.push(record.target.data);
      for (const node of record.addedNodes) window.announced.push(node.textContent);
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


async def test_each_answer_is_announced_once(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    words = [f"word{n} " for n in range(60)]
    fake_openrouter.script(sse_reply(words, delay_s=0.01))
    page = await open_page()
    await page.evaluate(COUNT_ANNOUNCED)

    await send_message(page, "many words")
    await wait_until_answered(page)

    answer = "".join(words).strip()
    announced: list[str] = await page.evaluate("window.announced")
    assert sum(len(text) for text in announced) < len(answer) + 100
    assert sum(text.count("word59") for text in announced) == 1
    status = page.get_by_role("status").filter(has_text="Answer:")
    await expect(status).to_have_text(f"Answer: {answer}")


async def answer_height(page: Page) -> float:
    box = await answers(page).last.bounding_box()
    assert box is not None
    return box["height"]


async def test_nothing_jumps_when_an_answer_ends(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(paced_reply(["Short answer."], 1.5))
    page = await open_page(upstream_timeout_s=10.0)
    await send_message(page, "short")
    await expect(last_answer(page)).to_have_text("Short answer.")
    before = await answer_height(page)

    await wait_until_answered(page)

    await expect(answers(page).last.get_by_role("button", name="Copy")).to_be_visible()
    assert abs(await answer_height(page) - before) <= 1


async def test_focus_stays_where_the_user_works(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    await expect(prompt(page)).to_be_focused()
    await send_message(page, "one")
    await wait_until_answered(page)

    await page.get_by_role("button", name="Regenerate").click()
    await expect(prompt(page)).to_be_focused()
    await wait_until_answered(page)

    await page.get_by_role("button", name="Edit this message and resend").click()
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill("two")
    await page.get_by_role("button", name="Save & send").click()
    await expect(prompt(page)).to_be_focused()
    await wait_until_answered(page)

    await page.get_by_role("button", name="Rename “one”").click()
    await page.get_by_role("textbox", name="Conversation name").fill("Renamed")
    await page.get_by_role("textbox", name="Conversation name").press("Enter")
    await expect(conversation_links(page).filter(has_text="Renamed")).to_be_focused()
