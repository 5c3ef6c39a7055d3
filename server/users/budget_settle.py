"""Chats that end at the same moment, settled together (SPEC "Budgets", issues 22 and 24).

A burst's ends go into one transaction (server/users/lookups.py Writes) in three
statements, whatever the number of chats and accounts: one DELETE of the batch's holds,
RETURNING those still there (a hold released meanwhile, its process taken for dead or its
time past, is not given back twice); one INSERT … ON CONFLICT adding each account's spend,
chats and released reservations to its period row (made when it is not there: a chat on
the user's own key or without a hold), in account order as reservations lock them; one
INSERT of every chat's spend row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.budget_schema import budget_holds, budget_usage, spend
from server.users.budget_standing import Hold


@dataclass(frozen=True, slots=True)
class SpendRecord:
    account_id: str
    model: str
    key_source: str
    metered: bool
    start: date
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: int | None
    started_at: datetime
    ended_at: datetime


Ended = tuple[Hold | None, SpendRecord]


async def delete_holds(db: AsyncConnection, ended: list[Ended]) -> set[str]:
    """The batch's holds deleted: the ids of those that were still there."""
    ids = [hold.hold_id for hold, _ in ended if hold is not None and hold.hold_id is not None]
    if not ids:
        return set()
    holds = budget_holds.c
    statement = delete(budget_holds).where(holds.id.in_(ids)).returning(holds.id)
    return set((await db.execute(statement)).scalars().all())


def usage_changes(ended: list[Ended], released: set[str]) -> list[dict[str, Any]]:
    """Each account's and period's change, in account order: spent and chats (metered
    chats), and the reservations given back (negative)."""
    changes: dict[tuple[str, date], dict[str, Any]] = {}
    for hold, record in ended:
        given_back = hold.amount if hold is not None and hold.hold_id in released else 0
        if not (record.metered or given_back):
            continue
        key = (record.account_id, record.start)
        change = changes.setdefault(
            key, {"account": key[0], "start": key[1], "spent": 0, "reserved": 0, "chats": 0}
        )
        change["reserved"] -= given_back
        if record.metered:
            change["spent"] += record.cost or 0
            change["chats"] += 1
    return [changes[key] for key in sorted(changes)]


async def add_usage(db: AsyncConnection, dialect: str, changes: list[dict[str, Any]]) -> None:
    """The changes added to the period rows, made when missing (executemany: one INSERT of
    many rows). A new row has no hold to give back, so its reserved starts at 0."""
    usage = budget_usage.c
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(budget_usage).values(
        account_id=bindparam("account"),
        period_start=bindparam("start"),
        spent_nanos=bindparam("spent"),
        reserved_nanos=bindparam("reserved"),
        chats=bindparam("chats"),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[usage.account_id, usage.period_start],
        set_={
            "spent_nanos": usage.spent_nanos + statement.excluded.spent_nanos,
            "reserved_nanos": usage.reserved_nanos + statement.excluded.reserved_nanos,
            "chats": usage.chats + statement.excluded.chats,
        },
    )
    await db.execute(statement, changes)


def spend_row(record: SpendRecord) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(16),
        "account_id": record.account_id,
        "model": record.model,
        "key_source": record.key_source,
        "metered": record.metered,
        "period_start": record.start,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_nanos": record.cost,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
    }


async def settle_many(db: AsyncConnection, dialect: str, ended: list[Ended]) -> None:
    """The batch's holds turned into their costs, and every chat's spend row written."""
    released = await delete_holds(db, ended)
    changes = usage_changes(ended, released)
    if changes:
        await add_usage(db, dialect, changes)
    await db.execute(spend.insert(), [spend_row(record) for _, record in ended])
