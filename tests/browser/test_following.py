"""A long answer as it streams and after: the view keeps its newest text in sight, "Jump to
latest" brings it back once the user scrolled away, and a long conversation opens at its end."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.chat_page import answers, last_answer, send_message, wait_until_answered
from tests.browser.conftest import PHONE, OpenPage
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event, sse_reply

pytestmark = pytest.mark.browser

# How far the last answer's newest text ends below the bottom of the message list (negative:
# above it, in sight), and whether it is still below the list's top.
NEWEST_TEXT = """() => {
  const list = document.querySelector("#messages").getBoundingClientRect();
  const bodies = document.querySelectorAll("#messages article.assistant .message-body");
  const range = document.createRange();
  range.selectNodeContents(bodies[bodies.length - 1]);
  const text = range.getBoundingClientRect();
  return {below: text.bottom - list.bottom, inSight: text.bottom > list.top};
}"""


async def newest_text_in_sight(page: Page) -> None:
    where = await page.evaluate(NEWEST_TEXT)
    assert where["below"] <= 1 and where["inSight"], where


def words(start: int, count: int) -> list[str]:
    return [f" w{n}" for n in range(start, start + count)]


def long_answer(pause_s: float) -> Reply:
    """800 words in four long paragraphs, a pause in the middle of the last one."""
    tokens: list[Step] = [COMMENT]
    for paragraph in range(4):
        tokens += [event(chunk(w)) for w in words(paragraph * 200, 200)]
        if paragraph < 3:
            tokens.append(event(chunk("\n\n")))
    tokens.insert(1 + 3 * 201 + 100, pause_s)  # after w700
    return Reply(steps=[*tokens, *sse_reply([]).steps[1:]])


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_the_view_follows_a_long_answer_and_jumps_back_to_it(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter, viewport: str
) -> None:
    fake_openrouter.script(long_answer(pause_s=3.0))
    options = {"viewport": PHONE} if viewport == "phone" else {}
    page = await open_page(upstream_timeout_s=10.0, **options)
    await send_message(page, "a long answer")

    await expect(last_answer(page)).to_contain_text("w350")
    await newest_text_in_sight(page)
    await expect(last_answer(page)).to_contain_text("w700")  # the pause, mid-paragraph
    await newest_text_in_sight(page)

    jump = page.get_by_role("button", name="Jump to latest")
    await expect(jump).to_be_hidden()
    await page.locator("#messages").hover()
    await page.mouse.wheel(0, -800)
    await expect(jump).to_be_visible()
    await jump.click()
    await expect(jump).to_be_hidden()
    await newest_text_in_sight(page)

    await wait_until_answered(page)
    await expect(last_answer(page)).to_contain_text("w799")
    await expect(answers(page).last.get_by_role("button", name="Regenerate")).to_be_in_viewport()
    await newest_text_in_sight(page)


async def test_a_long_conversation_opens_at_its_end(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    paragraphs = ["".join(words(n * 150, 150)) + "\n\n" for n in range(4)]
    fake_openrouter.script(*(sse_reply(paragraphs) for _ in range(3)))
    page = await open_page()
    for n in range(3):
        await send_message(page, f"question {n}")
        await wait_until_answered(page)

    await page.reload()

    regenerate = answers(page).last.get_by_role("button", name="Regenerate")
    await expect(regenerate).to_be_in_viewport()
    await newest_text_in_sight(page)
    gap = await page.locator("#messages").evaluate(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    )
    assert gap < 2
