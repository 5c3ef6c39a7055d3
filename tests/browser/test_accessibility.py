"""axe-core (from npm) over the page: no serious or critical violation on the empty page, on a
conversation with Markdown, or in any dialog, in light and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Page, expect

from tests.browser.chat_page import send_message, wait_until_answered
from tests.browser.conftest import PHONE, OpenPage
from tests.fake_openrouter import FakeOpenRouter, sse_reply

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
