"""A batch of reservations decides in Python which chats fit on one read of its accounts,
then takes them all in one guarded UPDATE (server/users/budget_reserve.py). When what it
read is no longer so at the UPDATE, the guard fails, the batch is decided again on a fresh
read, and the budget is never passed; another process's batch between its statements is
seen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BudgetExceeded
from server.users import budget_reserve
from server.users.budget_reserve import Terms
from server.users.budgets import Budgets, Hold
from server.users.db import Database
from tests.budget_store import CHARS, ONE_CHAT, PRICE, Clock, budgets_of


async def reserve_all(store: Budgets, chats: int) -> list[Hold | BudgetExceeded]:
    async def one() -> Hold | BudgetExceeded:
        try:
            return await store.reserve("a1", PRICE, CHARS, 1000)
        except BudgetExceeded as refused:
            return refused

    return await asyncio.gather(*(one() for _ in range(chats)))


async def test_a_batch_decided_on_a_stale_read_is_decided_again_and_takes_only_what_is_left(
    databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read a batch decides on says nothing is held, as it would have said just before
    another process reserved 3 of the 5 chats the budget affords (were the rows not locked
    by that read): of the batch's 5 chats only 2 may be held."""
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    other = budgets_of(databases[1], clock, "host:2:b")
    assert all(isinstance(h, Hold) for h in await reserve_all(other, 3))
    original = budget_reserve.lock_usage
    reads: list[list[str]] = []

    async def stale_first(
        db: AsyncConnection, terms: Terms, ids: list[str]
    ) -> dict[str, tuple[int, int]]:
        found = await original(db, terms, ids)
        reads.append(ids)
        if len(reads) > 1:
            return found
        return {key: (spent, 0) for key, (spent, _) in found.items()}

    monkeypatch.setattr(budget_reserve, "lock_usage", stale_first)
    answers = await reserve_all(budgets_of(databases[0], clock), 5)
    holds = [answer for answer in answers if isinstance(answer, Hold)]
    refused = [answer for answer in answers if isinstance(answer, BudgetExceeded)]
    assert len(holds) == 2 and len(refused) == 3
    assert all(refusal.status == 402 for refusal in refused)
    assert len(reads) >= 2  # the guard failed once and the batch read again
    standing = await other.standing("a1")
    assert standing.reserved == 5 * ONE_CHAT == standing.limit


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_another_pools_batch_committed_before_the_rows_are_read_is_never_overspent(
    databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL only: there a batch's first read (the limits) takes no lock, so another
    process's batch can commit between it and the rows' read (SQLite's BEGIN IMMEDIATE
    holds the write lock from the first read on: the other process waits). Here it does,
    on the period's first chats (no row yet), taking 3 of the 5 chats the budget affords;
    this batch of 5 then gets 2."""
    clock = Clock(datetime(2026, 12, 6, 12, tzinfo=UTC))
    other = budgets_of(databases[1], clock, "host:2:b")
    original = budget_reserve.read_limits
    theirs: list[Hold | BudgetExceeded] = []
    started: list[bool] = []

    async def others_commit_after_the_first(
        db: AsyncConnection, ids: list[str], default: int | None
    ) -> dict[str, int | None]:
        found = await original(db, ids, default)
        if not started:
            started.append(True)  # their batch's own reads pass through
            theirs.extend(await reserve_all(other, 3))
        return found

    monkeypatch.setattr(budget_reserve, "read_limits", others_commit_after_the_first)
    answers = await reserve_all(budgets_of(databases[0], clock), 5)
    assert all(isinstance(hold, Hold) for hold in theirs) and len(theirs) == 3
    assert sum(isinstance(answer, Hold) for answer in answers) == 2
    assert sum(isinstance(answer, BudgetExceeded) for answer in answers) == 3
    standing = await other.standing("a1")
    assert standing.reserved == 5 * ONE_CHAT == standing.limit
