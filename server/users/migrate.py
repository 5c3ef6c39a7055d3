"""Schema migrations: Alembic's revisions in `migrations/versions`, upgraded to every head,
run programmatically (no alembic.ini) under a lock, so processes starting together
migrate once: a file lock beside a SQLite database, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.db import Database

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock's key for migrations: "chatrela" as a big-endian 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"chatrela", "big")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


@functools.cache
def head_revisions() -> frozenset[str]:
    """The revisions of this code: read once a process, every start compares with them."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def upgrade_to_heads(connection: Connection) -> None:
    if current_revisions(connection) == head_revisions():
        return  # the usual start: nothing to do, and nothing logged
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")
    log.info("database migrated to %s", ", ".join(sorted(current_revisions(connection))))


@asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock on `path` across processes, waited for in a thread."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@asynccontextmanager
async def advisory_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    """PostgreSQL's session-level lock for the connection's life in this block."""
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    await connection.commit()
    try:
        yield
    finally:
        await connection.execute(
            text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
        await connection.commit()


def make_private_file(path: Path) -> None:
    """The SQLite file and its folder, made readable by this user only: it holds password
    hashes and encrypted keys."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


async def upgrade(db: Database) -> None:
    """Upgrade `db` to every head; the second of two processes finds it done."""
    if db.sqlite_file is not None:
        make_private_file(db.sqlite_file)
        lock = db.sqlite_file.with_name(db.sqlite_file.name + ".migrate-lock")
        async with file_lock(lock), db.engine.connect() as connection:
            await connection.run_sync(upgrade_to_heads)
            await connection.commit()
        return
    async with db.engine.connect() as connection, advisory_lock(connection):
        await connection.run_sync(upgrade_to_heads)
        await connection.commit()
