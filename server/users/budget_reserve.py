"""Reservations asked at the same moment, decided together (SPEC "Budgets", issue 24).

A burst's chats reserve in one transaction (server/users/lookups.py Writes) in four
statements, whatever the number of chats and accounts: the accounts' limits; their period
rows, made if missing, read and locked (one INSERT … ON CONFLICT of many rows); then, the
decision in Python of which chats fit (in the order asked, each seeing what those before it
took), ONE UPDATE adding each account's total; and one INSERT of every hold.

The UPDATE's guard, `spent + reserved + total <= limit` for each account, is what keeps the
budget whatever happened since the read: the database checks it on the row as it is then.
The read locks the rows (PostgreSQL; SQLite holds its write lock from BEGIN IMMEDIATE), so
the guard does not fail between processes; when it does fail all the same, the account's
chats are decided again on a fresh read.

SQLite 3.35 or later (as server/users/sync.py): `UPDATE … FROM`, `RETURNING`, `MATERIALIZED`
and its JSON functions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    CTE,
    BigInteger,
    String,
    bindparam,
    column,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from server.users.budget_schema import budget_holds, budget_usage
from server.users.budget_standing import Asked, Hold, Standing
from server.users.costs import Allowance, allowance, nanos_of_usd
from server.users.periods import Period
from server.users.schema import accounts

# A failed guard means another process's chats took budget: progress either way. Past
# these, the account's chats are answered None and ask again (Budgets.reserve).
GUARD_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Terms:
    """What a batch's reservations are taken under: the period, the default limit (nano-
    dollars), and what each hold row records."""

    start: date
    period: Period
    default: int | None
    holder: str
    expires_at: datetime
    dialect: str


def decide(standing: Standing, asked: list[Asked]) -> tuple[int, list[Allowance | Standing]]:
    """In the order asked: each chat's allowance from what is left after those before it,
    or the standing (with their reservations) that refuses it; and what the allowed take."""
    assert standing.limit is not None
    taken = 0
    decided: list[Allowance | Standing] = []
    for one in asked:
        left = max(0, standing.limit - standing.spent - standing.reserved - taken)
        allowed = allowance(one.price, one.chars, left, one.requested)
        if allowed is None:
            decided.append(replace(standing, reserved=standing.reserved + taken))
        else:
            decided.append(allowed)
            taken += allowed.reserve
    return taken, decided


async def read_limits(
    db: AsyncConnection, ids: list[str], default: int | None
) -> dict[str, int | None]:
    """Each account's limit (its own, else the default; an account not there: the default)."""
    query = select(accounts.c.id, accounts.c.budget_usd).where(accounts.c.id.in_(ids))
    own = dict((await db.execute(query)).all())
    return {
        account_id: default if own.get(account_id) is None else nanos_of_usd(own[account_id])
        for account_id in ids
    }


def usage_rows(terms: Terms) -> ReturningInsert[str, int, int]:
    """Each account's row for the period, made when it is the period's first chat, read and
    locked: run for many accounts at once (executemany, sent as one INSERT of many rows)."""
    usage = budget_usage.c
    insert = postgresql.insert if terms.dialect == "postgresql" else sqlite.insert
    return (
        insert(budget_usage)
        .values(
            account_id=bindparam("account"),
            period_start=terms.start,
            spent_nanos=0,
            reserved_nanos=0,
            chats=0,
        )
        # A no-op on a row that is there: it locks the row, and RETURNING reads it.
        .on_conflict_do_update(
            index_elements=[usage.account_id, usage.period_start], set_={"chats": usage.chats}
        )
        .returning(usage.account_id, usage.spent_nanos, usage.reserved_nanos)
    )


async def lock_usage(
    db: AsyncConnection, terms: Terms, ids: list[str]
) -> dict[str, tuple[int, int]]:
    """Each account's spent and reserved this period, in one statement that also locks the
    rows until the transaction ends, one after the other in account order (`ids` is sorted):
    two processes' batches then never wait on each other in a cycle (PostgreSQL; SQLite's
    write lock is held already)."""
    found = await db.execute(usage_rows(terms), [{"account": one} for one in ids])
    return {account_id: (int(spent), int(reserved)) for account_id, spent, reserved in found}


def taking_rows(dialect: str, totals: list[tuple[str, int, int]]) -> CTE:
    """`totals` (account, total, limit) as a table, from one JSON parameter: a statement whose
    text does not change with the batch's size is compiled once (a VALUES list of 500 rows
    took SQLAlchemy 50 ms to compile). Materialized, so SQLite looks each account's row up by
    its key rather than scanning the JSON for each row."""
    records = [{"account_id": one, "total": total, "cap": cap} for one, total, cap in totals]
    if dialect == "postgresql":
        table = (
            func.jsonb_to_recordset(bindparam("taking", records, type_=JSONB))
            .table_valued(
                column("account_id", String), column("total", BigInteger), column("cap", BigInteger)
            )
            .render_derived(name="rows", with_types=True)
        )
        selected = select(table.c.account_id, table.c.total, table.c.cap)
    else:
        each = func.json_each(orjson.dumps(records).decode()).table_valued("value")
        selected = select(
            *(
                func.json_extract(each.c.value, f"$.{name}").label(name)
                for name in ("account_id", "total", "cap")
            )
        )
    return selected.cte("taking").prefix_with("MATERIALIZED")


async def take_totals(
    db: AsyncConnection, terms: Terms, totals: list[tuple[str, int, int]]
) -> set[str]:
    """ONE guarded UPDATE for the batch: each account's (id, total, limit) added to its
    reserved when `spent + reserved + total <= limit` still holds. The accounts it took."""
    usage = budget_usage.c
    taking = taking_rows(terms.dialect, totals)
    statement = (
        update(budget_usage)
        .where(
            usage.account_id == taking.c.account_id,
            usage.period_start == terms.start,
            usage.spent_nanos + usage.reserved_nanos + taking.c.total <= taking.c.cap,
        )
        .values(reserved_nanos=usage.reserved_nanos + taking.c.total)
        .returning(usage.account_id)
    )
    return set((await db.execute(statement)).scalars().all())


def held(
    terms: Terms, account_id: str, asked: list[Asked], decided: list[Allowance | Standing]
) -> list[dict[str, Any]]:
    """Each chat's outcome, and the rows of the holds of those that fit."""
    rows = []
    for one, outcome in zip(asked, decided, strict=True):
        if isinstance(outcome, Standing):
            one.outcome = outcome
            continue
        hold_id = secrets.token_hex(16)
        one.outcome = Hold(account_id, terms.start, outcome.reserve, hold_id, outcome.max_tokens)
        rows.append(
            {
                "id": hold_id,
                "account_id": account_id,
                "period_start": terms.start,
                "amount_nanos": outcome.reserve,
                "holder": terms.holder,
                "expires_at": terms.expires_at,
            }
        )
    return rows


async def take_once(
    db: AsyncConnection,
    terms: Terms,
    asked: dict[str, list[Asked]],
    limits: dict[str, int],
    rows: list[dict[str, Any]],
) -> list[str]:
    """One attempt for the accounts of `limits` (sorted): their rows locked and read, each
    one's chats decided in order, one guarded UPDATE; their holds' rows added to `rows`.
    The accounts whose guard failed (another process took some since the read)."""
    found = await lock_usage(db, terms, list(limits))
    taking: dict[str, list[Allowance | Standing]] = {}
    totals = []
    for account_id, limit in limits.items():
        standing = Standing(limit, *found[account_id], terms.period, terms.start)
        total, decided = decide(standing, asked[account_id])
        if total:
            taking[account_id] = decided
            totals.append((account_id, total, limit))
        else:  # every chat of it refused: nothing to take
            rows += held(terms, account_id, asked[account_id], decided)
    taken = await take_totals(db, terms, totals) if totals else set()
    for account_id in taken:
        rows += held(terms, account_id, asked[account_id], taking[account_id])
    return [account_id for account_id in taking if account_id not in taken]


async def take_many(db: AsyncConnection, terms: Terms, batch: list[Asked]) -> None:
    """The batch's reservations: the accounts' limits, their period rows (made, locked and
    read), one guarded UPDATE, one INSERT of every hold. Accounts whose guard failed are
    decided again on a fresh read; past GUARD_ATTEMPTS their chats ask again."""
    asked: dict[str, list[Asked]] = {}
    for one in batch:
        asked.setdefault(one.account_id, []).append(one)
    limits: dict[str, int] = {}
    for account_id, limit in (await read_limits(db, sorted(asked), terms.default)).items():
        if limit is not None:
            limits[account_id] = limit
            continue
        for one in asked[account_id]:  # no limit: nothing to hold, the chat runs as asked
            one.outcome = Hold(account_id, terms.start, 0, None, one.requested)
    rows: list[dict[str, Any]] = []
    for _ in range(GUARD_ATTEMPTS):
        if not limits:
            break
        failed = await take_once(db, terms, asked, limits, rows)
        limits = {account_id: limits[account_id] for account_id in failed}
    for account_id in limits:
        for one in asked[account_id]:
            one.outcome = None
    if rows:
        await db.execute(budget_holds.insert(), rows)
