"""axe-core (from npm) over the page: no serious or critical violation on the empty page, on a
conversation with Markdown, or in any dialog, in light and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Page, expect

from tests.browser.account_steps import close, fill_sign_up, open_account
from tests.browser.chat_page import conversation_links, prompt, send_message, wait_until_answered
from tests.browser.conftest import PHONE, OpenPage
from tests.fake_openrouter import FakeOpenRouter, sse_reply
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

AXE_SOURCE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, help: v.help,
                  nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
}"""

MARKDOWN = [
    "# Title\n\nSome **bold**, *emphasis*, `code` and a [link](https://example.com).\n\n",
    "- [x] done\n- [ ] to do\n\n1. first\n2. second\n\n",
    "> a quote\n\n| name | value |\n| --- | --- |\n| a | 1 |\n\n",
    "```python\n# a comment\ndef add(a, b):\n    return a + b  # sum\n```\n\n",
    "```\nplain block\n```\n\nMath: $e^{i\\pi} + 1 = 0$ and\n\n$$\\int_0^1 x\\,dx$$\n",
]


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    # Evaluated over the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(AXE_SOURCE.read_text())
    violations: list[dict[str, Any]] = await page.evaluate(RUN_AXE)
    return violations


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_empty_page(open_page: OpenPage, scheme: Literal["light", "dark"]) -> None:
    page = await open_page(color_scheme=scheme)
    assert await serious_violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_a_conversation_with_markdown(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter, scheme: Literal["light", "dark"]
) -> None:
    fake_openrouter.script(sse_reply(MARKDOWN), sse_reply(["A short second answer."]))
    page = await open_page(color_scheme=scheme)
    await send_message(page, "show me everything")
    await wait_until_answered(page)
    await send_message(page, "and again")
    await wait_until_answered(page)
    await page.get_by_role("button", name="Settings").click()
    assert await serious_violations(page) == []


async def test_the_key_dialog(open_page: OpenPage) -> None:
    page = await open_page(openrouter_api_key=None)
    await page.get_by_role("button", name="API key").click()
    await expect(page.get_by_role("dialog", name="OpenRouter API key")).to_be_visible()
    assert await serious_violations(page) == []


async def test_the_login_dialog(open_page: OpenPage) -> None:
    page = await open_page(access_token="let-me-in", connected=False)
    await expect(page.get_by_role("dialog", name="Access token required")).to_be_visible()
    assert await serious_violations(page) == []


async def test_the_phone_conversation_list(open_page: OpenPage) -> None:
    page = await open_page(viewport=PHONE, color_scheme="dark")
    await send_message(page, "hello")
    await wait_until_answered(page)
    await page.get_by_role("button", name="Show conversations").click()
    await expect(page.get_by_role("button", name="New chat")).to_be_focused()
    assert await serious_violations(page) == []


WIDE = [
    "```python\n" + "x = [" + ", ".join(str(n) for n in range(80)) + "]\n```\n\n",
    "| " + " | ".join(f"column{n}" for n in range(12)) + " |\n",
    "| " + " | ".join("---" for _ in range(12)) + " |\n",
    "| " + " | ".join(str(n) for n in range(12)) + " |\n\n",
]


async def test_blocks_that_scroll_sideways_are_reached_by_keyboard(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(WIDE))
    page = await open_page(viewport=PHONE)
    await send_message(page, "wide things")
    await wait_until_answered(page)
    assert await serious_violations(page) == []

    code = page.get_by_role("group", name="Code: python")
    await code.focus()
    await expect(code).to_be_focused()
    await page.keyboard.press("ArrowRight")

    async def scrolled() -> bool:
        left: float = await code.evaluate("el => el.scrollLeft")
        return left > 0

    await wait_until(scrolled, "the arrow key scrolled the code block")
    await expect(page.get_by_role("table", name="Table")).to_have_attribute("tabindex", "0")


async def test_focus_lands_on_something_after_opening_or_deleting_a_conversation(
    open_page: OpenPage,
) -> None:
    page = await open_page()
    page.on("dialog", lambda dialog: dialog.accept())
    for text in ("alpha", "beta", "gamma"):
        await page.get_by_role("button", name="New chat").click()
        await send_message(page, text)
        await wait_until_answered(page)

    links = conversation_links(page)
    await links.filter(has_text="alpha").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#messages article.user .message-body")).to_have_text(["alpha"])
    await expect(prompt(page)).to_be_focused()

    # Deleting one moves the focus to the conversation now in its place in the list.
    await page.get_by_role("button", name="Delete “beta”").focus()
    await page.keyboard.press("Enter")
    await expect(links).to_have_text(["gamma", "alpha"])
    await expect(links.filter(has_text="alpha")).to_be_focused()
    # Deleting the one shown opens another; the focus goes to the message box.
    await page.get_by_role("button", name="Delete “alpha”").focus()
    await page.keyboard.press("Enter")
    await expect(links).to_have_text(["gamma"])
    await expect(prompt(page)).to_be_focused()


async def test_a_phone_shows_a_heading(open_page: OpenPage) -> None:
    page = await open_page(viewport=PHONE)
    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_be_visible()
    await send_message(page, "a question about kiwis")
    await wait_until_answered(page)
    await expect(heading).to_have_text("a question about kiwis")
    await expect(heading).to_be_in_viewport()


async def test_the_open_model_picker(open_page: OpenPage) -> None:
    page = await open_page(viewport=PHONE)
    await page.get_by_role("combobox", name="Model").click()
    await page.get_by_role("combobox", name="Model").press("ArrowDown")
    await expect(page.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    # The list fits the phone: nothing scrolled the page sideways to show it.
    scrolled = "() => [document.documentElement, document.body, document.querySelector('.app')]"
    assert await page.evaluate(f"{scrolled}.map((el) => el.scrollLeft)") == [0, 0, 0]
    assert await serious_violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_account_and_admin_dialogs(
    open_page: OpenPage, scheme: Literal["light", "dark"]
) -> None:
    page = await open_page(color_scheme=scheme, viewport=PHONE)
    await page.get_by_role("button", name="Show conversations").click()
    dialog = await open_account(page)
    await expect(dialog.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await serious_violations(page) == []
    await dialog.get_by_role("button", name="Create an account").click()
    await fill_sign_up(page, "ann@example.com")
    await dialog.get_by_label("Token name").filter(visible=True).fill("script")
    await dialog.get_by_role("button", name="Make token").click()
    await expect(dialog.get_by_role("listitem")).to_have_count(1)
    assert await serious_violations(page) == []
    await close(dialog)
    await page.get_by_role("button", name="Admin", exact=True).click()
    accounts = page.locator("#admin-dialog").get_by_role("group", name="Accounts table")
    await expect(accounts.get_by_role("row")).to_have_count(2)
    assert await serious_violations(page) == []
