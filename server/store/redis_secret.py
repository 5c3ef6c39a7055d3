"""Processes sharing one Redis must share one SESSION_SECRET: say so at start when they don't.

A session cookie made by one process is an empty session on a process with another secret:
its chats' owner is unknown there, so resumes and stops on that process are 404. Each process
adds a fingerprint of its secret (a hash, never the secret) to a sorted set, scored by when it
started, and reads the others of the last day: one that differs is a warning line. A process
that stops takes its own out, so changing the secret on every process warns nobody.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from server.config import settings_key
from server.store.redis_conn import REDIS_CONNECT_TIMEOUT_S, REDIS_DOWN, redis_key

log = logging.getLogger(__name__)

SECRETS_KEY = "chatrelay:session-secrets"
# How long a process's start is remembered: processes restarted together within it compare.
REMEMBER_S = 24 * 3600


def secret_fingerprint(secret: str) -> str:
    """A hash that tells two secrets apart and reveals neither."""
    return hashlib.sha256(b"chatrelay session secret fingerprint:" + secret.encode()).hexdigest()[
        :32
    ]


async def check_session_secret(redis: Redis, secret: str) -> bool:
    """Record this process's secret; False (and a warning line) when another process on this
    Redis started with a different one within REMEMBER_S. Redis away: nothing to compare."""
    mine = secret_fingerprint(secret)
    now = time.time()
    try:
        async with asyncio.timeout(REDIS_CONNECT_TIMEOUT_S * 2), redis.pipeline() as pipe:
            await pipe.zadd(SECRETS_KEY, {mine: now})
            await pipe.zremrangebyscore(SECRETS_KEY, "-inf", now - REMEMBER_S)
            await pipe.expire(SECRETS_KEY, int(REMEMBER_S))
            await pipe.zrange(SECRETS_KEY, 0, -1)
            *_, seen = await pipe.execute()
    except REDIS_DOWN:
        return True
    others = {f.decode() if isinstance(f, bytes) else str(f) for f in seen} - {mine}
    if not others:
        return True
    log.warning(
        "another process on this Redis started with a different SESSION_SECRET in the last "
        "%d hours: a session made on one is empty on the other, so its chats cannot be "
        "resumed or stopped there; give every process the same SESSION_SECRET",
        REMEMBER_S // 3600,
    )
    return False


async def forget_session_secret(redis: Redis, secret: str) -> None:
    try:
        async with asyncio.timeout(REDIS_CONNECT_TIMEOUT_S):
            await redis.zrem(SECRETS_KEY, secret_fingerprint(secret))
    except REDIS_DOWN:
        pass


async def session_secret_check(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the Redis client's): compare at start, take this one out at the end."""
    redis, secret = app[redis_key], app[settings_key].session_secret
    if redis is None or secret is None:
        yield
        return
    await check_session_secret(redis, secret)
    try:
        yield
    finally:
        await forget_session_secret(redis, secret)
