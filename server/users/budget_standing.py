"""An account's budget this period: what the API shows (Standing), what a metered chat
holds (Hold), and the period row they are read from (SPEC "Budgets").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BudgetExceeded
from server.users.budget_schema import budget_usage
from server.users.costs import Price, cents, nanos_of_usd, usd
from server.users.periods import Period, iso_utc, midnight, next_period_start
from server.users.schema import accounts


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
