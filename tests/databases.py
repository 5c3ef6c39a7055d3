"""Database fixtures (a pytest plugin of tests/conftest.py): a real PostgreSQL for the
session, a SQLite file in a temporary DATA_DIR, and `database_url` giving each engine in
turn, so one test runs against both."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.config import DATABASE_FILE, Settings
from server.users.db import Database
from tests.postgres_server import PostgresServer

# The same fixed Fernet key as tests/conftest.py's.
SESSION_SECRET = "Xq0Y0s8cT3o3ZgfN0f7d4Yb1WkqJ8mZr2VvH5nD6eLs="

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session", autouse=True)
def default_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers started as processes keep their SQLite file and secret in a temporary folder
    unless a test names its own DATA_DIR: never in the working copy's `data`."""
    saved = os.environ.get("DATA_DIR")
    os.environ["DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if saved is None:
        os.environ.pop("DATA_DIR", None)
    else:
        os.environ["DATA_DIR"] = saved


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; each test gets a database of its own."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def make_postgres_server() -> Iterator[Callable[[], PostgresServer]]:
    """Own PostgreSQL clusters that the test may stop and restart."""
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = PostgresServer().start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.remove()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once for the session, which each test's DATA_DIR starts from:
    an app checks the schema at start, and migrating from empty for every test of the
    suite would cost far more than the copy."""
    folder = tmp_path_factory.mktemp("migrated")
    settings = Settings(data_dir=folder, session_secret=SESSION_SECRET)
    asyncio.run(migrate_once(settings))
    return folder / DATABASE_FILE


async def migrate_once(settings: Settings) -> None:
    db = Database(settings)
    try:
        await db.migrate()
    finally:
        await db.aclose()


@pytest.fixture
def data_dir(tmp_path: Path, migrated_sqlite: Path) -> Path:
    """The test's DATA_DIR, holding an up-to-date (empty) SQLite database."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    shutil.copy(migrated_sqlite, folder / DATABASE_FILE)
    return folder


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    """A DATA_DIR that does not exist yet, as on a first start."""
    return tmp_path / "empty-data"


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, empty_data_dir: Path) -> str:
    """A new database, not migrated yet: a SQLite file in a DATA_DIR of its own, or a
    PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{empty_data_dir / DATABASE_FILE}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
