"""What a budget adds to a chat's start through HTTP (issue 24): bursts of N POST chats at
once on one `python -m server`, every chat by its own signed-in account on the server key,
with DEFAULT_BUDGET_USD set: unmetered (a model without a price) and metered (the fake
upstream's one priced model, PRICED_MODEL, so each chat reserves its worst cost before
upstream is called), in alternating order, with an anonymous burst as a reference. On
SQLite and then on PostgreSQL (Debian's package, as the tests start it).

Prints each burst's TTFT p50 / p99 and the relay's CPU per chat (user + system of the
server process over the burst, its ends included), then checks that every metered chat was
reserved and settled (the period's chats counted, nothing left reserved).
Run: `python -m bench.budget_burst --n 500 --rounds 2`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from bench.accounts_burst import SECRET, mint_accounts, one_chat, process, wait_up
from bench.procs import cpu_seconds
from server.config import Settings
from server.users.budget_schema import budget_usage
from server.users.db import Database
from tests.postgres_server import PostgresServer
from tests.redis_server import free_port

WARM_UP = 20
BURSTS = ("unmetered", "metered")


async def burst(
    url: str, count: int, cookies: list[str] | None, metered: bool
) -> tuple[float, float]:
    """TTFT p50 and p99 in milliseconds of `count` chats started at once."""
    ttfts = sorted(
        await asyncio.gather(
            *(
                one_chat(url, i, None if cookies is None else cookies[i], metered)
                for i in range(count)
            )
        )
    )
    return statistics.median(ttfts) * 1000, ttfts[max(0, int(len(ttfts) * 0.99) - 1)] * 1000


async def settled(settings: Settings, chats: int) -> bool:
    """Every metered chat counted in the period and nothing held, within 60 s of the last
    burst (the ends are written after the last token)."""
    db = Database(settings)
    query = sa.select(
        sa.func.coalesce(sa.func.sum(budget_usage.c.chats), 0),
        sa.func.coalesce(sa.func.sum(budget_usage.c.reserved_nanos), 0),
    )
    try:
        for _ in range(600):
            async with db.transaction(write=False) as connection:
                counted, reserved = (await connection.execute(query)).one()
            if int(counted) == chats and int(reserved) == 0:
                return True
            await asyncio.sleep(0.1)
        print(f"  counted {counted} of {chats} metered chats, {reserved} nano-USD still held")
        return False
    finally:
        await db.aclose()


async def engine_rounds(
    engine: str, database_url: str | None, upstream: str, count: int, rounds: int
) -> bool:
    data = Path(tempfile.mkdtemp(prefix="chatrelay-bench-"))
    settings = Settings(data_dir=data, database_url=database_url, session_secret=SECRET)
    cookies = await mint_accounts(settings, count, own_key=False)
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "SESSION_SECRET": SECRET,
        "OPENROUTER_BASE_URL": upstream,
        "OPENROUTER_API_KEY": "sk-or-v1-server-bench-key",
        "DEFAULT_BUDGET_USD": "10000",
        "MAX_CHATS_PER_CLIENT": "0",
        "CHATS_PER_MINUTE": "0",
        "LOG_LEVEL": "ERROR",  # each unpriced model is logged once: 500 lines a burst
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with process(["server", "--port", str(port)], env) as pid:
        await wait_up(url)
        warm = min(WARM_UP, count)
        for priced in (False, True):  # the models list cached, the pool and the loop warm
            await burst(url, warm, cookies, priced)
        for round_ in range(rounds):
            order = BURSTS if round_ % 2 == 0 else BURSTS[::-1]
            for name in ("anonymous", *order):
                before = cpu_seconds(pid)
                jar = None if name == "anonymous" else cookies
                p50, p99 = await burst(url, count, jar, name == "metered")
                used = (cpu_seconds(pid) - before) / count * 1000
                print(
                    f"{engine} round {round_} {name}: TTFT p50 {p50:.0f} ms, p99 {p99:.0f} ms;"
                    f" relay CPU {used:.2f} ms per chat",
                    flush=True,
                )
    exact = await settled(settings, warm + rounds * count)
    print(f"{engine}: every metered chat reserved and settled: {exact}", flush=True)
    return exact


async def main(count: int, rounds: int, engines: list[str]) -> bool:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}/api/v1"
    exact = True
    async with process(["bench.fake_upstream", "--port", str(port)], dict(os.environ)):
        await asyncio.sleep(1.0)  # the fake binds at once; a second for its start-up
        if "sqlite" in engines:
            exact &= await engine_rounds("sqlite", None, upstream, count, rounds)
        if "postgresql" in engines:
            with PostgresServer() as postgres:
                database = postgres.create_database()
                exact &= await engine_rounds("postgresql", database, upstream, count, rounds)
    return exact


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.budget_burst", description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="chats at once (default 500)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per engine (default 2)")
    parser.add_argument("--engines", default="sqlite,postgresql")
    options = parser.parse_args()
    sys.exit(0 if asyncio.run(main(options.n, options.rounds, options.engines.split(","))) else 1)
