"""What the budget store's tests share: a price, a clock the tests move, two pools on one
database (what two processes hold) with one account, and Budgets over a pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from server.config import Settings
from server.users.budgets import Budgets, Hold, SpendRecord
from server.users.costs import Price, worst_cost
from server.users.db import Database
from server.users.schema import accounts

PRICE = Price(Decimal("0.000001"), Decimal("0.000002"), 100_000)
CHARS = 40  # 10 prompt tokens
ONE_CHAT = worst_cost(PRICE, 40, 1000)  # $0.00201


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def databases(database_url: str, data_dir: Path) -> AsyncIterator[list[Database]]:
    """Two pools on one database: what two processes hold."""
    settings = Settings(data_dir=data_dir, database_url=database_url)
    pools = [Database(settings), Database(settings)]
    await pools[0].migrate()
    await pools[1].migrate()
    async with pools[0].transaction() as db:
        await db.execute(
            accounts.insert().values(
                id="a1",
                email="a@example.com",
                email_key="a@example.com",
                password_hash="x",
                admin=False,
                disabled=False,
                budget_usd=ONE_CHAT * 5 / 10**9,
                created_at=datetime.now(UTC),
            )
        )
    yield pools
    for pool in pools:
        await pool.aclose()


def budgets_of(db: Database, clock: Clock, holder: str = "host:1:a") -> Budgets:
    return Budgets(
        db, default_usd=None, period="month", longest_chat_s=3600, clock=clock, holder=holder
    )


def record(hold: Hold, cost: int, clock: Clock) -> SpendRecord:
    return SpendRecord(
        hold.account_id, "m", "server", True, hold.start, 10, 100, cost, clock(), clock()
    )
