"""Reservations asked at the same moment, decided together (SPEC "Budgets", issue 24).

A burst's chats reserve in one transaction (server/users/lookups.py Writes), at a constant
number of statements per account whatever the number of chats: one read of every account's
limit, spend and holds in the batch, the decision in Python of which chats fit (in the order
asked, each seeing what those before it took), ONE conditional UPDATE per account adding
what they took together, and one INSERT of every hold of the batch.

The UPDATE's guard, `spent + reserved + :total <= limit`, is what keeps the budget: the
database checks it on the row as it is when the UPDATE runs (PostgreSQL re-checks it on the
row it waited for; SQLite holds its write lock from BEGIN IMMEDIATE), so batches from any
number of processes can never together pass the limit. When it fails, another process took
some of the budget between the read and the UPDATE: the account's chats are decided again
on a fresh read (PostgreSQL's READ COMMITTED sees what was committed, in this transaction).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BudgetExceeded
from server.users.budget_schema import budget_holds, budget_usage
from server.users.costs import Allowance, Price, allowance, cents, nanos_of_usd, usd
from server.users.periods import Period, iso_utc, midnight, next_period_start
from server.users.schema import accounts

# A failed guard means another process's chats took budget: progress either way. Past
# these, the account's chats are answered None and ask again (Budgets.reserve).
GUARD_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's budget this period, as GET /api/session shows it."""

    limit: int | None
    spent: int
    reserved: int
    period: Period
    start: date

    @property
    def resets_on(self) -> date:
        return next_period_start(self.start, self.period)

    def view(self) -> dict[str, Any]:
        """GET /api/session's `budget` (and each account's in the admin's list)."""
        return {
            "limit_usd": None if self.limit is None else usd(self.limit),
            "spent_usd": usd(self.spent),
            "reserved_usd": usd(self.reserved),
            "period": self.period,
            "resets_at": iso_utc(midnight(self.resets_on)),
        }

    def refusal(self) -> BudgetExceeded:
        """SPEC's text, `this month` naming the period as BUDGET_PERIOD does (`this day`,
        `this week`), so a client can read it whatever the period."""
        assert self.limit is not None
        return BudgetExceeded(
            f"Budget used up: {cents(self.spent + self.reserved)} of {cents(self.limit)} "
            f"this {self.period}; it resets on {self.resets_on.isoformat()}"
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """A metered chat's reservation: `max_tokens` to send upstream (None: as asked)."""

    account_id: str
    start: date
    amount: int
    hold_id: str | None
    max_tokens: int | None


@dataclass(slots=True)
class Asked:
    """One chat's reservation waiting for its batch. `outcome`: its Hold; the Standing that
    refuses it; None when it must ask again (the guard kept failing)."""

    account_id: str
    price: Price
    chars: int
    requested: int | None
    outcome: Hold | Standing | None = None


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


# An account's standing and whether its row for the period exists yet.
Found = tuple[Standing, bool]


async def read_standings(
    db: AsyncConnection, ids: list[str], start: date, period: Period, default: int | None
) -> dict[str, Found]:
    """Each account's budget this period in one statement (its limit and its period row).
    An account that is not there reads as one without a row, under the default."""
    usage = budget_usage.c
    query = (
        select(accounts.c.id, accounts.c.budget_usd, usage.spent_nanos, usage.reserved_nanos)
        .select_from(
            accounts.outerjoin(
                budget_usage,
                and_(usage.account_id == accounts.c.id, usage.period_start == start),
            )
        )
        .where(accounts.c.id.in_(ids))
    )
    rows = {row[0]: row[1:] for row in (await db.execute(query)).all()}
    found = {}
    for account_id in ids:
        own, spent, reserved = rows.get(account_id, (None, None, None))
        limit = default if own is None else nanos_of_usd(own)
        standing = Standing(limit, int(spent or 0), int(reserved or 0), period, start)
        found[account_id] = (standing, spent is not None)
    return found


async def ensure_usage_row(db: AsyncConnection, dialect: str, account_id: str, start: date) -> None:
    """The account's row for the period, made by its first chat (or its first spend)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    await db.execute(
        insert(budget_usage)
        .values(account_id=account_id, period_start=start, spent_nanos=0, reserved_nanos=0, chats=0)
        .on_conflict_do_nothing()
    )


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


async def take_account(
    db: AsyncConnection, terms: Terms, account_id: str, asked: list[Asked], found: Found
) -> list[dict[str, Any]]:
    """One account's chats of the batch: their outcomes set, and the rows of their holds
    (for the batch's one INSERT) once the guarded UPDATE took what they hold."""
    usage = budget_usage.c
    for attempt in range(GUARD_ATTEMPTS):
        if attempt:  # the guard failed: another process took some; decide on a fresh read
            fresh = await read_standings(db, [account_id], terms.start, terms.period, terms.default)
            found = fresh[account_id]
        standing, has_row = found
        if standing.limit is None:
            for one in asked:
                one.outcome = Hold(account_id, terms.start, 0, None, one.requested)
            return []
        total, decided = decide(standing, asked)
        if total > 0:
            if not has_row:  # the period's first chat
                await ensure_usage_row(db, terms.dialect, account_id, terms.start)
            taken = await db.execute(
                update(budget_usage)
                .where(
                    usage.account_id == account_id,
                    usage.period_start == terms.start,
                    usage.spent_nanos + usage.reserved_nanos + total <= standing.limit,
                )
                .values(reserved_nanos=usage.reserved_nanos + total)
            )
            if taken.rowcount != 1:
                continue
        return held(terms, account_id, asked, decided)
    for one in asked:
        one.outcome = None
    return []


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


async def take_many(db: AsyncConnection, terms: Terms, batch: list[Asked]) -> None:
    """The batch's reservations: per account a read (one for all), one conditional UPDATE,
    and one INSERT of every hold. In account order, so two processes' batches lock the period
    rows in the same order (PostgreSQL) and never wait on each other in a cycle."""
    by_account: dict[str, list[Asked]] = {}
    for one in batch:
        by_account.setdefault(one.account_id, []).append(one)
    ids = sorted(by_account)
    found = await read_standings(db, ids, terms.start, terms.period, terms.default)
    rows: list[dict[str, Any]] = []
    for account_id in ids:
        rows += await take_account(db, terms, account_id, by_account[account_id], found[account_id])
    if rows:
        await db.execute(budget_holds.insert(), rows)
