"""The budget an admin sets and sees, on both engines: an account's own budget over the
default, each account's budget in the admin's list, the last periods' spend, a budget that
is not a number of dollars refused naming the field; personal tokens and /v1 metered like
the page; the database away refuses metered chats rather than running them unmetered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.account_clients import Browser, bearer
from tests.budget_helpers import costing
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter
from tests.postgres_server import PostgresServer

MINI = "openai/gpt-4o-mini"


@pytest.fixture
async def browsers() -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for browser in made:
        await browser.close()


async def two_accounts(client: Client, browsers: list[Browser]) -> tuple[Browser, Browser, str]:
    """An admin (the first account) and a member; the member's id."""
    admin, member = Browser.of(client), Browser.of(client)
    browsers += [admin, member]
    await admin.sign_up("admin@example.com")
    member_id = (await member.sign_up("member@example.com"))["id"]
    return admin, member, member_id


async def test_an_accounts_own_budget_is_kept_and_seen_by_the_admin(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    browsers: list[Browser],
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=5.0, signup="open")
    admin, member, member_id = await two_accounts(client, browsers)
    status, _, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{member_id}", {"budget_usd": 0.1}
    )
    assert status == 200
    fake_openrouter.script(costing(0.04))
    status, _, _ = await member.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 200
    status, data, _ = await member.call("GET", "/api/session")
    assert data["budget"]["limit_usd"] == 0.1
    assert data["budget"]["spent_usd"] == pytest.approx(0.04)
    status, listed, _ = await admin.call("GET", "/api/admin/accounts")
    budgets = {entry["email"]: entry["budget"] for entry in listed["data"]}
    assert budgets["member@example.com"]["spent_usd"] == pytest.approx(0.04)
    assert budgets["admin@example.com"]["limit_usd"] == 5.0
    status, spend, _ = await admin.call("GET", "/api/admin/spend")
    assert status == 200
    [row] = spend["data"]
    assert row["account_id"] == member_id and row["chats"] == 1
    assert row["spent_usd"] == pytest.approx(0.04)
    assert (await member.call("GET", "/api/admin/spend"))[0] == 403


@pytest.mark.parametrize("bad", [b"-1", b'"ten"', b"1e400", b"true"])
async def test_a_budget_that_is_not_dollars_is_a_400_naming_the_field(
    make_client: MakeClient, database_url: str, browsers: list[Browser], bad: bytes
) -> None:
    client = await make_client(database_url=database_url, signup="open")
    admin, _, member_id = await two_accounts(client, browsers)
    body = b'{"budget_usd": ' + bad + b"}"
    status, data, _ = await admin.call(
        "PATCH",
        f"/api/admin/accounts/{member_id}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and "budget_usd" in data["message"]


async def test_a_personal_token_on_v1_is_metered_and_refused_in_openais_shape(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    browsers: list[Browser],
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=0.001)
    browser = Browser.of(client)
    browsers.append(browser)
    await browser.sign_up("ann@example.com")
    token = (await browser.make_token())["token"]
    script = Browser.of(client, bearer(token))
    browsers.append(script)
    ask = {"model": MINI, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    fake_openrouter.script(costing(0.001))
    status, _, _ = await script.call("POST", "/v1/chat/completions", ask)
    assert status == 200
    # $0.001 affords (1,000,000 - 150) / 600 = 1,666 tokens of a 1-token prompt.
    assert fake_openrouter.requests[0].body["max_tokens"] == 1666
    status, data, _ = await browser.call("GET", "/api/session")
    assert data["budget"]["spent_usd"] == pytest.approx(0.001)
    assert data["budget"]["reserved_usd"] == 0
    status, refused, _ = await script.call("POST", "/v1/chat/completions", ask)
    assert status == 402
    assert refused["error"]["code"] == "insufficient_quota"
    assert refused["error"]["message"].startswith("Budget used up: $0.00 of $0.00 this ")


async def test_a_response_is_metered_and_its_max_output_tokens_cut(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    browsers: list[Browser],
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=0.001)
    browser = Browser.of(client)
    browsers.append(browser)
    await browser.sign_up("ann@example.com")
    fake_openrouter.script(costing(0.0005))
    ask = {"model": MINI, "input": "Hi", "max_output_tokens": 100_000}
    status, answer, _ = await browser.call("POST", "/v1/responses", ask)
    assert status == 200 and answer["status"] == "completed"
    assert fake_openrouter.requests[0].body["max_tokens"] == 1666
    _, data, _ = await browser.call("GET", "/api/session")
    assert data["budget"]["spent_usd"] == pytest.approx(0.0005)


async def test_with_the_database_away_metered_chats_are_refused_not_run(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    make_postgres_server: Callable[[], PostgresServer],
    browsers: list[Browser],
) -> None:
    postgres = make_postgres_server()
    client = await make_client(database_url=postgres.create_database(), default_budget_usd=1.0)
    member, anonymous = Browser.of(client), Browser.of(client)
    browsers += [member, anonymous]
    await member.sign_up("ann@example.com")
    postgres.stop()
    status, data, _ = await member.call("POST", "/api/chat/openrouter", chat_body())
    assert (status, data) == (503, {"message": "Account store unavailable"})
    assert fake_openrouter.requests == []
    status, _, _ = await anonymous.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 200
