"""However a metered chat ends, its reservation becomes its cost, on both engines: failed
upstream mid-answer, stopped at the longest a chat may run, or ended by the server shutting
down (settled before the database closes, seen by the next process)."""

from __future__ import annotations

import logging

import pytest

from tests.budget_helpers import budget, costing, sign_up
from tests.clients import chat_frame, receive, until_end
from tests.conftest import Client, MakeClient
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, stream_error_reply

# openai/gpt-4o-mini in the fake's /models, per token in nano-dollars; chat_body's prompt is
# 14 characters, 4 tokens.
PROMPT_NANOS, COMPLETION_NANOS, PROMPT_TOKENS = 150, 600, 4


def billed(relayed_chars: int) -> float:
    """What a chat cut short costs: its prompt's estimate and the text relayed, chars / 4."""
    tokens = -(-relayed_chars // 4)
    return (PROMPT_TOKENS * PROMPT_NANOS + tokens * COMPLETION_NANOS) / 1e9


async def test_a_chat_that_fails_mid_answer_pays_for_what_it_relayed(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=1.0)
    await sign_up(client)
    fake_openrouter.script(stream_error_reply(502, "Provider fell over", ("0123456789",)))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        frames = await until_end(ws, "c1")
    assert frames[-1]["type"] == "error"
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(billed(10)) and shown["reserved_usd"] == 0


async def test_a_chat_stopped_at_the_longest_a_chat_may_run_is_settled(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(
        database_url=database_url, default_budget_usd=1.0, max_chat_duration_s=1.0
    )
    await sign_up(client)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("abcd")), "hang"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        frames = await until_end(ws, "c1")
    assert frames[-1]["type"] == "error" and frames[-1]["status"] == 504
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(billed(4)) and shown["reserved_usd"] == 0


async def test_a_chat_ended_by_the_shutdown_is_settled_before_the_database_closes(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Upstream may stay silent past the test: only the shutdown ends this chat.
    client = await make_client(
        database_url=database_url, default_budget_usd=1.0, upstream_timeout_s=60.0
    )
    await sign_up(client)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("12345678")), "hang"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        assert (await receive(ws))["content"] == "12345678"
    # The socket closed, the chat runs on (Durable chats) until the server goes.
    assert (await budget(client))["reserved_usd"] > 0
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    with caplog.at_level(logging.INFO, logger="server.chat"):
        await client.server.close()  # the app's cleanup: its runs end with 503
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
    assert "status=503" in line and f"cost_usd={billed(8)}" in line and "account=" in line
    after: Client = await make_client(database_url=database_url, default_budget_usd=1.0)
    after.session.cookie_jar.update_cookies(cookies)
    shown = await budget(after)
    assert shown["spent_usd"] == pytest.approx(billed(8)) and shown["reserved_usd"] == 0
    await client.close()


async def test_the_log_line_of_a_metered_chat_names_its_account_and_cost(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=1.0)
    account_id = await sign_up(client)
    fake_openrouter.script(costing(0.0125))
    with caplog.at_level(logging.INFO, logger="server.chat"):
        async with client.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(chat_frame("c1"))
            await until_end(ws, "c1")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
    assert f"account={account_id}" in line and "cost_usd=0.0125" in line
