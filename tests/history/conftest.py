"""The history's data layer on a real database, each test on both engines (tests/databases.py):
a migrated Database with two accounts in it, and the versions told to the live sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import insert

from server.config import Settings
from server.users.db import Database
from server.users.history import History
from server.users.schema import accounts, utc_now

ALICE, BOB = "a" * 32, "b" * 32


@dataclass
class Told:
    """What the live sync was told: (account, version) after each commit."""

    versions: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, account_id: str, version: int) -> None:
        self.versions.append((account_id, version))


async def add_account(database: Database, account_id: str) -> None:
    async with database.transaction() as db:
        await db.execute(
            insert(accounts).values(
                id=account_id,
                email=f"{account_id[:4]}@example.com",
                email_key=f"{account_id[:4]}@example.com",
                password_hash="-",
                admin=False,
                disabled=False,
                created_at=utc_now(),
            )
        )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(Settings(database_url=database_url))
    await db.migrate()
    await add_account(db, ALICE)
    await add_account(db, BOB)
    yield db
    await db.aclose()


@pytest.fixture
def told() -> Told:
    return Told()


@pytest.fixture
def history(database: Database, told: Told) -> History:
    return History(database, told)
