"""Signed in, the page's history is the server's (SPEC "History and sync", the page): the same
on every device, a change on one appearing on the others without a reload, an answer watched
streaming on another device, kept even when every device was closed before it ended, and the
browser's own conversations moved into the account at sign-in, none lost or duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.account_steps import (
    NEW_PASSWORD,
    PASSWORD,
    account_dialog,
    close,
    sign_in,
    sign_up,
)
from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    send_message,
    stored_conversations,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage
from tests.conftest import Serve
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event, sse_reply
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


def slow_reply(first: str, pause_s: float, rest: str) -> Reply:
    steps: list[Step] = [COMMENT, event(chunk(first)), pause_s, event(chunk(rest))]
    return Reply(steps=[*steps, *sse_reply([]).steps[1:]])


async def signed_in(page: Page, email: str = "ann@example.com") -> None:
    await sign_in(page, email)
    await expect(account_dialog(page).get_by_text(f"Signed in as {email}")).to_be_visible()
    await close(account_dialog(page))


async def test_two_devices_share_the_history_live(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    server = await serve(upstream_timeout_s=10.0)
    laptop = await open_page(server)
    await sign_up(laptop, "ann@example.com")
    await close(account_dialog(laptop))
    await send_message(laptop, "hello from the laptop")
    await wait_until_answered(laptop)

    phone = await open_page(server)
    await signed_in(phone)
    await expect(conversation_links(phone)).to_have_text(["hello from the laptop"])
    await conversation_links(phone).first.click()
    await expect(last_answer(phone)).to_have_text("hello from the laptop")

    # A new answer on the laptop streams on the phone too, live.
    fake_openrouter.script(slow_reply("Half of it", 3.0, ", then the rest."))
    await send_message(laptop, "a slow one")
    await expect(last_answer(phone)).to_have_text("Half of it")
    await expect(answers(phone).last).to_have_attribute("data-status", "streaming")
    await expect(last_answer(phone)).to_have_text("Half of it, then the rest.")
    await wait_until_answered(phone)
    await wait_until_answered(laptop)

    # A rename and a delete on the phone reach the laptop.
    await phone.get_by_role("button", name="Rename “hello from the laptop”").click()
    await phone.get_by_role("textbox", name="Conversation name").fill("Renamed")
    await phone.get_by_role("textbox", name="Conversation name").press("Enter")
    await expect(conversation_links(laptop)).to_have_text(["Renamed"])
    phone.on("dialog", lambda dialog: dialog.accept())
    await phone.get_by_role("button", name="Delete “Renamed”").click()
    await expect(conversation_links(laptop)).to_have_count(0)


async def test_an_answer_ends_in_the_history_with_every_device_closed(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    server = await serve(upstream_timeout_s=10.0)
    laptop = await open_page(server)
    await sign_up(laptop, "ann@example.com")
    await close(account_dialog(laptop))
    fake_openrouter.script(slow_reply("Started", 1.5, " and finished alone."))
    await send_message(laptop, "finish without me")
    await expect(last_answer(laptop)).to_have_text("Started")
    await laptop.context.close()
    [request] = fake_openrouter.requests
    await request.ended.wait()

    phone = await open_page(server)
    await signed_in(phone)
    await conversation_links(phone).filter(has_text="finish without me").click()
    await expect(last_answer(phone)).to_have_text("Started and finished alone.")
    await expect(answers(phone).last).to_have_attribute("data-status", "done")


async def test_the_browsers_conversations_move_into_the_account_once(
    open_page: OpenPage, serve: Serve
) -> None:
    server = await serve()
    page = await open_page(server)
    for text in ("kept in this browser", "also kept here"):
        await page.get_by_role("button", name="New chat").click()
        await send_message(page, text)
        await wait_until_answered(page)

    await sign_up(page, "ann@example.com")
    move = page.get_by_role("dialog", name="Move your conversations into your account?")
    await expect(move).to_contain_text("2 conversations are kept in this browser only.")
    await move.get_by_role("button", name="Move them").click()
    await expect(move).to_be_hidden()
    await close(account_dialog(page))
    moved = ["also kept here", "kept in this browser"]
    await expect(conversation_links(page)).to_have_text(moved)

    phone = await open_page(server)
    await signed_in(phone)
    await expect(conversation_links(phone)).to_have_text(moved)
    await conversation_links(phone).filter(has_text="kept in this browser").click()
    await expect(last_answer(phone)).to_have_text("kept in this browser")

    # Signed out, the account's conversations leave the browser; signed in, they are back
    # once, and the question is not asked again.
    await page.locator("#open-account").click()
    await account_dialog(page).get_by_role("button", name="Sign out").click()
    await expect(conversation_links(page)).to_have_count(0)
    await signed_in(page)
    await expect(conversation_links(page)).to_have_text(moved)
    await expect(move).to_be_hidden()


async def test_regenerate_and_edit_signed_in_reach_the_other_device(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    server = await serve()
    laptop = await open_page(server)
    await sign_up(laptop, "ann@example.com")
    await close(account_dialog(laptop))
    fake_openrouter.script(sse_reply(["First answer"]), sse_reply(["Second answer"]))
    await send_message(laptop, "a question")
    await wait_until_answered(laptop)
    await laptop.get_by_role("button", name="Regenerate").click()
    await expect(last_answer(laptop)).to_have_text("Second answer")
    await wait_until_answered(laptop)
    await expect(answers(laptop).last.get_by_text("2/2")).to_be_visible()

    phone = await open_page(server)
    await signed_in(phone)
    await conversation_links(phone).first.click()
    await expect(last_answer(phone)).to_have_text("Second answer")

    # An edited question is a new one on the server: the phone follows to its answer.
    await laptop.get_by_role("button", name="Edit this message and resend").click()
    await laptop.get_by_role("textbox", name="Edit message").fill("an edited question")
    await laptop.get_by_role("button", name="Save & send").click()
    await expect(last_answer(laptop)).to_have_text("an edited question")
    await expect(phone.locator("#messages article.user .message-body")).to_have_text(
        ["an edited question"]
    )
    await expect(last_answer(phone)).to_have_text("an edited question")
    # The laptop still has every version it made. (Once it has pulled the answer's last
    # write: a change from the server shows its newest branch, so a switch made in the
    # instant before that pull would be undone by it.)
    await wait_until_answered(laptop)
    await wait_until(lambda: caught_up(laptop), "the laptop pulled the server's last write")
    await laptop.get_by_role("button", name="Previous version").click()
    await expect(last_answer(laptop)).to_have_text("Second answer")


async def caught_up(page: Page) -> bool:
    """Whether the page's one conversation holds the server's latest version of it."""
    [stored] = [c for c in await stored_conversations(page) if c["messages"]]
    answer = await page.evaluate(
        "async (id) => (await (await fetch(`/api/conversations/${id}`)).json()).conversation",
        stored["id"],
    )
    return bool(stored.get("serverVersion") == answer["version"])


EXPORTED = {
    "format": "chatrelay.conversations",
    "version": 1,
    "conversations": [
        {
            "id": "imported-one",
            "title": "From a file",
            "updatedAt": 1_700_000_000_000,
            "systemPrompt": "",
            "messages": [
                {"id": "q1", "role": "user", "content": "an imported question"},
                {"id": "a1", "role": "assistant", "content": "its answer", "status": "done"},
            ],
        }
    ],
}


async def test_an_import_signed_in_goes_into_the_account_once(
    open_page: OpenPage, serve: Serve, tmp_path: Path
) -> None:
    server = await serve()
    laptop = await open_page(server)
    await sign_up(laptop, "ann@example.com")
    await close(account_dialog(laptop))
    phone = await open_page(server)
    await signed_in(phone)
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(EXPORTED))

    for _ in range(2):
        async with laptop.expect_file_chooser() as chooser:
            await laptop.get_by_role("button", name="Import").click()
        await (await chooser.value).set_files(exported)
        await expect(conversation_links(laptop)).to_have_text(["From a file"])
    await expect(conversation_links(phone)).to_have_text(["From a file"])
    await conversation_links(phone).first.click()
    await expect(last_answer(phone)).to_have_text("its answer")


async def test_a_session_ended_elsewhere_leaves_no_copies_in_the_browser(
    open_page: OpenPage, serve: Serve
) -> None:
    server = await serve()
    laptop = await open_page(server)
    await sign_up(laptop, "ann@example.com")
    await close(account_dialog(laptop))
    await send_message(laptop, "private words")
    await wait_until_answered(laptop)

    # The password changed on the phone signs every other session out, the laptop's too.
    phone = await open_page(server)
    await signed_in(phone)
    dialog = account_dialog(phone)
    await phone.locator("#open-account").click()
    await dialog.locator("summary", has_text="Change password").click()
    await dialog.get_by_label("Current password").filter(visible=True).fill(PASSWORD)
    new_password = dialog.get_by_label("New password (at least 10 characters)")
    await new_password.filter(visible=True).fill(NEW_PASSWORD)
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog.get_by_role("status")).to_contain_text("Password changed")

    await laptop.reload()

    async def forgotten() -> bool:
        return not [c for c in await stored_conversations(laptop) if c["messages"]]

    await wait_until(forgotten, "the account's copies left the browser", timeout_s=10)
    await expect(laptop.locator("#open-account")).to_have_text("Sign in")
    await expect(conversation_links(laptop)).to_have_count(0)
