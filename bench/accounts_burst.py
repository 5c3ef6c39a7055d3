"""Accounts against the relay: a burst of N POST chats at once on one `python -m server`,
anonymous and then each by its own signed-in account, on SQLite and on PostgreSQL.

The accounts and their sessions are written straight into the database (and the cookie
minted with SESSION_SECRET), so N sign-ins' Argon2id hashes are not part of the burst; each
account holds its own key, so Budgets only record its cost. Prints TTFT p50 and p99 per round.
Run: `python -m bench.accounts_burst --n 500` (PostgreSQL from Debian's package, as the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bench.fake_upstream import PRICED_MODEL
from bench.tokens import StreamSpec
from server.config import Settings
from server.users.credentials import PASSWORDS, KeyBox, digest, new_token
from server.users.db import Database
from server.users.schema import account_sessions, accounts, utc_now
from tests.postgres_server import PostgresServer
from tests.redis_server import free_port

SECRET = "Xq0Y0s8cT3o3ZgfN0f7d4Yb1WkqJ8mZr2VvH5nD6eLs="
ROOT = Path(__file__).resolve().parents[1]
TOKENS, GAP_MS = 10, 20


async def mint_accounts(settings: Settings, count: int, own_key: bool = True) -> list[str]:
    """`count` accounts with a session each (each with a key of its own, or on the server's
    key); the session cookies' values."""
    db = Database(settings)
    await db.migrate()
    password_hash = PASSWORDS.hash("correct horse battery")
    sealed = KeyBox(SECRET).seal("sk-or-v1-own-bench-key")
    fernet, now = Fernet(SECRET.encode()), utc_now()
    rows, sessions, cookies = [], [], []
    for index in range(count):
        session_id, account_id = new_token(), f"bench{index:05d}"
        email = f"user{index}@bench.test"
        rows.append(
            {
                "id": account_id,
                "email": email,
                "email_key": email,
                "password_hash": password_hash,
                "admin": index == 0,
                "disabled": False,
                "openrouter_key": sealed if own_key else None,
                "created_at": now,
            }
        )
        sessions.append(
            {"id": digest(session_id), "account_id": account_id, "created_at": now}
            | {"last_seen_at": now}
        )
        # aiohttp-session's encrypted cookie: {"created", "session"} under the Fernet key.
        payload = {"created": int(time.time()), "session": {"account_session": session_id}}
        cookies.append(fernet.encrypt(orjson.dumps(payload)).decode())
    async with db.transaction() as connection:
        await connection.execute(sa.insert(accounts), rows)
        await connection.execute(sa.insert(account_sessions), sessions)
    await db.aclose()
    return cookies


async def one_chat(url: str, index: int, cookie: str | None, metered: bool = False) -> float:
    """One chat's TTFT in seconds. The same prompt for every kind (the fake reads the
    stream's parameters from it when the model is PRICED_MODEL): only the price differs."""
    headers = {} if cookie is None else {"Cookie": f"chatrelay_session={cookie}"}
    spec = StreamSpec(sid=f"s{index}", n=TOKENS, gap_ms=GAP_MS)
    body = {
        "chatSettings": {"model": PRICED_MODEL if metered else spec.model()},
        "messages": [{"role": "user", "content": spec.model()}],
    }
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"{url}/api/chat/openrouter", json=body, headers=headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"chat {index}: {answer.status} {await answer.text()}")
            await answer.content.readany()
            ttft = time.perf_counter() - started
            await answer.read()
    return ttft


async def burst(url: str, count: int, cookies: list[str] | None) -> tuple[float, float]:
    """TTFT p50 and p99 in milliseconds of `count` chats started at once."""
    ttfts = sorted(
        await asyncio.gather(
            *(one_chat(url, i, None if cookies is None else cookies[i]) for i in range(count))
        )
    )
    return statistics.median(ttfts) * 1000, ttfts[max(0, int(len(ttfts) * 0.99) - 1)] * 1000


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/healthz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("python -m server did not answer /healthz")


@contextlib.asynccontextmanager
async def process(args: list[str], env: dict[str, str]) -> AsyncIterator[int]:
    """`python -m <args>` for the block's length; its pid."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", *args, cwd=ROOT, env=env)
    try:
        yield child.pid
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), timeout=30)


async def engine_rounds(
    engine: str, database_url: str | None, upstream: str, count: int, rounds: int
) -> None:
    data = Path(tempfile.mkdtemp(prefix="chatrelay-bench-"))
    settings = Settings(data_dir=data, database_url=database_url, session_secret=SECRET)
    cookies = await mint_accounts(settings, count)
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "SESSION_SECRET": SECRET,
        "OPENROUTER_BASE_URL": upstream,
        "OPENROUTER_API_KEY": "sk-or-v1-server-bench-key",
        # One client address starts every chat: the per-client limits would refuse most.
        "MAX_CHATS_PER_CLIENT": "0",
        "CHATS_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with process(["server", "--port", str(port)], env):
        await wait_up(url)
        for round_ in range(rounds):
            for name, jar in (("anonymous", None), ("signed-in", cookies)):
                p50, p99 = await burst(url, count, jar)
                print(f"{engine} round {round_} {name}: TTFT p50 {p50:.0f} ms, p99 {p99:.0f} ms")


async def main(count: int, rounds: int) -> None:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}/api/v1"
    async with process(["bench.fake_upstream", "--port", str(port)], dict(os.environ)):
        await asyncio.sleep(1.0)  # the fake binds at once; a second for its start-up
        await engine_rounds("sqlite", None, upstream, count, rounds)
        with PostgresServer() as postgres:
            await engine_rounds("postgresql", postgres.create_database(), upstream, count, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.accounts_burst", description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="chats at once (default 500)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per engine (default 2)")
    options = parser.parse_args()
    asyncio.run(main(options.n, options.rounds))
