"""What users of ChatGPT, Open WebUI and LibreChat expect: search, days, a URL per conversation,
export and import, images, tokens and cost, math, shortcuts, jump to latest, the model picker."""

from __future__ import annotations

import base64
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
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event, sse_reply

pytestmark = pytest.mark.browser

# A PNG of one pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


# An image's width once it has loaded or failed (0: broken).
NATURAL_WIDTH = """(img) => img.complete ? img.naturalWidth : new Promise((done) => {
  img.addEventListener("load", () => done(img.naturalWidth));
  img.addEventListener("error", () => done(img.naturalWidth));
})"""
LOAD_IMAGE = """(src) => new Promise((done) => {
  const image = new Image();
  image.onload = () => done("loaded");
  image.onerror = () => done("blocked");
  image.src = src;
})"""


async def chat(page: Page, text: str) -> None:
    await send_message(page, text)
    await wait_until_answered(page)


async def new_chat(page: Page) -> None:
    await page.get_by_role("button", name="New chat").click()


async def test_search_days_and_a_url_per_conversation(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["The answer mentions kiwis."]))
    page = await open_page()
    await chat(page, "apples question")
    first_url = page.url
    await new_chat(page)
    await chat(page, "bananas question")
    assert page.url != first_url and "#/c/" in page.url
    sidebar = page.get_by_role("complementary", name="Conversations")
    await expect(sidebar.get_by_text("Today")).to_be_visible()

    search = page.get_by_role("searchbox", name="Search conversations")
    await search.fill("banan")
    await expect(conversation_links(page)).to_have_text(["bananas question"])
    await search.fill("KIWI")  # found in an answer's text, whatever the case
    await expect(conversation_links(page)).to_have_text(["apples question"])
    await search.fill("durian")
    await expect(sidebar.get_by_text("No conversation matches.")).to_be_visible()
    await search.fill("")

    await conversation_links(page).filter(has_text="apples").click()
    await expect(last_answer(page)).to_have_text("The answer mentions kiwis.")
    assert page.url == first_url
    await page.go_back()
    await expect(last_answer(page)).to_have_text("bananas question")
    await page.go_forward()
    await expect(last_answer(page)).to_have_text("The answer mentions kiwis.")
    await page.goto(first_url.replace("#", "?bookmark#"))
    await expect(last_answer(page)).to_have_text("The answer mentions kiwis.")


async def test_export_and_import_merge_by_id(open_page: OpenPage, tmp_path: Path) -> None:
    page = await open_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await chat(page, "keep me safe")
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export all").click()
    exported = tmp_path / "export.json"
    await (await download_info.value).save_as(exported)
    data = json.loads(exported.read_text())
    [conversation] = data["conversations"]
    assert conversation["title"] == "keep me safe"

    await page.get_by_role("button", name="Delete “keep me safe”").click()
    await expect(conversation_links(page)).to_have_count(0)
    for _ in range(2):  # a second import of the same file merges, it does not duplicate
        async with page.expect_file_chooser() as chooser_info:
            await page.get_by_role("button", name="Import").click()
        await (await chooser_info.value).set_files(exported)
        await expect(conversation_links(page)).to_have_text(["keep me safe"])

    await conversation_links(page).first.click()
    await expect(last_answer(page)).to_have_text("keep me safe")
    await page.get_by_role("button", name="Settings").click()
    async with page.expect_download() as markdown_info:
        await page.get_by_role("button", name="Export this conversation as Markdown").click()
    markdown = tmp_path / "one.md"
    await (await markdown_info.value).save_as(markdown)
    assert markdown.read_text().startswith("# keep me safe\n\n## You\n\nkeep me safe\n")

    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an export"}')
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_role("button", name="Import").click()
    await (await chooser_info.value).set_files(bad)
    await expect(page.get_by_role("alert")).to_contain_text("is not an export of chatrelay")
    await expect(conversation_links(page)).to_have_text(["keep me safe"])


async def test_images_go_as_image_url_parts(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter, tmp_path: Path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    page = await open_page()
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_role("button", name="Attach images").click()
    await (await chooser_info.value).set_files(image)
    preview = page.get_by_role("img", name="Attached image 1")
    await expect(preview).to_be_visible()
    # Shown, not a broken picture with its alt text: the page's CSP lets its own data: URLs in.
    assert await preview.evaluate(NATURAL_WIDTH) == 1

    await chat(page, "what is this?")

    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert fake_openrouter.requests[0].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]
    user = page.locator("#messages article.user")
    sent = user.get_by_role("img", name="Attached image")
    await expect(sent).to_be_visible()
    assert await sent.evaluate(NATURAL_WIDTH) == 1
    await expect(page.get_by_role("list", name="Attached images")).to_be_hidden()
    # Images from other sites still cannot load: the page's own icon, from another origin.
    foreign = page.url.replace("127.0.0.1", "localhost").split("#")[0] + "static/icon.svg"
    assert await page.evaluate(LOAD_IMAGE, foreign) == "blocked"
    assert await page.evaluate(LOAD_IMAGE, "/static/icon.svg") == "loaded"


async def test_tokens_and_cost_per_answer_and_conversation(open_page: OpenPage) -> None:
    page = await open_page()
    await chat(page, "one")
    await expect(answers(page).last.get_by_text("15 tokens · $0.00010")).to_be_visible()
    await chat(page, "two")
    await expect(page.get_by_text("This conversation: 30 tokens · $0.00020")).to_be_visible()


async def test_cost_from_the_model_price_when_usage_has_none(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    fake_openrouter.script(sse_reply(["priced"], usage=usage))
    page = await open_page()
    # /api/models passes on upstream's pricing: gpt-4o-mini at 0.15 and 0.60 $ per million.
    await page.get_by_role("combobox", name="Model").click()
    await expect(page.get_by_role("option").first).to_have_text(
        "OpenAI: GPT-4o-mini openai/gpt-4o-mini · 128k context · $0.150/M in, $0.600/M out"
    )
    await chat(page, "price it")
    # 1000 tokens at 0.15 $/M + 500 at 0.60 $/M = $0.00045
    await expect(answers(page).last.get_by_text("1,500 tokens · $0.00045")).to_be_visible()


async def test_math_is_set_and_money_is_not(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        sse_reply(["Euler: $e^{i\\pi}+1=0$. ", "It costs $5 and $6.\n\n", "$$x^2$$"])
    )
    page = await open_page()
    await chat(page, "math")
    await expect(last_answer(page).get_by_role("math")).to_have_count(2)
    await expect(last_answer(page)).to_contain_text("It costs $5 and $6.")
    # Set a fifth larger than the text, as KaTeX sets it: its fractions and scripts stay legible.
    sizes = await last_answer(page).evaluate(
        "b => [b.querySelector('p'), b.querySelector('math')].map("
        "e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert sizes[1] >= 1.15 * sizes[0]


def hanging(*tokens: str) -> Reply:
    return Reply(steps=[COMMENT, *(event(chunk(t)) for t in tokens), "hang"])


async def test_shortcuts(open_page: OpenPage, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(sse_reply(["first answer"]), hanging("going on"))
    page = await open_page()
    await chat(page, "first question")

    await prompt(page).press("ArrowUp")  # empty box: edit the last message
    await expect(page.get_by_role("textbox", name="Edit message")).to_have_value("first question")
    await page.get_by_role("textbox", name="Edit message").press("Escape")
    await expect(page.get_by_role("textbox", name="Edit message")).to_have_count(0)

    await send_message(page, "a long one")
    await expect(last_answer(page)).to_have_text("going on")
    await page.keyboard.press("Escape")  # stops
    await expect(answers(page).last).to_have_attribute("data-status", "cancelled")

    await page.keyboard.press("Control+Shift+O")  # a new chat
    await expect(answers(page)).to_have_count(0)
    await expect(prompt(page)).to_be_focused()
    await expect(conversation_links(page)).to_have_text(["first question"])


async def test_jump_to_latest_while_scrolled_up(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    steps: list[Step] = [COMMENT, *(event(chunk(f"line {n}\n\n")) for n in range(60)), "hang"]
    fake_openrouter.script(Reply(steps=steps))
    page = await open_page()
    await send_message(page, "long")
    await expect(last_answer(page).get_by_text("line 59")).to_be_visible()
    jump = page.get_by_role("button", name="Jump to latest")
    await expect(jump).to_be_hidden()

    await page.locator("#messages").evaluate("el => el.scrollTop = 0")
    await expect(jump).to_be_visible()
    await jump.click()

    await expect(last_answer(page).get_by_text("line 59")).to_be_in_viewport()
    await expect(jump).to_be_hidden()


async def test_the_model_picker_searches_names_and_shows_prices(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    page = await open_page()
    model = page.get_by_role("combobox", name="Model")
    options = page.get_by_role("listbox", name="Models").get_by_role("option")
    await model.click()
    await expect(options).to_have_count(3)
    await expect(options.first).to_have_text(
        "OpenAI: GPT-4o-mini openai/gpt-4o-mini · 128k context · $0.150/M in, $0.600/M out"
    )
    await model.fill("claude sonnet")  # by name, every word
    await expect(options).to_have_text(
        [
            "Anthropic: Claude 3.5 Sonnet anthropic/claude-3.5-sonnet"
            " · 200k context · $3.00/M in, $15.00/M out"
        ]
    )
    await model.press("ArrowDown")
    await expect(options.first).to_have_attribute("aria-selected", "true")
    await model.press("Enter")
    await expect(model).to_have_value("anthropic/claude-3.5-sonnet")
    await expect(options).to_have_count(0)
    await chat(page, "hi")
    assert fake_openrouter.requests[-1].body["model"] == "anthropic/claude-3.5-sonnet"

    await model.fill("llama")
    await options.filter(has_text="Meta: Llama 3 8B (free)").click()  # by pointer
    await expect(model).to_have_value("meta-llama/llama-3-8b-instruct:free")
    await chat(page, "hi")
    await model.fill("some-lab/unlisted-model")  # any id is still accepted
    await chat(page, "hi again")
    assert fake_openrouter.requests[-1].body["model"] == "some-lab/unlisted-model"

    await model.click()
    await model.press("ArrowDown")  # the whole list again, the recent models first
    await expect(options).to_have_count(4)
    await expect(options.nth(0)).to_have_text(
        "some-lab/unlisted-model some-lab/unlisted-model · recent"
    )
    await expect(options.nth(1)).to_contain_text("Meta: Llama 3 8B (free)")
    await expect(options.nth(2)).to_contain_text("Anthropic: Claude 3.5 Sonnet")
    await model.press("Escape")
    await expect(options).to_have_count(0)


async def test_images_can_be_pasted_and_dropped(open_page: OpenPage) -> None:
    page = await open_page()
    # What the browser hands the page when a user pastes or drops an image file.
    deliver = """(target, [kind, data]) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], "dot.png", {type: "image/png"}));
      const event = kind === "paste"
        ? new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true})
        : new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true});
      target.dispatchEvent(event);
    }"""
    data = base64.b64encode(PNG).decode()
    await prompt(page).evaluate(deliver, ["paste", data])
    await expect(page.get_by_role("img", name="Attached image 1")).to_be_visible()
    await page.get_by_role("region", name="Messages").evaluate(deliver, ["drop", data])
    await expect(page.get_by_role("img", name="Attached image 2")).to_be_visible()
    await page.get_by_role("button", name="Remove attached image 1").click()
    await expect(page.get_by_role("img", name="Attached image 2")).to_have_count(0)
    await expect(page.get_by_role("img", name="Attached image 1")).to_be_visible()
