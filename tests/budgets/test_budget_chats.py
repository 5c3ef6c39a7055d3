"""Budgets as a user meets them, on both database engines: chats spend until the budget is
met exactly and are then refused with SPEC's message on every transport; max_tokens is
added upstream and cut by what is left; a cancelled chat pays for what it relayed; the
user's own key spends nothing of the budget; a new period starts afresh."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from server.web.budget_gate import budget_gate_key
from tests.budget_helpers import WallClock, budget, costing, december, sign_up
from tests.clients import chat_frame, receive, text_of, until_end
from tests.conftest import USER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.waiting import wait_until

# openai/gpt-4o-mini in the fake's /models: per token, in nano-dollars, and its longest
# answer (`top_provider.max_completion_tokens`).
PROMPT_NANOS, COMPLETION_NANOS, LONGEST = 150, 600, 16_384
# chat_body's messages, "Be brief." and "Hello": 14 characters, 4 tokens.
PROMPT_TOKENS = 4


async def metered_client(
    make_client: MakeClient,
    database_url: str,
    budget_usd: float,
    clock: WallClock | None = None,
    **overrides: Any,
) -> Client:
    client = await make_client(
        database_url=database_url, default_budget_usd=budget_usd, **overrides
    )
    if clock is not None:
        client.app[budget_gate_key].budgets.clock = clock
    await sign_up(client)
    return client


async def post_chat(client: Client, **settings: Any) -> tuple[int, str]:
    response = await client.post("/api/chat/openrouter", json=chat_body(**settings))
    return response.status, await response.text()


async def test_a_budget_is_spent_exactly_then_refused_with_when_it_resets(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await metered_client(make_client, database_url, 0.15, december())
    # The last chat has $0.005 left: fewer tokens than the model's longest answer.
    fake_openrouter.script(costing(0.07), costing(0.075), costing(0.005))
    for _ in range(3):
        assert await post_chat(client) == (200, "Hi there")
    shown = await budget(client)
    assert shown["limit_usd"] == 0.15
    assert shown["spent_usd"] == pytest.approx(0.15) and shown["reserved_usd"] == 0
    assert shown["period"] == "month" and shown["resets_at"] == "2027-01-01T00:00:00Z"
    status, body = await post_chat(client)
    assert status == 402
    assert orjson.loads(body) == {
        "message": "Budget used up: $0.15 of $0.15 this month; it resets on 2027-01-01"
    }
    assert len(fake_openrouter.requests) == 3  # the refused chat never reached upstream
    # The answers' max_tokens: the model's own limit at first, then what was left.
    sent = [request.body["max_tokens"] for request in fake_openrouter.requests]
    assert sent[0] == LONGEST
    assert sent[2] == (5_000_000 - PROMPT_TOKENS * PROMPT_NANOS) // COMPLETION_NANOS


@pytest.mark.parametrize("budget_usd", [None, 5.0])
async def test_an_upstream_without_a_model_list_still_serves_signed_in_chats(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    budget_usd: float | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Prices come from upstream's /models; one that answers 404 leaves the price unknown,
    and SPEC's rule for an unknown price holds (not metered, said once), not a failed chat."""
    fake_openrouter.models_status = 404
    client = await make_client(database_url=database_url, default_budget_usd=budget_usd)
    await sign_up(client)
    fake_openrouter.script(costing(0.01), costing(0.01))
    with caplog.at_level(logging.WARNING, logger="server.web.budget_gate"):
        assert await post_chat(client) == (200, "Hi there")
        assert await post_chat(client) == (200, "Hi there")
    assert fake_openrouter.models_calls >= 1
    assert all("max_tokens" not in r.body for r in fake_openrouter.requests)
    warned = [r for r in caplog.records if "no known price" in r.getMessage()]
    assert len(warned) == 1


async def test_a_named_max_tokens_that_fits_is_sent_as_given_and_one_too_big_is_cut(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    # $0.001 affords (1,000,000 - 600) / 600 = 1,665 answer tokens.
    client = await metered_client(make_client, database_url, 0.001)
    fake_openrouter.script(costing(0.0), costing(0.0))
    assert (await post_chat(client, max_tokens=300))[0] == 200
    assert (await post_chat(client, max_tokens=5000))[0] == 200
    sent = [request.body["max_tokens"] for request in fake_openrouter.requests]
    assert sent == [300, 1665]


async def test_the_refusal_on_the_websocket_and_v1_in_openais_shape(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await metered_client(make_client, database_url, 0.0, december())
    message = "Budget used up: $0.00 of $0.00 this month; it resets on 2027-01-01"
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        frame = await receive(ws)
    assert frame == {"type": "error", "id": "c1", "status": 402, "message": message}
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status == 402
    error = (await response.json())["error"]
    assert error["code"] == "insufficient_quota" and error["message"] == message
    assert fake_openrouter.requests == []


async def test_a_cancelled_chat_pays_for_the_text_it_relayed(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await metered_client(make_client, database_url, 1.0)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("12345678")), "hang"]))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1"))
        first = await receive(ws)
        assert first["content"] == "12345678"
        await ws.send_str(orjson.dumps({"type": "cancel", "id": "c1"}).decode())
        frames = await until_end(ws, "c1")
    assert frames[-1]["finish_reason"] == "cancelled"
    # The prompt's 4 tokens and the 8 characters relayed as 2.
    expected = (PROMPT_TOKENS * PROMPT_NANOS + 2 * COMPLETION_NANOS) / 1e9
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(expected) and shown["reserved_usd"] == 0


async def test_the_users_own_key_spends_nothing_of_the_budget(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await metered_client(make_client, database_url, 0.0)
    saved = await client.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    assert saved.status == 200
    fake_openrouter.script(costing(0.25))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("own"))
        frames = await until_end(ws, "own")
    assert text_of(frames) == "Hi there"
    assert frames[-1]["usage"]["cost"] == 0.25  # shown to the user
    request = fake_openrouter.requests[0]
    assert request.headers["Authorization"] == f"Bearer {USER_KEY}"
    assert "max_tokens" not in request.body
    shown = await budget(client)
    assert shown["spent_usd"] == 0 and shown["reserved_usd"] == 0
    metrics = await (await client.get("/metrics")).text()
    assert "chatrelay_spend_usd_total 0.25" in metrics


async def test_a_new_period_starts_afresh(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    clock = WallClock(december().now.replace(day=31, hour=23))
    client = await metered_client(make_client, database_url, 0.05, clock)
    fake_openrouter.script(costing(0.05), costing(0.01))
    assert (await post_chat(client))[0] == 200
    status, body = await post_chat(client)
    assert status == 402 and body.endswith('it resets on 2027-01-01"}')
    clock.advance(hours=1)
    assert await post_chat(client) == (200, "Hi there")
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(0.01)
    assert shown["resets_at"] == "2027-02-01T00:00:00Z"


async def test_twenty_chats_at_once_on_one_account_never_pass_the_budget(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    # Each chat asks 10,000 tokens of claude-3.5-sonnet ($0.000015 each) with a prompt of
    # 4 tokens ($0.000003 each): $0.150012 at worst, and the budget affords five of them.
    # Twenty at once from one address: past MAX_CHATS_PER_CLIENT's 16, so that is off.
    client = await metered_client(make_client, database_url, 5 * 0.150012, max_chats_per_client=0)
    go = asyncio.Event()
    fake_openrouter.script(*(costing(0.15, hold=go) for _ in range(20)))
    body = chat_body(model="anthropic/claude-3.5-sonnet", max_tokens=10_000)

    async def one() -> int:
        async with client.post("/api/chat/openrouter", json=body) as response:
            await response.read()
            return response.status

    chats = [asyncio.create_task(one()) for _ in range(20)]
    await wait_until(lambda: len(fake_openrouter.requests) == 5, "five chats reached upstream")
    await wait_until(lambda: sum(c.done() for c in chats) == 15, "fifteen were refused")
    go.set()
    statuses = await asyncio.gather(*chats)
    assert sorted(statuses) == [200] * 5 + [402] * 15
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(0.75) and shown["reserved_usd"] == 0
    assert shown["spent_usd"] <= shown["limit_usd"]


async def test_a_model_without_a_price_is_not_metered_and_is_warned_about_once(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await metered_client(make_client, database_url, 0.0)
    free = "meta-llama/llama-3-8b-instruct:free"
    with caplog.at_level(logging.WARNING, logger="server.web.budget_gate"):
        for _ in range(2):
            assert await post_chat(client, model=free) == (200, "Hello")
    warned = [r for r in caplog.records if "no known price" in r.getMessage()]
    assert len(warned) == 1


async def test_chats_without_an_account_are_not_metered(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=0.0)
    assert await post_chat(client) == (200, "Hello")
    assert "max_tokens" not in fake_openrouter.requests[0].body
    assert (await (await client.get("/api/session")).json())["budget"] is None


async def test_a_chat_that_writes_history_is_settled_and_a_refused_one_holds_nothing(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await metered_client(make_client, database_url, 1.0)
    await client.post("/api/conversations", json={"id": "c"})
    fake_openrouter.script(costing(0.02))
    conversation = {"id": "c", "parent_id": None, "message_id": "a"}
    answer = await client.post(
        "/api/chat/openrouter", json={**chat_body(), "conversation": conversation}
    )
    assert (answer.status, await answer.text()) == (200, "Hi there")
    found = await (await client.get("/api/conversations/c")).json()
    assert found["messages"][-1]["content"] == "Hi there"
    # A conversation that is not there: refused after the reservation, which goes back.
    unknown = {"id": "nope", "parent_id": None}
    refused = await client.post(
        "/api/chat/openrouter", json={**chat_body(), "conversation": unknown}
    )
    assert refused.status == 404
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(0.02) and shown["reserved_usd"] == 0
