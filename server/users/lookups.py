"""Lookups (and writes) of one kind made at the same moment, gathered into one query or one
transaction (issue 22).

A burst of signed-in chats asks the database who each one is: one statement each queues
every chat for a pooled connection, and on a busy event loop each checkout is held tens of
milliseconds. Here the keys asked while a query runs (or while it waits for a connection)
go together into the next one, `WHERE key IN (…)`: a burst of 500 takes a few queries and
at most one connection of the pool. Each answer is read after its request arrived, so
nothing is cached: a signed-out session or a revoked token is seen at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import AccountStoreUnavailable
from server.users.db import Database

T = TypeVar("T")
Fetch = Callable[[AsyncConnection, list[str]], Awaitable[dict[str, T]]]
# Bound on one IN list: well under either engine's bound on parameters.
MAX_BATCH = 500


class Lookups(Generic[T]):
    """`get(key)` answers as `fetch` does for that key, None when it finds nothing."""

    def __init__(self, db: Database, fetch: Fetch[T]) -> None:
        self.db = db
        self.fetch = fetch
        self.waiting: dict[str, list[asyncio.Future[T | None]]] = {}
        self.running: asyncio.Task[None] | None = None

    async def get(self, key: str) -> T | None:
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, []).append(future)
        if self.running is None:
            self.running = asyncio.create_task(self.run())
        return await future

    async def run(self) -> None:
        """Query for what is waiting, round after round, until nothing is."""
        try:
            while self.waiting:
                await self.one_round()
        finally:
            self.running = None

    async def one_round(self) -> None:
        batch: dict[str, list[asyncio.Future[T | None]]] = {}
        try:
            async with self.db.transaction(write=False, one_statement=True) as connection:
                # Taken once a connection is held: those that came meanwhile join.
                for key in list(self.waiting)[:MAX_BATCH]:
                    batch[key] = self.waiting.pop(key)
                found = await self.fetch(connection, list(batch))
        except BaseException as error:
            failed = batch or self.waiting
            if not batch:
                self.waiting = {}
            cancelled = isinstance(error, asyncio.CancelledError)
            for futures in failed.values():
                for future in futures:
                    if future.done():
                        continue
                    if cancelled:
                        future.cancel()
                    else:
                        future.set_exception(error)
            if cancelled or not isinstance(error, Exception):
                raise
            return
        for key, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))


Write = Callable[[AsyncConnection, list[T]], Awaitable[None]]


class Writes(Generic[T]):
    """`put(item)` returns once `write` committed it: the items put while a write runs (or
    waits for a connection, or for SQLite's write lock) go together into the next
    transaction. A batch that fails for another reason than the database being away is
    written again one item a transaction, so one bad item (its account deleted meanwhile)
    costs only itself."""

    def __init__(self, db: Database, write: Write[T]) -> None:
        self.db = db
        self.write = write
        self.waiting: list[tuple[T, asyncio.Future[None]]] = []
        self.running: asyncio.Task[None] | None = None

    async def put(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self.running is None:
            self.running = asyncio.create_task(self.run())
        await future

    async def run(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                await self.one_round(batch)
        finally:
            self.running = None

    async def one_round(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self.commit([item for item, _ in batch])
        except AccountStoreUnavailable as error:
            settle(batch, error)
        except Exception as error:
            if len(batch) == 1:
                settle(batch, error)
                return
            for one in batch:
                await self.one_round([one])
        except BaseException as error:
            settle(batch, error)
            raise
        else:
            settle(batch, None)

    async def commit(self, items: list[T]) -> None:
        async with self.db.transaction() as connection:
            await self.write(connection, items)


def settle(batch: list[tuple[T, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
