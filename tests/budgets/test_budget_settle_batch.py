"""Chats that end together settle together (issue 22): a burst's ends take a few
transactions, not one each, every chat's spend is recorded exactly, and one chat whose
account is gone meanwhile costs only its own row. Both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa

from server.users.budget_schema import budget_holds, budget_usage, spend
from server.users.budgets import Hold, SpendRecord
from server.users.db import Database
from server.users.schema import accounts
from tests.budget_store import (
    CHARS,
    ONE_CHAT,
    PRICE,
    Clock,
    budgets_of,
    record,
)

CHATS = 100


def unmetered(account_id: str, clock: Clock) -> SpendRecord:
    start = clock().date().replace(day=1)
    return SpendRecord(account_id, "m", "own", False, start, 10, 100, 7, clock(), clock())


async def test_chats_ending_together_settle_in_a_few_transactions_and_none_is_lost(
    databases: list[Database],
) -> None:
    db = databases[0]
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    budgets = budgets_of(db, clock)
    holds: list[Hold] = [await budgets.reserve("a1", PRICE, CHARS, 10) for _ in range(4)]
    commits: list[int] = []
    sa.event.listen(db.engine.sync_engine, "commit", lambda conn: commits.append(1))
    ended = [budgets.settle(hold, record(hold, 1000, clock)) for hold in holds]
    ended += [budgets.settle(None, unmetered("a1", clock)) for _ in range(CHATS)]
    await asyncio.gather(*ended)
    assert 1 <= len(commits) <= CHATS // 2
    async with db.transaction(write=False) as connection:
        rows = (await connection.execute(sa.select(spend.c.cost_nanos))).scalars().all()
        usage = (await connection.execute(sa.select(budget_usage))).one()
    assert sorted(rows) == [7] * CHATS + [1000] * 4
    assert usage.spent_nanos == 4000 and usage.reserved_nanos == 0 and usage.chats == 4


async def test_a_chat_whose_account_was_deleted_costs_only_its_own_row(
    databases: list[Database],
) -> None:
    db = databases[0]
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    budgets = budgets_of(db, clock)
    ended = [budgets.settle(None, unmetered("a1", clock)) for _ in range(10)]
    ended.insert(5, budgets.settle(None, unmetered("gone", clock)))
    outcomes = await asyncio.gather(*ended, return_exceptions=True)
    assert [o is None for o in outcomes] == [True] * 5 + [False] + [True] * 5
    async with db.transaction(write=False) as connection:
        rows = (await connection.execute(sa.select(spend.c.account_id))).scalars().all()
        assert rows == ["a1"] * 10
        assert (await connection.execute(sa.select(accounts.c.id))).scalars().all() == ["a1"]


async def test_ends_of_several_accounts_settle_together_each_row_exact(
    databases: list[Database],
) -> None:
    """One batch of ends over three accounts: one with two holds, one with three of which
    one was released meanwhile (not given back twice), one whose first chat held nothing
    (its period row made by its end)."""
    db = databases[0]
    async with db.transaction() as connection:
        for account_id, budget in (("a2", ONE_CHAT * 5 / 10**9), ("a3", None)):
            await connection.execute(
                accounts.insert().values(
                    id=account_id,
                    email=f"{account_id}@example.com",
                    email_key=f"{account_id}@example.com",
                    password_hash="x",
                    admin=False,
                    disabled=False,
                    budget_usd=budget,
                    created_at=datetime.now(UTC),
                )
            )
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    budgets = budgets_of(db, clock)
    first = [await budgets.reserve("a1", PRICE, CHARS, 10) for _ in range(2)]
    second = [await budgets.reserve("a2", PRICE, CHARS, 10) for _ in range(3)]
    third = await budgets.reserve("a3", PRICE, CHARS, 10)  # no limit: holds nothing
    assert third.hold_id is None
    await budgets.release(second[0])  # as a start that took its process for dead would
    holds = [*first, *second, third]
    await asyncio.gather(
        *(budgets.settle(hold, record(hold, 100 * n, clock)) for n, hold in enumerate(holds, 1))
    )
    async with db.transaction(write=False) as connection:
        rows = (await connection.execute(sa.select(budget_usage))).all()
        held = (await connection.execute(sa.select(budget_holds.c.id))).all()
    usage = {row.account_id: (row.spent_nanos, row.reserved_nanos, row.chats) for row in rows}
    assert usage == {"a1": (300, 0, 2), "a2": (1200, 0, 3), "a3": (600, 0, 1)}
    assert held == []
