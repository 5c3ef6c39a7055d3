"""The Redis store's cost per token, in-process: N chats append one token each, again and
again, and the process's one writer sends them to a redis-server of its own.

    .venv/bin/python -m bench.redis_flush [--chats 500] [--rounds 100]

Prints process CPU per token (the memory log's append included), on uvloop. A round is
every chat's one token, then 2 ms of quiet, as paced streams give.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.loops import run_fast
from server.config import Settings
from server.store.events import Delta
from server.store.redis_conn import make_redis
from server.store.redis_store import RedisStore


class Run:
    def cancel(self) -> None: ...

    def abandon(self) -> None: ...


async def cpu_per_token_us(url: str, chats: int, rounds: int) -> float:
    client = make_redis(Settings(redis_url=url))
    assert client is not None
    store = RedisStore(client, 300.0, 600.0)
    try:
        logs = [await store.create(f"o:c{n}", Run()) for n in range(chats)]
        started = time.process_time()
        for _ in range(rounds):
            for log in logs:
                await log.append([Delta(" token")])
            await asyncio.sleep(0.002)
        await store.flusher.drain(10.0)
        return (time.process_time() - started) / (chats * rounds) * 1e6
    finally:
        await store.close()
        await client.aclose()


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="chatrelay-flush-") as tmp:
        redis, url = procs.start_redis(Path(tmp), procs.core_sets()[1])
        try:
            us = await cpu_per_token_us(url, args.chats, args.rounds)
            print(f"{args.chats} chats: {us:.1f} µs CPU per token")
        finally:
            redis.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=100)
    return run_fast(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
