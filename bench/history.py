"""The history at size (issue 23): one account with 10,000 conversations and 200,000
messages, on SQLite and PostgreSQL, and how long the routes' queries take on it.

    .venv/bin/python -m bench.history [--quick] [--postgres URL] [--rounds 5]

Times the data layer the routes call (server/users/), in one process, no HTTP: the first
page of the list, one conversation of 500 messages, a search, and a sync of 1,000 changes
(two pages of 500). Without --postgres a throwaway cluster is started (tests/postgres_server).
Rows are bulk-loaded with their versions as the writes would have given them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from server.config import Settings
from server.users.db import Database
from server.users.history import History
from server.users.history_tables import conversations, history_counters, messages
from server.users.schema import accounts, utc_now

ACCOUNT = "bench" + "0" * 27
WORDS = [f"w{n:04d}" for n in range(5000)] + ["kubernetes", "helm", "sourdough", "espresso"]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


async def load(database: Database, n_conversations: int, n_messages: int) -> int:
    """The account's rows, in big inserts; the conversation `big` has 500 messages."""
    rng = random.Random(23)
    async with database.transaction() as db:
        await db.execute(
            insert(accounts).values(
                id=ACCOUNT,
                email="bench@example.com",
                email_key="bench@example.com",
                password_hash="-",
                admin=False,
                disabled=False,
                created_at=utc_now(),
            )
        )
    version, now = 0, 1_700_000_000_000
    per = (n_messages - 500) // (n_conversations - 1)
    for start in range(0, n_conversations, 1000):
        rows, message_rows = [], []
        for number in range(start, min(start + 1000, n_conversations)):
            cid = "big" if number == 0 else f"c{number}"
            version += 1
            rows.append(
                {
                    "account_id": ACCOUNT,
                    "id": cid,
                    "title": sentence(rng, 4),
                    "pinned": False,
                    "archived": False,
                    "created_at": now + number,
                    "updated_at": now + number,
                    "version": version,
                }
            )
            parent = None
            for index in range(500 if number == 0 else per):
                version += 1
                mid = f"{cid}-m{index}"
                message_rows.append(
                    {
                        "account_id": ACCOUNT,
                        "id": mid,
                        "conversation_id": cid,
                        "parent_id": parent,
                        "role": "user" if index % 2 == 0 else "assistant",
                        # One message surely holds the searched words, whatever the size.
                        "text": ("kubernetes helm " if mid == "big-m0" else "") + sentence(rng, 40),
                        "status": "done",
                        "created_at": now + number,
                        "version": version,
                    }
                )
                parent = mid
        async with database.transaction() as db:
            await db.execute(insert(conversations), rows)
            for chunk in range(0, len(message_rows), 5000):
                await db.execute(insert(messages), message_rows[chunk : chunk + 5000])
    async with database.transaction() as db:
        await db.execute(
            insert(history_counters).values(account_id=ACCOUNT, version=version, floor=0)
        )
    return version


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> tuple[float, Any]:
    """The median of `rounds` timings in ms, after one warm-up; and the last result."""
    result = await call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def measure(url: str, n_conversations: int, n_messages: int, rounds: int) -> dict[str, float]:
    database = Database(Settings(database_url=url))
    await database.migrate()
    started = time.perf_counter()
    last = await load(database, n_conversations, n_messages)
    print(
        f"  loaded {n_conversations} conversations, {n_messages} messages in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    if database.dialect == "postgresql":
        async with database.transaction() as db:
            await db.exec_driver_sql("ANALYZE")
    history = History(database, lambda account_id, version: None)
    figures: dict[str, float] = {}
    figures["list first page (50)"], page = await timed(
        lambda: history.list(ACCOUNT, 50, None, None, None), rounds
    )
    assert len(page["data"]) == min(50, n_conversations)
    figures["one conversation (500 messages)"], big = await timed(
        lambda: history.conversation(ACCOUNT, "big"), rounds
    )
    assert len(big["messages"]) == 500
    figures["search 'kubernetes hel'"], found = await timed(
        lambda: history.list(ACCOUNT, 50, None, None, "kubernetes hel"), rounds
    )
    assert found["data"], "the search found nothing"

    async def sync_1000() -> int:
        since, count = last - 1000, 0
        while True:
            page = await history.sync(ACCOUNT, since)
            count += len(page["changes"])
            since = page["version"]
            if not page["more"]:
                return count

    figures["sync of 1,000 changes (2 pages)"], count = await timed(sync_1000, rounds)
    assert count == 1000, count
    await database.aclose()
    return figures


async def sync_latency(redis_url: str, writes: int = 200) -> tuple[float, float]:
    """A `sync` poke from one process's SyncBus to another's through Redis: median and p99
    ms from `changed()` (called once a write commits) to the other process's socket hook."""
    from redis.asyncio import Redis  # noqa: PLC0415

    from server.users.live import SyncBus  # noqa: PLC0415

    writer, reader = SyncBus(Redis.from_url(redis_url)), SyncBus(Redis.from_url(redis_url))
    reader.start()
    await asyncio.wait_for(reader.subscribed.wait(), 10)
    heard = asyncio.Event()
    reader.subscribe(ACCOUNT, lambda version: heard.set())
    times = []
    for version in range(1, writes + 1):
        heard.clear()
        started = time.perf_counter()
        writer.changed(ACCOUNT, version)
        await asyncio.wait_for(heard.wait(), 10)
        times.append((time.perf_counter() - started) * 1000)
    await writer.close()
    await reader.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 conversations, 20,000 messages")
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database may be filled")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, metavar=("CONVERSATIONS", "MESSAGES"))
    options = parser.parse_args()
    n_conversations, n_messages = (1000, 20_000) if options.quick else (10_000, 200_000)
    if options.size:
        n_conversations, n_messages = options.size
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        print("sqlite:", file=sys.stderr)
        results["SQLite"] = await measure(
            f"sqlite:///{Path(folder) / 'bench.db'}", n_conversations, n_messages, options.rounds
        )
    print("postgresql:", file=sys.stderr)
    if options.postgres:
        results["PostgreSQL"] = await measure(
            options.postgres, n_conversations, n_messages, options.rounds
        )
    else:
        from tests.postgres_server import PostgresServer  # noqa: PLC0415

        with PostgresServer() as server:
            results["PostgreSQL"] = await measure(
                server.create_database(), n_conversations, n_messages, options.rounds
            )
    print(
        f"| query ({n_conversations:,} conversations, {n_messages:,} messages) "
        "| SQLite ms | PostgreSQL ms |"
    )
    print("| --- | --- | --- |")
    for name in results["SQLite"]:
        print(f"| {name} | {results['SQLite'][name]:.1f} | {results['PostgreSQL'][name]:.1f} |")
    from tests.redis_server import RedisServer  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as redis:
        median, p99 = await sync_latency(redis.url)
    print(f"sync poke to another process through Redis: median {median:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
