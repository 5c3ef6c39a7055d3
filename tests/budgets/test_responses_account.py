"""A /v1/responses chat of a signed-in account is that account's like any other chat: its
one log line names the account, and disabling the account ends it on the spot."""

from __future__ import annotations

import logging

import pytest

from tests.account_clients import Browser
from tests.budget_helpers import costing, sign_up
from tests.conftest import MakeClient
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.waiting import wait_until

MINI = "openai/gpt-4o-mini"


async def test_the_log_line_of_a_signed_in_responses_chat_names_the_account(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(database_url=database_url)
    account_id = await sign_up(client)
    fake_openrouter.script(costing(0.0005))
    with caplog.at_level(logging.INFO, logger="server.chat"):
        response = await client.post("/v1/responses", json={"model": MINI, "input": "Hi"})
        assert response.status == 200
        assert (await response.json())["status"] == "completed"
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
    assert f"account={account_id}" in line


async def test_a_responses_chat_of_an_account_disabled_meanwhile_ends_and_its_line_says_so(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(database_url=database_url, signup="open")
    await sign_up(client)  # the first account, an admin, on the client's own cookie jar
    member = Browser.of(client)
    try:
        member_id = (await member.sign_up("bob@example.org"))["id"]
        fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("started")), "hang"]))
        ask = {"model": MINI, "input": "Hi", "background": True}
        with caplog.at_level(logging.INFO, logger="server.chat"):
            status, started, _ = await member.call("POST", "/v1/responses", ask)
            assert status == 200 and started["status"] in ("queued", "in_progress")
            await wait_until(lambda: len(fake_openrouter.requests) == 1, "the chat went upstream")
            disabled = await client.patch(
                f"/api/admin/accounts/{member_id}", json={"disabled": True}
            )
            assert disabled.status == 200
            await wait_until(lambda: ended(caplog) != [], "the chat ended")
        [line] = ended(caplog)
        assert "status=403" in line and f"account={member_id}" in line
    finally:
        await member.close()


def ended(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
