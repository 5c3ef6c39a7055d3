"""The budget's database layer on both engines: the conditional reservation holds under
chats started together (two pools, as two processes have), settles whatever the end, and
frees what dead processes held."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from server.errors import BudgetExceeded
from server.users.budgets import Budgets, Hold
from server.users.db import Database
from tests.budget_store import (
    CHARS,
    ONE_CHAT,
    PRICE,
    Clock,
    budgets_of,
    record,
)


async def test_twenty_reservations_at_once_on_two_pools_take_five(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    stores = [budgets_of(databases[i % 2], clock, f"host:{i % 2}:a") for i in range(20)]

    async def one(store: Budgets) -> Hold | None:
        try:
            return await store.reserve("a1", PRICE, CHARS, 1000)
        except BudgetExceeded:
            return None

    holds = await asyncio.gather(*(one(store) for store in stores))
    taken = [h for h in holds if h is not None]
    assert len(taken) == 5
    standing = await stores[0].standing("a1")
    assert standing.reserved == 5 * ONE_CHAT and standing.spent == 0
    for hold in taken:
        await stores[0].settle(hold, record(hold, ONE_CHAT - 7, clock))
    standing = await stores[0].standing("a1")
    assert standing.reserved == 0
    assert standing.spent == 5 * (ONE_CHAT - 7) <= standing.limit  # type: ignore[operator]


async def test_the_largest_affordable_answer_then_a_refusal_that_says_when(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 31, 23, tzinfo=UTC))
    store = budgets_of(databases[0], clock)
    first = await store.reserve("a1", PRICE, CHARS, None)
    # Everything left is held by the first chat: no second one fits until it ends.
    assert first.max_tokens is not None and first.max_tokens > 1000
    with pytest.raises(BudgetExceeded) as refused:
        await store.reserve("a1", PRICE, CHARS, None)
    assert refused.value.status == 402
    assert refused.value.message.endswith("this month; it resets on 2027-01-01")
    await store.settle(first, record(first, 5 * ONE_CHAT, clock))
    with pytest.raises(BudgetExceeded) as spent:
        await store.reserve("a1", PRICE, CHARS, None)
    # 5 chats of $0.00201 each: the figures in cents.
    assert spent.value.message == (
        "Budget used up: $0.01 of $0.01 this month; it resets on 2027-01-01"
    )
    # A new month is a new budget.
    clock.now += timedelta(hours=2)
    again = await store.reserve("a1", PRICE, CHARS, 1000)
    assert again.start == date(2027, 1, 1)


async def test_holds_of_a_dead_process_are_released_and_expired_ones_too(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    dead = budgets_of(databases[0], clock, "thishost:999999999:a")
    alive = budgets_of(databases[0], clock, "thishost:1:a")  # pid 1 runs: left alone
    elsewhere = budgets_of(databases[0], clock, "otherhost:5:a")
    for store in (dead, alive, elsewhere):
        await store.reserve("a1", PRICE, CHARS, 1000)
    starting = budgets_of(databases[1], clock, "thishost:424242:b")
    assert await starting.release_dead() == 1
    assert (await starting.standing("a1")).reserved == 2 * ONE_CHAT
    clock.now += timedelta(hours=2)
    assert await starting.release_expired() == 2
    assert (await starting.standing("a1")).reserved == 0


async def test_a_settled_hold_already_released_is_not_released_twice(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    store = budgets_of(databases[0], clock)
    hold = await store.reserve("a1", PRICE, CHARS, 1000)
    clock.now += timedelta(hours=2)
    await store.release_expired()
    await store.settle(hold, record(hold, 100, clock))
    standing = await store.standing("a1")
    assert standing.reserved == 0 and standing.spent == 100


async def test_the_next_chat_frees_a_hold_past_the_longest_chat(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    gone = budgets_of(databases[0], clock, "otherhost:5:a")  # a host that never comes back
    await gone.reserve("a1", PRICE, CHARS, None)  # holds all that is left
    store = budgets_of(databases[1], clock, "thishost:6:b")
    with pytest.raises(BudgetExceeded):
        await store.reserve("a1", PRICE, CHARS, 1000)
    clock.now += timedelta(hours=1, minutes=3)  # the longest chat (an hour) and the margin
    hold = await store.reserve("a1", PRICE, CHARS, 1000)
    assert hold.amount == ONE_CHAT
    assert (await store.standing("a1")).reserved == ONE_CHAT


async def test_a_second_app_of_this_process_leaves_the_firsts_holds_alone(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    first = Budgets(databases[0], default_usd=None, period="month", longest_chat_s=60, clock=clock)
    await first.reserve("a1", PRICE, CHARS, 1000)
    second = Budgets(databases[1], default_usd=None, period="month", longest_chat_s=60, clock=clock)
    assert await second.release_dead() == 0
    first.close()  # the first app is gone: what it held is a dead process's now
    third = Budgets(databases[1], default_usd=None, period="month", longest_chat_s=60, clock=clock)
    assert await third.release_dead() == 1
    assert (await third.standing("a1")).reserved == 0
    second.close()
    third.close()
