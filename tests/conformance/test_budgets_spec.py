"""SPEC "Budgets" read to the letter, from outside (real sockets, the fake upstream's /models
prices, SQLite): the refusal's text for each period and where it resets, the 402 on every
transport (the openai SDK raising its own error), what the session and the admin see, the
last 12 periods of spend, the 256-token floor, the model's own output limit, the running
chats' reservations counted as spent, a cost from usage tokens when upstream gives none, the
largest budget, and each transport's log line naming the account and the cost.
What tests/budgets/ checks the same way is not repeated here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest

from server.web.budget_gate import budget_gate_key
from tests.account_clients import Browser, bearer
from tests.budget_helpers import WallClock, costing
from tests.clients import chat_frame, parse_sse, receive, until_end
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.integration.openai_sdk import messages, sdk_for
from tests.waiting import wait_until

MINI = "openai/gpt-4o-mini"
# gpt-4o-mini in the fake's /models, per token in nano-dollars; chat_body's prompt ("Be
# brief." and "Hello", 14 characters) is 4 tokens.
PROMPT_NANOS, COMPLETION_NANOS, PROMPT_TOKENS = 150, 600, 4
BUDGET_KEYS = {"limit_usd", "spent_usd", "reserved_usd", "period", "resets_at"}
# A Wednesday: its day, week (from Monday the 7th) and month all reset on different dates.
WEDNESDAY = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)


@pytest.fixture
async def browsers() -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for browser in made:
        await browser.close()


async def member(
    client: Client, browsers: list[Browser], email: str = "ann@example.com"
) -> tuple[Browser, str]:
    """A browser signed in to a new account, and the account's id."""
    browser = Browser.of(client)
    browsers.append(browser)
    return browser, (await browser.sign_up(email))["id"]


def on_clock(client: Client, now: datetime) -> WallClock:
    clock = WallClock(now)
    client.app[budget_gate_key].budgets.clock = clock
    return clock


async def budget_of(browser: Browser) -> dict[str, Any]:
    status, data, _ = await browser.call("GET", "/api/session")
    assert status == 200
    shown: dict[str, Any] = data["budget"]
    return shown


@pytest.mark.parametrize(
    ("period", "resets_on"),
    [("day", "2026-12-10"), ("week", "2026-12-14"), ("month", "2027-01-01")],
)
async def test_the_refusal_names_the_period_and_the_day_it_resets(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    browsers: list[Browser],
    period: str,
    resets_on: str,
) -> None:
    client = await make_client(default_budget_usd=0.1, budget_period=period)
    on_clock(client, WEDNESDAY)
    ann, _ = await member(client, browsers)
    fake_openrouter.script(costing(0.1))
    assert (await ann.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    status, data, response = await ann.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 402 and response.content_type == "application/json"
    # SPEC's text with this period's word and figures: two decimals, the reset's date.
    message = f"Budget used up: $0.10 of $0.10 this {period}; it resets on {resets_on}"
    assert data == {"message": message}
    shown = await budget_of(ann)
    assert shown == {
        "limit_usd": 0.1,
        "spent_usd": pytest.approx(0.1),
        "reserved_usd": 0,
        "period": period,
        "resets_at": f"{resets_on}T00:00:00Z",
    }


async def test_a_week_starts_on_monday_at_midnight_utc(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=0.05, budget_period="week")
    clock = on_clock(client, datetime(2026, 12, 13, 23, 59, tzinfo=UTC))  # a Sunday
    ann, _ = await member(client, browsers)
    fake_openrouter.script(costing(0.05), costing(0.01))
    assert (await ann.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    status, data, _ = await ann.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 402 and data["message"].endswith("it resets on 2026-12-14")
    clock.advance(minutes=1)  # Monday 00:00 UTC: a new week
    assert (await ann.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    shown = await budget_of(ann)
    assert shown["spent_usd"] == pytest.approx(0.01)
    assert shown["resets_at"] == "2026-12-21T00:00:00Z"


async def test_the_402_on_every_transport(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=0.0)
    on_clock(client, WEDNESDAY)
    ann, _ = await member(client, browsers)
    message = "Budget used up: $0.00 of $0.00 this month; it resets on 2027-01-01"
    # POST asking for Server-Sent Events: refused before streaming, so the status and JSON.
    status, data, _ = await ann.call(
        "POST", "/api/chat/openrouter", chat_body(), headers={"Accept": "text/event-stream"}
    )
    assert (status, data) == (402, {"message": message})
    token = (await ann.make_token())["token"]
    # The WebSocket, with a personal token: the error frame of SPEC's table.
    async with client.session.ws_connect(
        client.make_url("/api/chat/ws"), headers=bearer(token)
    ) as ws:
        await ws.send_str(chat_frame("c1"))
        frame = await receive(ws)
    assert frame["type"] == "error" and frame["id"] == "c1"
    assert (frame["status"], frame["message"]) == (402, message)
    async with sdk_for(client, api_key=token) as sdk:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                await sdk.chat.completions.create(model=MINI, messages=messages(), stream=stream)
            error = caught.value
            assert error.status_code == 402 and error.code == "insufficient_quota"
            assert isinstance(error.body, dict) and error.body["message"] == message
            with pytest.raises(openai.APIStatusError) as caught:
                await sdk.responses.create(model=MINI, input="Hi", stream=stream)
            error = caught.value
            assert error.status_code == 402 and error.code == "insufficient_quota"
            assert isinstance(error.body, dict) and error.body["message"] == message
    assert fake_openrouter.requests == []


async def test_what_the_session_and_the_admin_see_of_each_budget(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=1.0, signup="open")
    on_clock(client, WEDNESDAY)
    admin, admin_id = await member(client, browsers, "admin@example.com")
    ann, ann_id = await member(client, browsers)
    status, changed, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{ann_id}", {"budget_usd": 2.5}
    )
    assert status == 200 and changed["id"] == ann_id
    assert changed["budget"] == {
        "limit_usd": 2.5,
        "spent_usd": 0,
        "reserved_usd": 0,
        "period": "month",
        "resets_at": "2027-01-01T00:00:00Z",
    }
    fake_openrouter.script(costing(0.25))
    assert (await ann.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    shown = await budget_of(ann)
    assert set(shown) == BUDGET_KEYS and shown["limit_usd"] == 2.5
    assert shown["spent_usd"] == pytest.approx(0.25)
    for name in ("limit_usd", "spent_usd", "reserved_usd"):
        assert isinstance(shown[name], int | float) and not isinstance(shown[name], bool)
    status, listed, _ = await admin.call("GET", "/api/admin/accounts")
    budgets = {entry["id"]: entry["budget"] for entry in listed["data"]}
    assert budgets[ann_id] == shown
    assert budgets[admin_id]["limit_usd"] == 1.0  # the default
    # null clears the account's own budget: the default holds again.
    status, changed, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{ann_id}", {"budget_usd": None}
    )
    assert status == 200 and changed["budget"]["limit_usd"] == 1.0
    # 0 is a budget: nothing may be spent on the server key.
    status, changed, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{ann_id}", {"budget_usd": 0}
    )
    assert status == 200 and changed["budget"]["limit_usd"] == 0
    status, data, _ = await ann.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 402 and data["message"].startswith("Budget used up: $0.25 of $0.00 ")
    # A change that names no budget keeps it.
    status, changed, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{ann_id}", {"admin": False}
    )
    assert status == 200 and changed["budget"]["limit_usd"] == 0


async def test_an_account_without_any_limit_shows_null(
    make_client: MakeClient, browsers: list[Browser]
) -> None:
    client = await make_client()
    on_clock(client, WEDNESDAY)
    ann, _ = await member(client, browsers)
    assert await budget_of(ann) == {
        "limit_usd": None,
        "spent_usd": 0,
        "reserved_usd": 0,
        "period": "month",
        "resets_at": "2027-01-01T00:00:00Z",
    }


@pytest.mark.parametrize("bad", [b'"5"', b"1e300", b"1000000000.01", b"[1]", b"{}"])
async def test_more_budgets_that_are_not_dollars_are_a_400_naming_the_field(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser], bad: bytes
) -> None:
    client = await make_client(default_budget_usd=1.0)
    admin, admin_id = await member(client, browsers, "admin@example.com")
    status, data, _ = await admin.call(
        "PATCH",
        f"/api/admin/accounts/{admin_id}",
        data=b'{"budget_usd": ' + bad + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and "budget_usd" in data["message"]
    # Nothing changed, and chats go on.
    assert (await budget_of(admin))["limit_usd"] == 1.0
    assert (await admin.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200


async def test_the_largest_budget_still_serves_chats(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    """A billion dollars, kept in nano-dollars, still fits the database's integers."""
    client = await make_client()
    admin, admin_id = await member(client, browsers, "admin@example.com")
    status, changed, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{admin_id}", {"budget_usd": 1_000_000_000}
    )
    assert status == 200 and changed["budget"]["limit_usd"] == 1_000_000_000
    fake_openrouter.script(costing(0.5))
    assert (await admin.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    assert (await budget_of(admin))["spent_usd"] == pytest.approx(0.5)


async def test_the_spend_of_the_last_12_periods(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=1.0)
    clock = on_clock(client, datetime(2025, 12, 15, tzinfo=UTC))
    admin, admin_id = await member(client, browsers, "admin@example.com")
    # A chat in each of 13 months, December 2025 to December 2026 (two in the last).
    months = [(2025, 12), *((2026, month) for month in range(1, 13)), (2026, 12)]
    fake_openrouter.script(*(costing(0.01) for _ in months))
    for year, month in months:
        clock.now = datetime(year, month, 15, tzinfo=UTC)
        assert (await admin.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    status, spend, _ = await admin.call("GET", "/api/admin/spend")
    assert status == 200 and set(spend) == {"data"}
    rows = spend["data"]
    assert all(set(row) == {"account_id", "period_start", "spent_usd", "chats"} for row in rows)
    starts = sorted(row["period_start"] for row in rows)
    # The current period (December 2026) and the 11 before it: not December 2025.
    assert starts == [f"2026-{month:02}-01" for month in range(1, 13)]
    december = next(row for row in rows if row["period_start"] == "2026-12-01")
    assert december["account_id"] == admin_id and december["chats"] == 2
    assert december["spent_usd"] == pytest.approx(0.02)


async def test_the_smallest_chat_is_256_tokens(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client()
    admin, admin_id = await member(client, browsers, "admin@example.com")
    # The prompt's 4 tokens and 255 answer tokens: 600 + 153,000 nano-dollars.
    almost = (PROMPT_TOKENS * PROMPT_NANOS + 255 * COMPLETION_NANOS) / 1e9
    enough = (PROMPT_TOKENS * PROMPT_NANOS + 256 * COMPLETION_NANOS) / 1e9
    status, _, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{admin_id}", {"budget_usd": almost}
    )
    assert status == 200
    status, data, _ = await admin.call("POST", "/api/chat/openrouter", chat_body())
    assert status == 402 and data["message"].startswith("Budget used up: $0.00 of $0.00 ")
    # The floor is for a cut: a chat asking fewer tokens than what is left affords runs.
    fake_openrouter.script(costing(0.0), costing(0.0))
    status, _, _ = await admin.call("POST", "/api/chat/openrouter", chat_body(max_tokens=100))
    assert status == 200
    await admin.call("PATCH", f"/api/admin/accounts/{admin_id}", {"budget_usd": enough})
    assert (await admin.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    assert [r.body["max_tokens"] for r in fake_openrouter.requests] == [100, 256]


async def test_max_tokens_sent_upstream_stops_at_the_models_own_output_limit(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    """OpenRouter's /models gives a model's longest answer as
    `top_provider.max_completion_tokens` (gpt-4o-mini: 16,384 of its 128,000 context):
    a budget that affords more sends that, not what the context would hold."""
    client = await make_client(default_budget_usd=100.0)
    ann, _ = await member(client, browsers)
    fake_openrouter.script(costing(0.01))
    assert (await ann.call("POST", "/api/chat/openrouter", chat_body()))[0] == 200
    assert fake_openrouter.requests[0].body["max_tokens"] == 16_384
    # Its /api/models entry stays SPEC's four fields.
    status, models, _ = await ann.call("GET", "/api/models")
    assert status == 200
    assert all(set(m) == {"id", "name", "context_length", "pricing"} for m in models["data"])


async def test_what_running_chats_reserved_counts_as_spent(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=0.001)
    on_clock(client, WEDNESDAY)
    ann, _ = await member(client, browsers)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Hi")), "hang"]), costing(0.0))
    async with ann.session.ws_connect(ann.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("held", max_tokens=1000))
        assert (await receive(ws))["content"] == "Hi"
        worst = PROMPT_TOKENS * PROMPT_NANOS + 1000 * COMPLETION_NANOS
        shown = await budget_of(ann)
        assert shown["reserved_usd"] == pytest.approx(worst / 1e9) and shown["spent_usd"] == 0
        # The next chat gets what is left: (1,000,000 - 600,600 - 600) / 600 tokens.
        status, _, _ = await ann.call("POST", "/api/chat/openrouter", chat_body())
        assert status == 200
        assert fake_openrouter.requests[1].body["max_tokens"] == (1_000_000 - worst - 600) // 600
        await ws.send_str('{"type": "cancel", "id": "held"}')
        assert (await until_end(ws, "held"))[-1]["finish_reason"] == "cancelled"
    assert (await budget_of(ann))["reserved_usd"] == 0


async def test_without_usage_cost_the_tokens_are_priced_and_metrics_count_it(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    client = await make_client(default_budget_usd=1.0)
    ann, _ = await member(client, browsers)
    usage = {"prompt_tokens": 1000, "completion_tokens": 2000, "total_tokens": 3000}
    steps = [event(chunk("Hi")), event(chunk(finish_reason="stop", usage=usage)), event("[DONE]")]
    fake_openrouter.script(Reply(steps=[COMMENT, *steps]))
    status, _, _ = await ann.call(
        "POST", "/api/chat/openrouter", chat_body(), headers={"Accept": "text/event-stream"}
    )
    assert status == 200
    cost = (1000 * PROMPT_NANOS + 2000 * COMPLETION_NANOS) / 1e9
    assert (await budget_of(ann))["spent_usd"] == pytest.approx(cost)
    metrics = await (await client.get("/metrics")).text()
    assert f"chatrelay_spend_usd_total {cost}" in metrics


async def test_a_chat_cut_by_the_budget_ends_with_length(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, browsers: list[Browser]
) -> None:
    """Upstream stops at the max_tokens the budget sent; the SSE's done says `length`."""
    client = await make_client(default_budget_usd=0.001)
    ann, _ = await member(client, browsers)
    usage = {"prompt_tokens": 4, "completion_tokens": 1665, "cost": 0.0009996}
    steps = [
        event(chunk("Once upon a time")),
        event(chunk(finish_reason="length", usage=usage)),
        event("[DONE]"),
    ]
    fake_openrouter.script(Reply(steps=[COMMENT, *steps]))
    async with ann.session.post(
        ann.url + "/api/chat/openrouter",
        json=chat_body(),
        headers={"Accept": "text/event-stream"},
    ) as response:
        events = parse_sse(await response.text())
    assert fake_openrouter.requests[0].body["max_tokens"] == 1665
    assert events[-1][0] == "done" and events[-1][1]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat/openrouter", chat_body()),
        ("/v1/chat/completions", {"model": MINI, "messages": messages()}),
        ("/v1/chat/completions", {"model": MINI, "messages": messages(), "stream": True}),
        ("/v1/responses", {"model": MINI, "input": "Hi"}),
    ],
)
async def test_each_chats_log_line_names_its_account_and_cost(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    browsers: list[Browser],
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
) -> None:
    client = await make_client(default_budget_usd=1.0)
    ann, ann_id = await member(client, browsers)
    fake_openrouter.script(costing(0.0125))
    with caplog.at_level(logging.INFO, logger="server.chat"):
        assert (await ann.call("POST", path, body))[0] == 200
        await wait_until(lambda: ended(caplog) != [], "the chat's line was written")
    [line] = ended(caplog)
    assert f"account={ann_id}" in line and "cost_usd=0.0125" in line


def ended(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
