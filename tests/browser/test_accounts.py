"""Accounts on the page (SPEC "The page", accounts): sign up, sign in and out, the password
changed or reset from an admin's link, personal tokens shown once and revoked, the account
deleted, invites, and the admin's panel. The server keeps them in SQLite in the test's
DATA_DIR."""

from __future__ import annotations

import re

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.account_steps import (
    NEW_PASSWORD,
    PASSWORD,
    account_dialog,
    close,
    fill_sign_up,
    open_account,
    sign_in,
    sign_out,
    sign_up,
)
from tests.browser.chat_page import (
    answers,
    conversation_links,
    last_answer,
    send_message,
    wait_until_answered,
)
from tests.browser.conftest import OpenPage
from tests.conftest import Serve
from tests.fake_openrouter import USAGE, FakeOpenRouter, sse_reply

pytestmark = pytest.mark.browser


def origin(page: Page) -> str:
    return page.url.split("#")[0].split("?")[0].rstrip("/")


async def tokens_with(page: Page, token: str) -> tuple[int, object]:
    """GET /api/tokens as a script would, with `token` as its Bearer."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as client,
        client.get(origin(page) + "/api/tokens", headers=headers) as response,
    ):
        body = await response.json(content_type=None)
        return response.status, body


async def test_sign_up_out_and_in_and_change_the_password(open_page: OpenPage) -> None:
    page = await open_page()
    account = page.locator("#open-account")
    await expect(account).to_have_text("Sign in")
    await expect(page.get_by_role("button", name="Admin", exact=True)).to_be_hidden()

    await sign_up(page, "ann@example.com", name="Ann")
    dialog = account_dialog(page)
    await expect(
        dialog.get_by_text("Signed in as Ann (ann@example.com), an admin.")
    ).to_be_visible()
    await close(dialog)
    await expect(account).to_have_text("Ann")
    await expect(page.get_by_role("button", name="Admin", exact=True)).to_be_visible()
    await expect(page.locator("#connection")).to_have_text("Connected")
    await send_message(page, "signed in and chatting")
    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("signed in and chatting")

    await sign_out(page)
    await expect(page.get_by_role("button", name="Admin", exact=True)).to_be_hidden()
    await sign_in(page, "ann@example.com", "not the password")
    await expect(dialog.get_by_role("alert")).to_have_text("Wrong email or password")
    await dialog.get_by_label("Password", exact=True).filter(visible=True).fill(PASSWORD)
    await dialog.get_by_role("button", name="Sign in", exact=True).click()
    await expect(dialog.get_by_text("Signed in as Ann")).to_be_visible()

    await dialog.locator("summary", has_text="Change password").click()
    await dialog.get_by_label("Current password").filter(visible=True).fill(PASSWORD)
    await (
        dialog.get_by_label("New password (at least 10 characters)")
        .filter(visible=True)
        .fill(NEW_PASSWORD)
    )
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog.get_by_role("status")).to_have_text(
        "Password changed: other devices are signed out."
    )
    await close(dialog)
    await sign_out(page)
    await sign_in(page, "ann@example.com", NEW_PASSWORD)
    await expect(dialog.get_by_text("Signed in as Ann")).to_be_visible()
    await page.reload()
    await expect(account).to_have_text("Ann")


async def test_a_personal_token_is_shown_once_and_stops_working_when_revoked(
    open_page: OpenPage,
) -> None:
    page = await open_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_up(page, "ann@example.com")
    dialog = account_dialog(page)

    await dialog.get_by_label("Token name").filter(visible=True).fill("laptop script")
    await dialog.get_by_role("button", name="Make token").click()
    shown = dialog.get_by_role("textbox", name="New token")
    await expect(shown).to_have_value(re.compile(r"^crt_[\w-]{20,}$"))
    token = await shown.input_value()
    await expect(dialog.get_by_role("button", name="Copy")).to_be_focused()
    tokens = dialog.get_by_role("list", name="Your tokens").get_by_role("listitem")
    await expect(tokens).to_have_count(1)
    await expect(tokens.first).to_contain_text("laptop script")
    status, body = await tokens_with(page, token)
    assert status == 200 and body["data"][0]["name"] == "laptop script"  # type: ignore[index]

    # Shown once: the dialog opened again does not show it.
    await close(dialog)
    await open_account(page)
    await expect(shown).to_be_hidden()
    await expect(tokens).to_have_count(1)
    await dialog.get_by_role("button", name="Revoke “laptop script”").click()
    await expect(tokens).to_have_count(0)
    status, _ = await tokens_with(page, token)
    assert status == 401


async def admin_and_invited_bob(open_page: OpenPage, serve: Serve) -> tuple[Page, Page]:
    """An admin's page with its panel open, and Bob's, signed up from the admin's invite link."""
    server = await serve()
    admin = await open_page(server)
    await sign_up(admin, "admin@example.com")
    await close(account_dialog(admin))
    await admin.get_by_role("button", name="Admin", exact=True).click()
    panel = admin.locator("#admin-dialog")
    await panel.get_by_label("For email (optional)").filter(visible=True).fill("bob@example.com")
    await panel.get_by_role("button", name="Make invite link").click()
    link = panel.get_by_role("textbox", name="Link")
    await expect(link).to_have_value(re.compile(r"\?invite=\S+$"))
    invite = (await link.input_value()).partition("?")[2]

    bob = await open_page(server, connected=False)
    await bob.goto(f"{origin(bob)}/?{invite}")
    await expect(account_dialog(bob).get_by_text("You were invited")).to_be_visible()
    await fill_sign_up(bob, "bob@example.com", name="Bob")
    assert "invite=" not in bob.url
    await close(account_dialog(bob))
    await expect(bob.locator("#connection")).to_have_text("Connected")
    await close(panel)
    await admin.get_by_role("button", name="Admin", exact=True).click()
    return admin, bob


async def test_an_invited_account_gets_a_budget_and_sees_what_is_left(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    admin, bob = await admin_and_invited_bob(open_page, serve)
    panel = admin.locator("#admin-dialog")
    row = panel.locator("tr", has_text="bob@example.com")
    await expect(row).to_contain_text("$0.00, no limit")
    await row.get_by_label("Budget of bob@example.com in dollars").filter(visible=True).fill("5")
    await row.get_by_role("button", name="Save the budget of bob@example.com").click()
    await expect(row).to_contain_text("$0.00 of $5.00")
    await close(panel)  # kept: the panel opened again shows it
    await admin.get_by_role("button", name="Admin", exact=True).click()
    await expect(row.get_by_label("Budget of bob@example.com in dollars")).to_have_value("5")

    # Bob sees what is left of it, and it follows his answers.
    await bob.reload()
    budget = bob.locator("#budget-left")
    await expect(budget).to_contain_text("Budget: $5.00 of $5.00 left this month (resets")
    fake_openrouter.script(sse_reply(["spent"], usage={**USAGE, "cost": 1.25}))
    await send_message(bob, "spend a little")
    await wait_until_answered(bob)
    await expect(budget).to_contain_text("Budget: $3.75 of $5.00 left")
    await close(panel)
    await admin.get_by_role("button", name="Admin", exact=True).click()
    await expect(row).to_contain_text("$1.25 of $5.00")
    spend = panel.get_by_role("group", name="Spend table").get_by_role("row")
    await expect(spend).to_have_count(2)  # the head, then this period's
    await expect(spend.nth(1)).to_contain_text("$1.25")


async def test_an_admin_makes_admins_disables_and_hands_out_reset_links(
    open_page: OpenPage, serve: Serve
) -> None:
    admin, bob = await admin_and_invited_bob(open_page, serve)
    panel = admin.locator("#admin-dialog")
    row = panel.locator("tr", has_text="bob@example.com")
    await row.get_by_role("button", name="Make admin bob@example.com").click()
    await expect(row).to_contain_text("admin")
    await expect(
        row.get_by_role("button", name="Remove admin from bob@example.com")
    ).to_be_focused()
    await row.get_by_role("button", name="Disable bob@example.com").click()
    await expect(row).to_contain_text("disabled")
    await bob.reload()
    await expect(bob.locator("#open-account")).to_have_text("Sign in")
    await row.get_by_role("button", name="Enable bob@example.com").click()
    await expect(row).not_to_contain_text("disabled")

    await row.get_by_role("button", name="Password reset link for bob@example.com").click()
    link = panel.get_by_role("textbox", name="Link")
    await expect(link).to_have_value(re.compile(r"\?reset=\S+$"))
    reset = (await link.input_value()).partition("?")[2]
    await bob.goto(f"{origin(bob)}/?{reset}")
    dialog = account_dialog(bob)
    await expect(dialog.get_by_role("heading", name="New password")).to_be_visible()
    await (
        dialog.get_by_label("New password (at least 10 characters)")
        .filter(visible=True)
        .fill(NEW_PASSWORD)
    )
    await dialog.get_by_role("button", name="Set password").click()
    await expect(dialog.get_by_text("Password set: sign in with it.")).to_be_visible()
    assert "reset=" not in bob.url
    await dialog.get_by_label("Email").filter(visible=True).fill("bob@example.com")
    await dialog.get_by_label("Password", exact=True).filter(visible=True).fill(NEW_PASSWORD)
    await dialog.get_by_role("button", name="Sign in", exact=True).click()
    await expect(
        dialog.get_by_text("Signed in as Bob (bob@example.com), an admin.")
    ).to_be_visible()


async def test_an_account_is_deleted_with_its_password(open_page: OpenPage, serve: Serve) -> None:
    server = await serve(signup="open")
    await sign_up(await open_page(server), "admin@example.com")  # the last admin stays
    page = await open_page(server)
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_up(page, "ann@example.com")
    dialog = account_dialog(page)
    await dialog.locator("summary", has_text="Delete account").click()
    await dialog.get_by_label("Password", exact=True).filter(visible=True).fill("a wrong password")
    await dialog.get_by_role("button", name="Delete account").click()
    await expect(dialog.get_by_text("Wrong password")).to_be_visible()
    await dialog.get_by_label("Password", exact=True).filter(visible=True).fill(PASSWORD)
    await dialog.get_by_role("button", name="Delete account").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#open-account")).to_have_text("Sign in")
    await sign_in(page, "ann@example.com")
    await expect(account_dialog(page).get_by_role("alert")).to_have_text("Wrong email or password")


async def test_a_server_that_requires_accounts_asks_to_sign_in_first(
    open_page: OpenPage, serve: Serve
) -> None:
    server = await serve(accounts="required")
    page = await open_page(server, connected=False)
    dialog = account_dialog(page)
    await expect(dialog.get_by_role("heading", name="Sign in")).to_be_visible()
    await dialog.get_by_role("button", name="Create an account").click()
    await fill_sign_up(page, "ann.with.a.rather.long.address@example.com")
    await close(dialog)
    await expect(page.locator("#connection")).to_have_text("Connected")
    # A long address is cut to fit the sidebar: the Admin button beside it stays in reach.
    await page.get_by_role("button", name="Admin", exact=True).click()
    await close(page.locator("#admin-dialog"))
    await send_message(page, "now I may chat")
    await wait_until_answered(page)
    await expect(last_answer(page)).to_have_text("now I may chat")


async def test_an_answer_cut_or_refused_by_the_budget_says_so_and_when_it_resets(
    open_page: OpenPage, serve: Serve, fake_openrouter: FakeOpenRouter
) -> None:
    server = await serve(default_budget_usd=5.0)
    page = await open_page(server)
    await sign_up(page, "ann@example.com")
    await close(account_dialog(page))
    await expect(page.locator("#budget-left")).to_contain_text("$5.00 of $5.00 left")
    usage = {**USAGE, "cost": 5.0}
    fake_openrouter.script(sse_reply(["Cut short"], finish_reason="length", usage=usage))
    await send_message(page, "a long one")
    await wait_until_answered(page)
    note = answers(page).last.locator(".message-note")
    await expect(note).to_contain_text("Stopped: your budget for this period is used up.")
    await expect(note).to_contain_text("It resets on")
    await expect(page.locator("#budget-left")).to_contain_text("$0.00 of $5.00 left")

    await send_message(page, "one more")
    error = answers(page).last.locator(".message-error")
    await expect(error).to_contain_text("Budget used up")
    await expect(error).to_contain_text("it resets on")

    # The refusal was never written on the server (its chat never started): a change pulled
    # from the server afterwards (a rename on another device) keeps it after its question.
    await page.evaluate(RENAME_ON_THE_SERVER, "Renamed elsewhere")
    await expect(conversation_links(page)).to_have_text(["Renamed elsewhere"])
    await expect(error).to_contain_text("Budget used up")

    # With more budget the next question follows the last one the server has, not the refusal.
    await page.evaluate(RAISE_MY_BUDGET, 50)
    fake_openrouter.script(sse_reply(["Here you are"]))
    await send_message(page, "and now?")
    await expect(last_answer(page)).to_have_text("Here you are")
    await wait_until_answered(page)


# The admin (this browser's account, the first) gives itself a larger budget.
RAISE_MY_BUDGET = """async (usd) => {
  const me = (await (await fetch("/api/session")).json()).account.id;
  await fetch(`/api/admin/accounts/${me}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ budget_usd: usd }),
  });
}"""

# Another device's rename, made through the history routes with this browser's session.
RENAME_ON_THE_SERVER = """async (title) => {
  const listed = await (await fetch("/api/conversations")).json();
  const id = listed.data[0].id;
  await fetch(`/api/conversations/${id}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ title }),
  });
}"""
