"""Holds that outlive their chat: a process killed mid-chat leaves its reservation behind,
and this frees it (SPEC "Budgets": a crash never locks an account out).

Each hold records its holder, `host:pid:boot`. A process that starts frees the holds of its
host's processes that no longer run (a pid equal to its own, not one of its running apps,
is a process that died: this one has its number now), and every hold expires after the
longest a chat may run, which covers a host that never comes back (a platform's dyno gets
a new name at each start).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.budget_schema import budget_holds, budget_usage
from server.users.db import Database

# A hold: its id, account, period start and amount (nano-dollars).
Held = tuple[str, str, date, int]


# The holders of this process's running apps: a process may run several (tests do), and a
# starting one must not free what another still holds.
LIVE_HOLDERS: set[str] = set()


def new_holder() -> str:
    """`host:pid:boot`, one per app; live until `retire_holder`."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    LIVE_HOLDERS.add(holder)
    return holder


def retire_holder(holder: str) -> None:
    LIVE_HOLDERS.discard(holder)


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


async def release_holds(db: Database, held: Sequence[Held]) -> int:
    """Delete each hold and give its amount back, each in a transaction of its own; a hold
    settled or released meanwhile is left alone. How many were released."""
    released = 0
    usage = budget_usage.c
    for hold_id, account_id, start, amount in held:
        async with db.transaction() as connection:
            gone = await connection.execute(
                budget_holds.delete().where(budget_holds.c.id == hold_id)
            )
            if gone.rowcount != 1:
                continue
            await connection.execute(
                update(budget_usage)
                .where(usage.account_id == account_id, usage.period_start == start)
                .values(reserved_nanos=usage.reserved_nanos - amount)
            )
            released += 1
    return released


async def expired_holds(db: Database, now: datetime, account_id: str | None) -> list[Held]:
    holds = budget_holds.c
    query = select(holds.id, holds.account_id, holds.period_start, holds.amount_nanos).where(
        holds.expires_at < now
    )
    if account_id is not None:
        query = query.where(holds.account_id == account_id)
    async with db.transaction(write=False) as connection:
        rows = (await connection.execute(query)).all()
    return [(hold_id, owner, start, int(amount)) for hold_id, owner, start, amount in rows]


async def expired_of(
    connection: AsyncConnection, now: datetime, ids: list[str]
) -> dict[str, list[Held]]:
    """The expired holds of each of `ids` in one query (refusals asked at the same moment)."""
    holds = budget_holds.c
    query = select(holds.id, holds.account_id, holds.period_start, holds.amount_nanos).where(
        holds.account_id.in_(ids), holds.expires_at < now
    )
    found: dict[str, list[Held]] = {}
    for hold_id, owner, start, amount in (await connection.execute(query)).all():
        found.setdefault(owner, []).append((hold_id, owner, start, int(amount)))
    return found


async def dead_holds(db: Database, holder: str) -> list[Held]:
    """The holds of processes of `holder`'s host that no longer run."""
    host = holder.split(":", maxsplit=1)[0]
    holds = budget_holds.c
    query = select(
        holds.id, holds.account_id, holds.period_start, holds.amount_nanos, holds.holder
    ).where(holds.holder.like(f"{host}:%"))
    async with db.transaction(write=False) as connection:
        rows = (await connection.execute(query)).all()
    dead = []
    for hold_id, account_id, start, amount, their_holder in rows:
        their_host, pid, _ = [*their_holder.split(":"), "", ""][:3]
        if their_host != host or not pid.isdigit() or their_holder in LIVE_HOLDERS:
            continue
        # This pid, but no app of this process: a process before this one had the number.
        if int(pid) == os.getpid() or not is_running(int(pid)):
            dead.append((hold_id, account_id, start, int(amount)))
    return dead
