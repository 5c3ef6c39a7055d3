"""Model output as Markdown: highlighted code with a copy button, inert against XSS payloads,
and plain text when the vendored libraries are missing."""

from __future__ import annotations

import pytest
from playwright.async_api import Dialog, Page, Route, expect

from tests.browser.chat_page import last_answer, send_message, wait_until_answered
from tests.browser.conftest import OpenPage, screenshot
from tests.fake_openrouter import FakeOpenRouter, sse_reply

pytestmark = pytest.mark.browser

XSS_PAYLOAD = [
    "Hi <img src=x onerror=\"alert('img')\"> ",
    "<script>alert('script')</script> ",
    "[click me](javascript:alert('link')) ",
    "<a href=\"javascript:alert('raw')\">raw link</a> ",
    "<svg><script>alert('svg')</script></svg>",
    "<iframe src=\"javascript:alert('frame')\"></iframe> ",
    "<p onmouseover=\"alert('hover')\">hover me</p> end",
]


def record_dialogs(page: Page) -> list[str]:
    seen: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        seen.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    return seen


async def test_code_blocks_are_highlighted_with_a_copy_button(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        sse_reply(["Here:\n\n```python\n", "def add(a, b):\n", "    return a + b\n```\n"])
    )
    page = await open_page()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    await send_message(page, "code please")

    code = last_answer(page).locator("pre code")
    await expect(code).to_have_text("def add(a, b):\n    return a + b\n")
    await expect(code.locator(".hljs-keyword").first).to_have_text("def")
    await last_answer(page).get_by_role("button", name="Copy code").click()
    await expect(last_answer(page).get_by_role("button", name="Copy code")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == (
        "def add(a, b):\n    return a + b\n"
    )
    await screenshot(page, "code")


async def test_model_output_cannot_run_script(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(XSS_PAYLOAD))
    # Without the CSP the sanitizer is the only defence: this proves it holds on its own.
    page = await open_page(bypass_csp=True)
    dialogs = record_dialogs(page)

    await send_message(page, "be nasty")
    await wait_until_answered(page)

    answer = last_answer(page)
    await expect(answer).to_contain_text("end")
    # An image that cannot load under the CSP is shown as a link-like note, not a broken icon.
    await expect(answer.get_by_text("Image: x")).to_be_visible()
    await answer.get_by_text("click me").click()
    await answer.get_by_text("raw link").click()
    await answer.get_by_text("hover me").hover()
    for selector in ("script", "iframe", "[onerror]", "[onmouseover]", "a[href^='javascript']"):
        await expect(answer.locator(selector)).to_have_count(0)
    assert dialogs == []
    await screenshot(page, "xss-inert")


async def test_without_the_libraries_answers_show_as_plain_text(
    open_page: OpenPage, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["**not bold** ", *XSS_PAYLOAD]))
    page = await open_page(connected=False)

    async def missing(route: Route) -> None:
        await route.fulfill(status=404, body="not installed")

    for library in ("marked", "purify", "highlight", "katex"):
        await page.route(f"**/vendor/{library}.js", missing)
    await page.reload()
    dialogs = record_dialogs(page)

    await send_message(page, "plain please")
    await wait_until_answered(page)

    answer = last_answer(page)
    await expect(answer).to_have_text("".join(["**not bold** ", *XSS_PAYLOAD]))
    await expect(answer.locator("*")).to_have_count(0)
    assert dialogs == []
