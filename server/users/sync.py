"""The account's change counter and what `GET /api/sync` reads from it.

Every write takes the account's counter row first, in its own transaction: an upsert that
locks the row on PostgreSQL and takes SQLite's write lock, so two devices writing at once are
put in order, and versions are committed in the order they were taken. Each row written gets
a version of its own, so a page of changes can end anywhere and the next starts exactly after
it. A deletion is kept as a row of `history_deletions` for DELETIONS_KEPT_S; forgetting older
ones raises the account's `floor`, and a cursor below it must reload (`reset`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.history_rows import conversation_json, message_json, now_ms
from server.users.history_tables import (
    conversations,
    history_counters,
    history_deletions,
    messages,
)

PAGE_CHANGES = 500
DELETIONS_KEPT_S = 30 * 24 * 3600

# One statement on both engines (SQLite 3.35+, PostgreSQL): the row is made the first time,
# and the update takes the row's lock (PostgreSQL) or the database's write lock (SQLite)
# until the transaction ends.
LOCK_COUNTER = text(
    "INSERT INTO history_counters (account_id, version, floor) VALUES (:account_id, 0, 0) "
    "ON CONFLICT (account_id) DO UPDATE SET version = history_counters.version "
    "RETURNING version"
)


class Versions:
    """The account's versions within one write transaction, the counter row held locked."""

    def __init__(self, db: AsyncConnection, account_id: str, last: int) -> None:
        self.db, self.account_id = db, account_id
        self.first = self.last = last

    @classmethod
    async def lock(cls, db: AsyncConnection, account_id: str) -> Versions:
        """Must be the transaction's first statement: on SQLite a read before it would make
        the write that follows fail at once when another process wrote meanwhile."""
        result = await db.execute(LOCK_COUNTER, {"account_id": account_id})
        return cls(db, account_id, int(result.scalar_one()))

    def take(self) -> int:
        self.last += 1
        return self.last

    @property
    def changed(self) -> bool:
        return self.last > self.first

    async def save(self) -> None:
        if self.changed:
            await self.db.execute(
                update(history_counters)
                .where(history_counters.c.account_id == self.account_id)
                .values(version=self.last)
            )

    async def deleted(self, kind: str, row_id: str) -> None:
        """Keep the deletion as a change; forget the account's ones past DELETIONS_KEPT_S."""
        now = now_ms()
        await self.db.execute(
            insert(history_deletions).values(
                account_id=self.account_id,
                version=self.take(),
                kind=kind,
                id=row_id,
                deleted_at=now,
            )
        )
        expired = (history_deletions.c.account_id == self.account_id) & (
            history_deletions.c.deleted_at < now - DELETIONS_KEPT_S * 1000
        )
        newest = (
            await self.db.execute(select(func.max(history_deletions.c.version)).where(expired))
        ).scalar()
        if newest is not None:
            await self.db.execute(delete(history_deletions).where(expired))
            await self.db.execute(
                update(history_counters)
                .where(history_counters.c.account_id == self.account_id)
                .values(floor=newest)
            )


def _change(kind: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "op": op, "data": data}


async def changes_since(db: AsyncConnection, account_id: str, since: int) -> dict[str, Any]:
    """SPEC's answer to `GET /api/sync?since=`: a page of changes, or `reset`.

    The counter is read first: every version up to it was committed before it was (versions
    are taken under the lock, in order), so reading up to it misses nothing, and a row that
    changes meanwhile comes again at its new version on the next pull.
    """
    counter = (
        await db.execute(
            select(history_counters.c.version, history_counters.c.floor).where(
                history_counters.c.account_id == account_id
            )
        )
    ).one_or_none()
    current, floor = (counter.version, counter.floor) if counter else (0, 0)
    # A cursor from the future was not given by this database (a restored backup, another
    # server): the device's copy cannot be trusted, so it reloads, as from a too old one.
    if since > current or 0 < since < floor:
        return {"reset": True, "version": current}
    window = (since, current)
    rows: list[tuple[int, dict[str, Any]]] = []
    for table, kind, shape in (
        (conversations, "conversation", conversation_json),
        (messages, "message", message_json),
    ):
        for row in await _after(db, table, account_id, window):
            rows.append((row.version, _change(kind, "put", shape(row))))
    for row in await _after(db, history_deletions, account_id, window):
        rows.append((row.version, _change(row.kind, "delete", {"id": row.id})))
    rows.sort(key=lambda pair: pair[0])
    more = len(rows) > PAGE_CHANGES
    page = rows[:PAGE_CHANGES]
    version = page[-1][0] if more else current
    return {"version": version, "changes": [change for _, change in page], "more": more}


async def _after(
    db: AsyncConnection, table: Any, account_id: str, window: tuple[int, int]
) -> list[Row[Any]]:
    since, upto = window
    query = (
        select(table)
        .where(table.c.account_id == account_id, table.c.version > since, table.c.version <= upto)
        .order_by(table.c.version)
        .limit(PAGE_CHANGES + 1)
    )
    return list((await db.execute(query)).all())


async def current_version(db: AsyncConnection, account_id: str) -> int:
    version = (
        await db.execute(
            select(history_counters.c.version).where(history_counters.c.account_id == account_id)
        )
    ).scalar()
    return int(version or 0)
