"""What a budget adds to a chat's start and end, in-process: N reservations at once (the
burst's starts), then their N settlements, against a real database.

    .venv/bin/python -m bench.budget_start [--chats 500] [--accounts 1] [--database-url URL]

SQLite in a temporary DATA_DIR unless `--database-url` names another (a PostgreSQL one).
Prints the wall time of the burst's reservations and of the settlements, each one's latency
p50 / p99, and the process CPU per chat for each (the database's own CPU, a PostgreSQL
server's, is not counted), on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.loops import run_fast
from server.config import Settings
from server.users.budgets import Budgets, Hold, SpendRecord
from server.users.costs import Price
from server.users.db import Database
from server.users.periods import utc_now
from server.users.schema import accounts

MINI = Price(Decimal("0.00000015"), Decimal("0.0000006"), 128_000)
COST_NANOS = 600_000  # what each chat settles to: well under its reservation


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(step: object) -> float:
    started = time.monotonic()
    assert asyncio.iscoroutine(step)
    await step
    return (time.monotonic() - started) * 1000


async def measure(url: str | None, chats: int, account_count: int) -> bool:
    data_dir = Path(tempfile.mkdtemp(prefix="chatrelay-budget-"))
    db = Database(Settings(data_dir=data_dir, database_url=url))
    await db.migrate()
    ids = [f"bench{n}" for n in range(account_count)]
    async with db.transaction() as connection:
        for account_id in ids:
            await connection.execute(
                accounts.insert().values(
                    id=account_id,
                    email=f"{account_id}@example.com",
                    email_key=f"{account_id}@example.com",
                    password_hash="-",
                    admin=False,
                    disabled=False,
                    created_at=datetime.now(UTC),
                )
            )
    budgets = Budgets(db, default_usd=1000.0, period="month", longest_chat_s=3600, clock=utc_now)
    holds: list[Hold] = []

    async def reserve(account_id: str) -> None:
        holds.append(await budgets.reserve(account_id, MINI, 400, 1000))

    try:
        cpu, wall = time.process_time(), time.monotonic()
        starts = await asyncio.gather(*(timed(reserve(ids[n % len(ids)])) for n in range(chats)))
        start_cpu, start_wall = time.process_time() - cpu, time.monotonic() - wall
        now = utc_now()
        records = [
            SpendRecord(h.account_id, "m", "server", True, h.start, 100, 1000, COST_NANOS, now, now)
            for h in holds
        ]
        cpu, wall = time.process_time(), time.monotonic()
        ends = await asyncio.gather(
            *(timed(budgets.settle(h, r)) for h, r in zip(holds, records, strict=True))
        )
        end_cpu, end_wall = time.process_time() - cpu, time.monotonic() - wall
        left = [await budgets.standing(account_id) for account_id in ids]
    finally:
        budgets.close()
        await db.aclose()
    spent, reserved = sum(s.spent for s in left), sum(s.reserved for s in left)
    exact = len(holds) == chats and spent == chats * COST_NANOS and reserved == 0
    print(f"{db.dialect}: {chats} chats at once on {account_count} account(s)")
    print(f"  every chat reserved and settled exactly: {exact}")
    for name, latencies, cpu_s, wall_s in (
        ("reserve", starts, start_cpu, start_wall),
        ("settle", ends, end_cpu, end_wall),
    ):
        ordered = sorted(latencies)
        print(
            f"  {name}: all in {wall_s * 1000:.0f} ms; each p50 / p99 "
            f"{percentile(ordered, 0.5):.0f} / {percentile(ordered, 0.99):.0f} ms; "
            f"process CPU {cpu_s / chats * 1000:.2f} ms per chat"
        )
    return exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.budget_start", description=__doc__)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    return 0 if run_fast(measure(args.database_url, args.chats, args.accounts)) else 1


if __name__ == "__main__":
    sys.exit(main())
