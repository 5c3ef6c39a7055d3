"""Budgets in the database: reserve a chat's worst cost, settle it to the real one, and
read what an account has spent (SPEC "Budgets").

The reservation is a conditional UPDATE of the account's row for the period,
`reserved = reserved + :amount WHERE spent + reserved + :amount <= :limit`: the database
checks and takes in one statement, so chats started together on any number of processes
cannot together pass the limit. Reservations asked at the same moment go into one
transaction (server/users/lookups.py Writes) and take four statements together, one UPDATE
for all their accounts (server/users/budget_reserve.py); chats that end together settle in
three (server/users/budget_settle.py). The holds a dead process left are apart
(budget_holds.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.budget_holds import (
    Held,
    dead_holds,
    expired_holds,
    expired_of,
    new_holder,
    release_holds,
    retire_holder,
)
from server.users.budget_reserve import Terms, take_many
from server.users.budget_schema import budget_usage
from server.users.budget_settle import Ended, SpendRecord, settle_many
from server.users.budget_standing import (
    Asked,
    Hold,
    Standing,
    read_standings,
)
from server.users.costs import Price, nanos_of_usd, usd
from server.users.db import Database
from server.users.lookups import Lookups, Writes
from server.users.periods import Clock, Period, period_start, recent_period_starts

# Hold and Standing are part of this module's interface (the gate, the tests).
__all__ = ["Budgets", "Hold", "SpendRecord", "Standing"]

log = logging.getLogger(__name__)

# Each failed attempt means another chat's reservation went through: progress either way.
MAX_ATTEMPTS = 64
# A hold outlives the longest chat by this much (its end's writes, a slow database).
HOLD_MARGIN_S = 120.0


class Budgets:
    """Reservations, settlements and spend in the database (server/users/db.py)."""

    def __init__(
        self,
        db: Database,
        *,
        default_usd: float | None,
        period: Period,
        longest_chat_s: float,
        clock: Clock,
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.default = None if default_usd is None else nanos_of_usd(default_usd)
        self.period = period
        self.hold_for = timedelta(seconds=longest_chat_s + HOLD_MARGIN_S)
        self.clock = clock
        self.holder = holder or new_holder()
        self.settlements: Writes[Ended] = Writes(db, self._settle_many)
        self.reservations: Writes[Asked] = Writes(db, self._take_many)
        self.expired: Lookups[list[Held]] = Lookups(db, self._expired_of)
        self.sweeps: dict[str, asyncio.Future[bool]] = {}

    async def standing(self, account_id: str) -> Standing:
        async with self.db.transaction(write=False) as db:
            return (await self._standing(db, account_id))[0]

    async def _standing(self, db: AsyncConnection, account_id: str) -> tuple[Standing, bool]:
        """The account's budget this period, and whether its row for the period exists yet."""
        start = period_start(self.clock(), self.period)
        found = await read_standings(db, [account_id], start, self.period, self.default)
        return found[account_id]

    def unlimited(self, account_id: str, requested: int | None) -> Hold:
        """The hold of an account known to have no limit: nothing, the chat as asked."""
        return Hold(account_id, period_start(self.clock(), self.period), 0, None, requested)

    async def reserve(
        self, account_id: str, price: Price, chars: int, requested: int | None
    ) -> Hold:
        """Hold the chat's worst cost; BudgetExceeded (402) when not even a short answer fits.
        An account without a limit holds nothing, and its chat runs with what it asked.
        The gate asks only for accounts its request's read says have a limit (`unlimited`
        otherwise): no read of its own first, the batch's transaction reads it."""
        swept = False
        for _ in range(MAX_ATTEMPTS):
            asked = Asked(account_id, price, chars, requested)
            await self.reservations.put(asked)
            hold = asked.outcome
            if isinstance(hold, Hold):
                return hold
            if isinstance(hold, Standing):
                # Only a refusal looks for holds a dead process left: not a query per chat.
                if not swept and hold.reserved and await self._sweep(account_id):
                    swept = True
                    continue
                raise hold.refusal()
        raise (await self.standing(account_id)).refusal()

    async def _expired_of(self, db: AsyncConnection, ids: list[str]) -> dict[str, list[Held]]:
        return await expired_of(db, self.clock(), ids)

    async def _take_many(self, db: AsyncConnection, batch: list[Asked]) -> None:
        terms = Terms(
            period_start(self.clock(), self.period),
            self.period,
            self.default,
            self.holder,
            self.clock() + self.hold_for,
            self.db.dialect,
        )
        await take_many(db, terms, batch)

    async def settle(self, hold: Hold | None, record: SpendRecord) -> None:
        """The chat's end: its hold becomes its cost (metered), and its row is written, in
        one transaction with the other chats ending at the same moment (a burst's ends)."""
        await self.settlements.put((hold, record))

    async def _settle_many(self, db: AsyncConnection, ended: list[Ended]) -> None:
        await settle_many(db, self.db.dialect, ended)

    async def release(self, hold: Hold) -> None:
        """A chat that never reached upstream: its hold goes, nothing is spent."""
        if hold.hold_id is not None:
            await release_holds(self.db, [(hold.hold_id, hold.account_id, hold.start, hold.amount)])

    async def _sweep(self, account_id: str) -> bool:
        """Whether the account had holds past the longest a chat may run, now released. The
        refusals of the same moment share it: one sweep an account, one query for all."""
        sweeping = self.sweeps.get(account_id)
        if sweeping is None:
            sweeping = asyncio.ensure_future(self._sweep_now(account_id))
            self.sweeps[account_id] = sweeping
            sweeping.add_done_callback(lambda _: self.sweeps.pop(account_id, None))
        # Shielded: a refused chat that goes away does not stop the others' sweep.
        return await asyncio.shield(sweeping)

    async def _sweep_now(self, account_id: str) -> bool:
        held = await self.expired.get(account_id)
        if held:
            await release_holds(self.db, held)
        return bool(held)

    async def release_expired(self, account_id: str | None = None) -> int:
        """Free holds past the longest a chat may run (their process died elsewhere)."""
        return await release_holds(self.db, await expired_holds(self.db, self.clock(), account_id))

    def close(self) -> None:
        """The app is done: its holder is no longer one of this process's live ones."""
        retire_holder(self.holder)

    async def release_dead(self) -> int:
        """At start: free the holds of this host's processes that no longer run."""
        released = await release_holds(self.db, await dead_holds(self.db, self.holder))
        if released:
            log.info("budget: released %d reservations of processes that ended", released)
        return released

    async def recent(self, periods: int) -> list[dict[str, Any]]:
        """Every account's metered spend in the last `periods` periods, newest first."""
        starts = recent_period_starts(self.clock(), self.period, periods)
        usage = budget_usage.c
        query = (
            select(usage.account_id, usage.period_start, usage.spent_nanos, usage.chats)
            .where(usage.period_start >= starts[-1], usage.chats > 0)
            .order_by(usage.period_start.desc(), usage.account_id)
        )
        async with self.db.transaction(write=False) as db:
            rows = (await db.execute(query)).all()
        return [
            {
                "account_id": account_id,
                "period_start": start.isoformat(),
                "spent_usd": usd(int(spent)),
                "chats": int(chats),
            }
            for account_id, start, spent, chats in rows
        ]
