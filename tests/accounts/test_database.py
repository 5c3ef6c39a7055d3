"""The database layer on both engines: migrations from empty, once across processes, by
`python -m server migrate`, SQLite's settings, and a database that goes away and comes back."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import server.users
from server.config import Settings
from server.errors import AccountStoreUnavailable
from server.users.db import Database, database_key
from server.users.migrate import alembic_config, current_revisions, head_revisions
from server.users.schema import accounts, metadata, utc_now
from tests.conftest import SESSION_SECRET, MakeClient
from tests.postgres_server import PostgresServer
from tests.server_process import ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.subprocess


def settings_for(database_url: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, session_secret=SESSION_SECRET)


def schema_differences(connection: Connection) -> list[Any]:
    # Every feature's tables, wherever in server/users they are defined.
    for module in pkgutil.walk_packages(server.users.__path__, "server.users."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    context = MigrationContext.configure(
        connection, opts={"include_object": declared_or_not_a_search_index}
    )
    diffs: list[Any] = compare_metadata(context, metadata)
    return diffs


def declared_or_not_a_search_index(
    item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any
) -> bool:
    """History's full-text search lives outside the metadata on purpose (SQLite's FTS5
    tables and their shadow tables, PostgreSQL's search index): not a drift."""
    search = name is not None and ("fts" in name or name.endswith("_search"))
    return not (reflected and compare_to is None and search)


async def test_migrations_from_empty_build_every_table_as_the_code_declares_it(
    database_url: str, empty_data_dir: Path
) -> None:
    db = Database(settings_for(database_url, empty_data_dir))
    try:
        await db.migrate()
        async with db.engine.connect() as connection:
            assert await connection.run_sync(current_revisions) == head_revisions()
            assert await connection.run_sync(schema_differences) == []
        revisions = ScriptDirectory.from_config(alembic_config()).walk_revisions()
        assert "0001_accounts" in {revision.revision for revision in revisions}
        # Usable at once: a write and its read.
        async with db.transaction() as connection:
            await connection.execute(
                sa.insert(accounts).values(
                    id="a1",
                    email="Ann@x.org",
                    email_key="ann@x.org",
                    password_hash="-",
                    admin=False,
                    disabled=False,
                    created_at=utc_now(),
                )
            )
        async with db.transaction(write=False) as connection:
            row = (await connection.execute(sa.select(accounts.c.created_at))).one()
            assert row.created_at.tzinfo is not None
    finally:
        await db.aclose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(
    empty_data_dir: Path,
) -> None:
    db = Database(settings_for(f"sqlite:///{empty_data_dir / 'x.db'}", empty_data_dir))
    try:
        async with db.transaction(write=False) as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas["journal_mode"] == "wal"
        assert pragmas["foreign_keys"] == 1
        assert int(pragmas["busy_timeout"] or 0) >= 1000
        # Only its owner may read the file: it holds password hashes and encrypted keys.
        assert (empty_data_dir / "x.db").stat().st_mode & 0o077 == 0
    finally:
        await db.aclose()


async def run_migrate(env: dict[str, str]) -> tuple[int | None, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "migrate",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, stderr.decode().strip().splitlines()


async def test_two_processes_migrating_at_once_migrate_once(
    database_url: str, empty_data_dir: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(empty_data_dir)}
    env["LOG_LEVEL"] = "INFO"
    results = await asyncio.gather(run_migrate(env), run_migrate(env), run_migrate(env))
    assert [code for code, _ in results] == [0, 0, 0], results
    lines = [line for _, output in results for line in output]
    # "migrated to" every head: 0001_accounts and each feature's own revision.
    assert len([line for line in lines if "database migrated to" in line]) == 1
    # And a later start finds nothing to do.
    code, output = await run_migrate(env)
    assert code == 0 and not [line for line in output if "migrated" in line]


async def test_migrate_with_the_database_away_fails_in_one_line(
    make_postgres_server: Any, empty_data_dir: Path
) -> None:
    server: PostgresServer = make_postgres_server()
    url = server.create_database()
    server.stop()
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(empty_data_dir)}
    code, lines = await run_migrate(env)
    assert code == 1
    assert len(lines) == 1 and "DATABASE_URL" in lines[0], lines
    assert "postgres@" not in lines[0]  # the URL (with its password, if any) is not echoed


async def test_a_database_away_is_503_and_back_without_a_restart(
    make_postgres_server: Any, make_client: MakeClient
) -> None:
    server: PostgresServer = make_postgres_server()
    url = server.create_database()
    client = await make_client(database_url=url)
    db = client.app[database_key]
    assert db.migrated

    async def count() -> int:
        async with db.transaction(write=False) as connection:
            query = sa.select(sa.func.count()).select_from(accounts)
            return int((await connection.execute(query)).scalar_one())

    assert await count() == 0
    server.stop()
    with pytest.raises(AccountStoreUnavailable):
        await count()
    async with client.get("/healthz") as response:
        assert response.status == 200
    server.start()

    async def works() -> bool:
        try:
            return await count() == 0
        except AccountStoreUnavailable:
            return False

    await wait_until(works, "the database is used again after its restart", timeout_s=20)


async def test_a_database_away_at_start_is_migrated_once_it_is_back(
    make_postgres_server: Any, make_client: MakeClient
) -> None:
    server: PostgresServer = make_postgres_server()
    url = server.create_database()
    server.stop()
    client = await make_client(database_url=url)
    db = client.app[database_key]
    assert not db.migrated
    async with client.get("/healthz") as response:
        assert response.status == 200
    server.start()
    async with db.transaction(write=False) as connection:
        assert await connection.run_sync(current_revisions) == head_revisions()


async def test_sqlite_on_a_dyno_warns_that_its_data_is_lost_at_every_restart(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    await make_client(dyno="web.1")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SQLite" in m and "every restart" in m for m in warned), warned
    caplog.clear()
    await make_client()
    assert not [r for r in caplog.records if "every restart" in r.getMessage()]
