"""The database of accounts, history and spend: one SQLAlchemy Core code path for SQLite
(aiosqlite, the embedded default) and PostgreSQL (asyncpg).

`Database.transaction()` is how every feature reaches it: a connection in a transaction,
committed when the block ends well. A database that cannot be reached is
`AccountStoreUnavailable` (503) there, and the pool reconnects by itself when it is back
(pre-ping on PostgreSQL), so nothing needs a restart. Never on the per-token path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from server.config import Settings, settings_key
from server.errors import AccountStoreUnavailable

log = logging.getLogger(__name__)

# A database that does not answer within these is as good as away: fail fast with a 503.
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
# A burst of signed-in chats queues for the pool (each checkout is held ~50 ms on a busy
# loop): a wait there is load, not an outage, so it is bounded like a statement, not
# failed at 10 s with a 503. An away database still fails in CONNECT_TIMEOUT_S.
POOL_TIMEOUT_S = 30.0
# PostgreSQL connections per process: DATABASE_POOL_SIZE (20), half kept open, half more
# in a burst. Workers x DATABASE_POOL_SIZE must stay under the server's max_connections
# (README "The database"): 4 workers x 20 = 80 of PostgreSQL's default 100.
# SQLite: one writer at a time whatever the pool, and readers are quick; each connection is
# a thread of aiosqlite's, so a small pool is enough.
SQLITE_POOL_SIZE = 5
SQLITE_POOL_OVERFLOW = 10
# How long SQLite waits for another process's write to finish before it gives up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
OUTAGE_LOG_S = 10.0
# What "the database is away" looks like from SQLAlchemy and the drivers underneath.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
    OSError,
    TimeoutError,
)


def sqlite_path(engine_url: str) -> Path | None:
    """The file of a SQLite URL, None for PostgreSQL."""
    scheme, _, rest = engine_url.partition("://")
    if not scheme.startswith("sqlite"):
        return None
    return Path(rest.removeprefix("/").partition("?")[0])


def make_engine(engine_url: str, pool_size: int = 20) -> AsyncEngine:
    if sqlite_path(engine_url) is None:
        kept = max(1, pool_size // 2)
        return create_async_engine(
            engine_url,
            # A connection the server dropped (a restart, a failover) is replaced on checkout.
            pool_pre_ping=True,
            pool_size=kept,
            max_overflow=pool_size - kept,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
        )
    engine = create_async_engine(
        engine_url,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
    )
    event.listen(engine.sync_engine, "connect", sqlite_connected)
    event.listen(engine.sync_engine, "begin", sqlite_begin)
    return engine


def sqlite_connected(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # WAL lets readers go on while one process writes; foreign keys are off unless asked,
    # per connection. The driver's own BEGIN is switched off: sqlite_begin says which.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA foreign_keys=ON",
        "PRAGMA synchronous=NORMAL",
    ):
        cursor.execute(pragma)
    cursor.close()


def sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front, waiting busy_timeout for it: a transaction
    # that reads and then writes would otherwise fail at once (SQLITE_BUSY) when another
    # process wrote in between. Reads ask for a plain (deferred) BEGIN.
    # A read of one statement needs none (the driver's autocommit): NONE.
    kind = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    if kind != "NONE":
        connection.exec_driver_sql(f"BEGIN {kind}")


class OutageLog:
    """A warning when the database goes away, then one per OUTAGE_LOG_S while it stays away
    (with how many failures it stands for), and a line when it answers again: an outage
    under load must not write a line per request."""

    def __init__(self) -> None:
        self.last_at = -OUTAGE_LOG_S
        self.unlogged = 0
        self.away_since: float | None = None

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        self.unlogged += 1
        if self.away_since is None:
            self.away_since = now
        if now - self.last_at >= OUTAGE_LOG_S:
            log.warning(
                "database unavailable (%s), %d failures", type(error).__name__, self.unlogged
            )
            self.last_at, self.unlogged = now, 0

    def answered(self) -> None:
        if self.away_since is not None:
            log.info("database is back after %.1f s", time.monotonic() - self.away_since)
            self.away_since, self.last_at, self.unlogged = None, -OUTAGE_LOG_S, 0


class Database:
    """The engine and its pool for the app's lifetime; migrated once before first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url_for_engine()
        self.sqlite_file = sqlite_path(self.url)
        self.engine = make_engine(self.url, settings.database_pool_size)
        self.migrated = False
        self._migrating = asyncio.Lock()
        self.outage = OutageLog()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`, for the few statements that differ."""
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Upgrade the schema to every head, once across processes (server/users/migrate.py)."""
        from server.users.migrate import upgrade  # noqa: PLC0415 (it imports this module)

        async with self._migrating:
            if self.migrated:
                return
            try:
                await upgrade(self)
            except UNAVAILABLE as error:
                raise AccountStoreUnavailable() from error
            self.migrated = True

    @asynccontextmanager
    async def transaction(
        self, *, write: bool = True, one_statement: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed when the block ends without an error.

        `write=False` for reads only: on SQLite it does not take the write lock.
        `one_statement=True` for a read of one statement (who a request is): it runs without
        BEGIN and COMMIT, two round trips fewer on every signed-in request.
        AccountStoreUnavailable (503) when the database cannot be reached.
        """
        if not self.migrated:
            await self.migrate()
        options: dict[str, str] = {"sqlite_begin": "IMMEDIATE" if write else "DEFERRED"}
        if one_statement and not write:
            if self.sqlite_file is None:
                options["isolation_level"] = "AUTOCOMMIT"
            else:
                options["sqlite_begin"] = "NONE"
        try:
            async with self.engine.connect() as opened:
                # The same connection, told which BEGIN SQLite gets (see sqlite_begin).
                connection = await opened.execution_options(**options)
                async with connection.begin():
                    yield connection
        except UNAVAILABLE as error:
            self.outage.failed(error)
            raise AccountStoreUnavailable() from error
        self.outage.answered()

    async def aclose(self) -> None:
        await self.engine.dispose()


database_key = web.AppKey("database", Database)


async def database(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the database for the app's lifetime, migrated at start when it answers.

    A database away at start stops nothing: anonymous chats go on, and the first request
    that needs it migrates it once it is back.
    """
    settings = app[settings_key]
    db = Database(settings)
    if settings.dyno and db.sqlite_file is not None:
        log.warning(
            "DATABASE_URL is SQLite on a dyno: its file system is lost at every restart, and "
            "the accounts with it; add a Postgres add-on (it sets DATABASE_URL)"
        )
    app[database_key] = db
    try:
        await db.migrate()
    except AccountStoreUnavailable:
        log.warning("database unreachable at start: account routes answer 503 until it is back")
    try:
        yield
    finally:
        await db.aclose()


def setup_database(app: web.Application) -> None:
    app.cleanup_ctx.append(database)
