"""Chats started together reserve together (issue 24): a burst's reservations take a few
transactions, not one each, and each chat still gets its own answer: a budget affording
exactly k of them admits exactly k. Both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from server.errors import BudgetExceeded
from server.users.budget_schema import budget_holds
from server.users.budgets import Hold
from server.users.db import Database
from server.users.schema import accounts
from tests.budget_store import (
    CHARS,
    ONE_CHAT,
    PRICE,
    Clock,
    budgets_of,
)

CHATS = 60
AFFORDED = 37


async def test_chats_started_together_reserve_in_a_few_transactions_and_exactly_k_fit(
    databases: list[Database],
) -> None:
    db = databases[0]
    async with db.transaction() as connection:
        await connection.execute(
            sa.update(accounts)
            .where(accounts.c.id == "a1")
            .values(budget_usd=ONE_CHAT * AFFORDED / 10**9)
        )
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    budgets = budgets_of(db, clock)
    commits: list[int] = []
    sa.event.listen(db.engine.sync_engine, "commit", lambda conn: commits.append(1))

    async def one() -> Hold | BudgetExceeded:
        try:
            return await budgets.reserve("a1", PRICE, CHARS, 1000)
        except BudgetExceeded as refused:
            return refused

    answers = await asyncio.gather(*(one() for _ in range(CHATS)))
    holds = [answer for answer in answers if isinstance(answer, Hold)]
    refused = [answer for answer in answers if isinstance(answer, BudgetExceeded)]
    # Each refusal reads once for holds a dead process left; the reservations are batched.
    assert 1 <= len(commits) <= len(refused) + CHATS // 4
    assert len(holds) == AFFORDED and len(refused) == CHATS - AFFORDED
    assert all(hold.amount == ONE_CHAT and hold.max_tokens == 1000 for hold in holds)
    assert len({hold.hold_id for hold in holds}) == AFFORDED
    assert all(refusal.status == 402 for refusal in refused)
    standing = await budgets.standing("a1")
    assert standing.reserved == AFFORDED * ONE_CHAT and standing.spent == 0
    async with db.transaction(write=False) as connection:
        held = (await connection.execute(sa.select(budget_holds.c.id))).scalars().all()
    assert set(held) == {hold.hold_id for hold in holds}


async def test_a_chat_whose_account_is_gone_costs_only_its_own_reservation(
    databases: list[Database],
) -> None:
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    budgets = budgets_of(databases[0], clock)
    budgets.default = ONE_CHAT * 100  # "gone" has no row: its limit is the default
    started = [budgets.reserve("a1", PRICE, CHARS, 1000) for _ in range(4)]
    started.insert(2, budgets.reserve("gone", PRICE, CHARS, 1000))
    outcomes = await asyncio.gather(*started, return_exceptions=True)
    assert [isinstance(o, Hold) for o in outcomes] == [True, True, False, True, True]
    assert (await budgets.standing("a1")).reserved == 4 * ONE_CHAT


async def test_a_refused_burst_frees_what_a_dead_process_held_once_and_uses_it(
    databases: list[Database],
) -> None:
    """Two of the five chats the budget affords are held by a process of another host that
    never ended them, past the longest a chat may run. Of 20 chats at once, 3 fit; the 17
    refused look for such holds together (a few queries, not one each), free them once, and
    2 of them then fit."""
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    gone = budgets_of(databases[1], clock, "otherhost:1:x")
    for _ in range(2):
        await gone.reserve("a1", PRICE, CHARS, 1000)
    clock.now += timedelta(hours=2)  # past the longest chat (an hour) and the margin
    budgets = budgets_of(databases[0], clock)
    looked: list[str] = []
    released: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "FROM budget_holds" in statement and "expires_at" in statement:
            looked.append(statement)
        if statement.startswith("DELETE FROM budget_holds"):
            released.append(statement)

    sa.event.listen(databases[0].engine.sync_engine, "before_cursor_execute", seen)

    async def one() -> Hold | BudgetExceeded:
        try:
            return await budgets.reserve("a1", PRICE, CHARS, 1000)
        except BudgetExceeded as refused:
            return refused

    answers = await asyncio.gather(*(one() for _ in range(20)))
    assert sum(isinstance(answer, Hold) for answer in answers) == 5
    assert 1 <= len(looked) <= 3
    assert len(released) == 2  # each expired hold once
    standing = await budgets.standing("a1")
    assert standing.reserved == 5 * ONE_CHAT == standing.limit
