"""The smaller things a daily user meets (issue 20, item 10): table headers and sidebar titles
on a phone, rules in dark mode, model output that tries to draw a form field, drafts kept per
conversation, titles without Markdown, single line breaks, Continue after the length limit."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    prompt,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import PHONE, OpenPage
from tests.fake_openrouter import FakeOpenRouter, sse_reply

pytestmark = pytest.mark.browser

HEADERS = ["Temperature", "Humidity", "Pressure", "Visibility", "Precipitation"]
TABLE = "| " + " | ".join(HEADERS) + " |\n|" + " --- |" * 5 + "\n|" + " 1 |" * 5 + "\n"

# How many lines each header cell's text takes.
HEADER_LINES = """(answer) => [...answer.querySelectorAll("th")].map((th) => {
  const range = document.createRange();
  range.selectNodeContents(th);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
})"""


async def test_a_phone_keeps_table_headers_whole_and_cuts_long_titles_with_an_ellipsis(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply([TABLE]))
    page = await open_page(viewport=PHONE)
    long_title = "a question with a very long title that cannot fit in the list"
    await send_message(page, long_title)
    await wait_until_answered(page)

    assert await last_answer(page).evaluate(HEADER_LINES) == [1] * 5

    await page.get_by_role("button", name="Show conversations").click()
    link = conversation_links(page).first
    await expect(link).to_be_visible()
    cut = await link.evaluate(
        """(a) => { const s = getComputedStyle(a);
                    return [a.scrollWidth > a.clientWidth, s.display, s.textOverflow,
                            s.whiteSpace, s.overflowX]; }"""
    )
    assert cut == [True, "block", "ellipsis", "nowrap", "hidden"]
    height = (await link.bounding_box() or {"height": 0})["height"]
    assert height >= 44


async def test_a_rule_is_quiet_in_dark_mode(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["above\n\n---\n\nbelow"]))
    page = await open_page(color_scheme="dark")
    await send_message(page, "a rule")
    await wait_until_answered(page)
    brightest = (
        await last_answer(page)
        .locator("hr")
        .evaluate(
            """(hr) => { const s = getComputedStyle(hr);
                     return Math.max(...["Top", "Right", "Bottom", "Left"]
                       .filter((side) => parseFloat(s[`border${side}Width`]) > 0)
                       .flatMap((side) => s[`border${side}Color`].match(/\\d+/g).slice(0, 3))
                       .map(Number)); }"""
        )
    )
    assert brightest < 100


async def test_model_output_cannot_draw_a_form_field(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        sse_reply(['Sign in: <input type="password" placeholder="Password">\n\n- [x] done\n'])
    )
    page = await open_page()
    await send_message(page, "a form")
    await wait_until_answered(page)
    await expect(last_answer(page)).to_contain_text("Sign in:")
    await expect(last_answer(page).locator("input:not([type=checkbox])")).to_have_count(0)
    await expect(last_answer(page).get_by_role("checkbox", name="Done")).to_be_disabled()


async def test_a_draft_stays_with_its_conversation(open_page: OpenPage) -> None:
    page = await open_page()
    await send_message(page, "first conversation")
    await wait_until_answered(page)
    await page.get_by_role("button", name="New chat").click()
    await send_message(page, "second conversation")
    await wait_until_answered(page)

    await prompt(page).fill("half a thought")
    await conversation_links(page).filter(has_text="first").click()
    await expect(prompt(page)).to_have_value("")
    await prompt(page).fill("another draft")
    await conversation_links(page).filter(has_text="second").click()
    await expect(prompt(page)).to_have_value("half a thought")
    await page.reload()
    await expect(prompt(page)).to_have_value("half a thought")
    await conversation_links(page).filter(has_text="first").click()
    await expect(prompt(page)).to_have_value("another draft")
    await send_message(page, "sent")  # a sent draft is gone
    await wait_until_answered(page)
    await conversation_links(page).filter(has_text="second").click()
    await conversation_links(page).filter(has_text="first").click()
    await expect(prompt(page)).to_have_value("")


async def test_titles_leave_out_markdown(open_page: OpenPage) -> None:
    page = await open_page()
    await send_message(page, "## Why is `x = 1` **so** [slow](https://example.com)?")
    await wait_until_answered(page)
    await expect(conversation_links(page)).to_have_text(["Why is x = 1 so slow?"])


async def test_single_line_breaks_are_kept(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Roses are red,\nviolets", " are blue.\n\nNew paragraph."]))
    page = await open_page()
    await send_message(page, "a poem")
    await wait_until_answered(page)
    await expect(last_answer(page).locator("p").first).to_have_text(
        "Roses are red,\nviolets are blue.", use_inner_text=True
    )
    await expect(last_answer(page).locator("p br")).to_have_count(1)


async def test_an_answer_cut_at_the_length_limit_can_be_continued(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        sse_reply(["Roses are red, "], finish_reason="length"), sse_reply(["violets are blue."])
    )
    page = await open_page()
    await send_message(page, "a poem")
    await wait_until_answered(page)
    await expect(
        answers(page).last.get_by_text("Stopped at the model's length limit.")
    ).to_be_visible()

    await answers(page).last.get_by_role("button", name="Continue").click()

    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("Roses are red, violets are blue.")
    assert fake_openrouter.requests[1].body["messages"][-1] == {
        "role": "assistant",
        "content": "Roses are red, ",
    }
