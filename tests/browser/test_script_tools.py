"""A script's tool loop (/v1/responses with `previous_response_id`, issue 25) is in the
account's history with its function calls: the page shows it as its text (the question and
the answer, which says the tool it used; no empty answer, no raw tool output), and a chat
going on from the page sends upstream a valid conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai.types.responses import FunctionToolParam
from playwright.async_api import expect

from tests.account_clients import Browser, bearer
from tests.browser.account_steps import account_dialog, close, sign_in
from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage
from tests.conftest import Serve
from tests.fake_openrouter import FakeOpenRouter, sse_reply, tool_calls_reply
from tests.integration.openai_sdk import sdk_for

pytestmark = pytest.mark.browser

MODEL = "openai/gpt-4o-mini"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": None,
}


async def script_tool_loop(server: TestServer, fake_openrouter: FakeOpenRouter) -> str:
    """Ann's script asks, gets a function call, answers it: her token."""
    url = str(server.make_url("/"))
    account = Browser(url)
    try:
        await account.sign_up("ann@example.com")
        token: str = (await account.make_token())["token"]
    finally:
        await account.close()
    fake_openrouter.script(
        tool_calls_reply(("call_paris", "get_weather", '{"city":"Paris"}')),
        sse_reply(["Sunny, 22C"]),
    )
    async with sdk_for(url, api_key=token) as sdk:
        first = await sdk.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER])
        await sdk.responses.create(
            model=MODEL,
            input=[{"type": "function_call_output", "call_id": "call_paris", "output": "22C"}],
            previous_response_id=first.id,
            tools=[WEATHER],
        )
    return token


async def newest_branch(server: TestServer, token: str) -> list[dict[str, Any]]:
    """The account's one conversation, from its first message to its last."""
    async with aiohttp.ClientSession(headers=bearer(token)) as session:
        async with session.get(server.make_url("/api/conversations")) as listed:
            [conversation] = (await listed.json())["data"]
        where = server.make_url(f"/api/conversations/{conversation['id']}")
        async with session.get(where) as opened:
            kept: list[dict[str, Any]] = (await opened.json())["messages"]
    by_id = {m["id"]: m for m in kept}
    branch: list[dict[str, Any]] = []
    last: dict[str, Any] | None = kept[-1]
    while last is not None:
        branch.append(last)
        last = by_id.get(last["parent_id"])
    return branch[::-1]


async def test_a_scripts_tool_loop_reads_as_its_text_on_the_page(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    server = await serve(upstream_timeout_s=10.0)
    token = await script_tool_loop(server, fake_openrouter)
    page = await open_page(server)
    await sign_in(page, "ann@example.com")
    await expect(account_dialog(page).get_by_text("Signed in as ann@example.com")).to_be_visible()
    await close(account_dialog(page))
    await conversation_links(page).first.click()
    shown = page.locator("#messages article")
    await expect(shown.locator(".message-body")).to_have_text(["Weather in Paris?", "Sunny, 22C"])
    await expect(answers(page).last.locator(".message-tools")).to_have_text("Used get_weather")

    # Going on from the page: the question and its answer go upstream, no lone tool output.
    await send_message(page, "Thanks")
    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("Thanks")
    sent = fake_openrouter.requests[-1].body["messages"]
    assert [m for m in sent if m["role"] != "system"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Sunny, 22C"},
        {"role": "user", "content": "Thanks"},
    ]
    # In the history the page's turn goes on from the script's answer: the calls stay.
    assert [(m["role"], m["content"]) for m in await newest_branch(server, token)] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "22C"),
        ("assistant", "Sunny, 22C"),
        ("user", "Thanks"),
        ("assistant", "Thanks"),
    ]


async def test_its_export_imported_signed_out_reads_the_same(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter, tmp_path: Path
) -> None:
    server = await serve(upstream_timeout_s=10.0)
    token = await script_tool_loop(server, fake_openrouter)
    async with aiohttp.ClientSession(headers=bearer(token)) as session:
        async with session.get(server.make_url("/api/conversations")) as listed:
            [conversation] = (await listed.json())["data"]
        where = server.make_url(f"/api/conversations/{conversation['id']}/export")
        async with session.get(where) as exported:
            assert exported.status == 200
            (tmp_path / "tools.json").write_bytes(await exported.read())

    page = await open_page(server)
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_role("button", name="Import").click()
    await (await chooser_info.value).set_files(tmp_path / "tools.json")
    await conversation_links(page).first.click()
    shown = page.locator("#messages article")
    await expect(shown.locator(".message-body")).to_have_text(["Weather in Paris?", "Sunny, 22C"])
    await expect(answers(page).last.locator(".message-tools")).to_have_text("Used get_weather")
