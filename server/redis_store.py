"""RedisStore: chat logs shared by every process, one Redis Stream per chat (REDIS_URL).

The process running a chat keeps its log in memory too (a MemoryStore), so its own
listeners never wait on Redis; every upstream read is also one XADD, and listeners on
other processes follow with blocking XREAD from their last seq. A cancel is published to
every process; the one running the chat stops it. Redis going away fails new chats (503);
running ones go on for their own listeners, and their log is written up to Redis again
once it is back, so nobody elsewhere sees a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .errors import ChatIdInUse, ChatNotFound, ChatStoreUnavailable
from .events import Done, Failed, LogEvent
from .memory_store import MemoryLog, MemoryLogWriter, MemoryStore, bounded
from .redis_conn import REDIS_DOWN, store_errors
from .redis_log import (
    CANCEL_CHANNEL,
    STREAM_MAXLEN,
    entry,
    entry_seq,
    listeners_key,
    log_key,
    read_entry,
    run_key,
)
from .store import RunControl, Slice

log = logging.getLogger(__name__)

# A running chat's marker lapses this long after its process stops renewing it (a crash).
RUN_TTL_S = 30.0
RENEW_EVERY_S = 5.0
# XREAD blocks for less than the client's socket timeout (server/redis_conn.py).
BLOCK_MS = 5000
READ_ENTRIES = 64
# A listener elsewhere waits this long for Redis to come back before it gives up (503).
OUTAGE_WAIT_S = 30.0
PRESENCE_TTL_S = 3 * BLOCK_MS / 1000
T = TypeVar("T")
LOST = Failed(503, "The chat stopped: the server running it went away")


class RedisLogWriter:
    """A run's log: in this process's memory for its own listeners, and XADDed to Redis."""

    def __init__(self, store: RedisStore, key: str, local: MemoryLogWriter) -> None:
        self.store, self.key, self.local = store, key, local
        self.written = 0  # seq of the last event appended
        self.synced = 0  # seq of the last event Redis holds
        self.ended = False

    @property
    def memory(self) -> MemoryLog:
        return self.local.log

    async def append(self, events: list[LogEvent]) -> None:
        first, self.written = self.written + 1, self.written + len(events)
        self.ended = isinstance(events[-1], Done | Failed)
        await self.local.append(events)
        if self.synced == first - 1:
            try:
                await self._xadd(first, events)
            except REDIS_DOWN as error:
                log.warning("Redis unavailable, chat kept in memory: %s", type(error).__name__)
        if self.synced < self.written or self.ended:
            self.store.forget_or_resync(self)

    async def _xadd(self, first: int, events: list[LogEvent]) -> None:
        redis, key, last = self.store.redis, self.key, first + len(events) - 1
        # One round trip per upstream read: the entry, and the expiry when it changes.
        async with redis.pipeline(transaction=False) as pipe:
            await pipe.xadd(
                log_key(key),
                entry(first, events),
                id=f"{last}-1",
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
            if isinstance(events[-1], Done | Failed):
                await pipe.pexpire(log_key(key), int(self.store.retention_s * 1000))
                await pipe.delete(run_key(key), listeners_key(key))
            elif first == 1:
                ttl_s = self.store.retention_s + RUN_TTL_S
                await pipe.pexpire(log_key(key), int(ttl_s * 1000))
            await pipe.execute()
        self.synced = last

    async def resync(self) -> None:
        """Write what Redis missed while it was away, from what Redis has on."""
        newest = await self.store.redis.xrevrange(log_key(self.key), count=1)
        self.synced = entry_seq(newest[0][0]) if newest else 0
        memory = self.memory
        while self.synced < self.written:
            start = max(self.synced, memory.base) - memory.base
            events = bounded(memory.events, start)
            self.synced = memory.base + start
            await self._xadd(self.synced + 1, events)


class Presence:
    """The run's control, asking Redis before abandoning: listeners elsewhere count too."""

    def __init__(self, store: RedisStore, key: str, run: RunControl) -> None:
        self.store, self.key, self.run = store, key, run

    def cancel(self) -> None:
        self.run.cancel()

    def abandon(self) -> None:
        self.store.spawn(self._abandon_unless_heard())

    async def _abandon_unless_heard(self) -> None:
        redis, key = self.store.redis, listeners_key(self.key)
        try:
            await redis.zremrangebyscore(key, 0, time.time() * 1000)
            elsewhere = int(await redis.zcard(key))
        except REDIS_DOWN:
            elsewhere = 0
        if elsewhere and self.key in self.store.running:
            loop = asyncio.get_running_loop()
            loop.call_later(max(self.store.local.resume_window_s, 1.0), self.abandon)
        else:
            self.run.abandon()


class RedisStore:
    shared = True

    def __init__(self, redis: Redis, resume_window_s: float, retention_s: float) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self.local = MemoryStore(resume_window_s, retention_s)
        self.process_id = secrets.token_hex(8)
        # This process's chats still running, or whose end Redis has not got yet.
        self.running: dict[str, RedisLogWriter] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.spawn(self._hear_cancels())
        self.spawn(self._renew())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def create(self, key: str, run: RunControl) -> RedisLogWriter:
        ttl_ms = int(RUN_TTL_S * 1000)
        with store_errors():
            if not await self.redis.set(run_key(key), self.process_id, nx=True, px=ttl_ms):
                raise ChatIdInUse(f"A chat with id {key.partition(':')[2]} is still running")
            # The ended chat it replaces, if any.
            await self.redis.delete(log_key(key), listeners_key(key))
        writer = RedisLogWriter(self, key, await self.local.create(key, Presence(self, key, run)))
        self.running[key] = writer
        return writer

    def forget_or_resync(self, writer: RedisLogWriter) -> None:
        """Off the running chats once its end is in Redis; until then _renew writes it up."""
        synced = writer.ended and writer.synced >= writer.written
        if synced and self.running.get(writer.key) is writer:
            del self.running[writer.key]

    async def exists(self, key: str) -> bool:
        if key in self.running:
            return True
        with store_errors():
            return bool(await self.redis.exists(log_key(key)))

    async def cancel(self, key: str) -> bool:
        if key in self.running:
            return await self.local.cancel(key)
        with store_errors():
            if not await self.redis.exists(run_key(key)):
                return False
            await self.redis.publish(CANCEL_CHANNEL, key)
        return True

    async def read(self, key: str, after: int) -> AsyncIterator[Slice]:
        if key in self.running:
            async for piece in self.local.read(key, after):
                yield piece
            return
        async for piece in self._read_elsewhere(key, after):
            yield piece

    async def _read_elsewhere(self, key: str, after: int) -> AsyncIterator[Slice]:
        """Follow a chat through its Redis Stream, whichever process runs it."""
        if not await self.exists(key):
            raise ChatNotFound(key.partition(":")[2])
        seq, last_id, member = after, f"{after}-1", secrets.token_hex(8)
        present_until = 0.0
        try:
            if await self._ended_by(key, seq):
                return
            while True:
                if time.time() > present_until - PRESENCE_TTL_S / 2:
                    present_until = time.time() + PRESENCE_TTL_S
                    presence = {member: present_until * 1000}
                    await self._redis(partial(self.redis.zadd, listeners_key(key), presence))
                streams: dict[Any, Any] = {log_key(key): last_id}
                reply: Any = await self._redis(
                    partial(self.redis.xread, streams, count=READ_ENTRIES, block=BLOCK_MS)
                )
                if not reply:
                    if await self._ended_by(key, seq):
                        return
                    continue
                for entry_id, fields in reply[0][1]:
                    first, events = read_entry(fields)
                    if first > seq + 1:  # trimmed past MAXLEN: never a gap
                        raise ChatNotFound(key.partition(":")[2])
                    events = events[seq + 1 - first :]
                    last_id = entry_id
                    if not events:
                        continue
                    yield seq + 1, events
                    seq += len(events)
                    if isinstance(events[-1], Done | Failed):
                        return
        finally:
            # Should Redis be away, the presence lapses by itself.
            with contextlib.suppress(*REDIS_DOWN):
                await self.redis.zrem(listeners_key(key), member)

    async def _ended_by(self, key: str, seq: int) -> bool:
        """Whether a listener that has `seq` has seen the chat's end; a chat that runs
        nowhere and has no end (its process died) ends now with LOST."""
        if await self._redis(partial(self.redis.exists, run_key(key))):
            return False
        newest: Any = await self._redis(partial(self.redis.xrevrange, log_key(key), count=1))
        if not newest:
            raise ChatNotFound(key.partition(":")[2])
        _, events = read_entry(newest[0][1])
        if isinstance(events[-1], Done | Failed):
            return entry_seq(newest[0][0]) <= seq
        # Running nowhere and no final event: its process died. End it for every listener,
        # once (another listener may have been first), not leave them open forever.
        lost_seq = entry_seq(newest[0][0]) + 1
        with contextlib.suppress(ResponseError):
            await self._redis(
                partial(self.redis.xadd, log_key(key), entry(lost_seq, [LOST]), id=f"{lost_seq}-1")
            )
        return False

    async def _redis(self, command: Callable[[], Awaitable[T]]) -> T:
        """A listener's command, waiting out a Redis restart of up to OUTAGE_WAIT_S."""
        deadline = time.monotonic() + OUTAGE_WAIT_S
        while True:
            try:
                return await command()
            except REDIS_DOWN:
                if time.monotonic() > deadline:
                    raise ChatStoreUnavailable() from None
                await asyncio.sleep(0.2)

    async def _hear_cancels(self) -> None:
        """Stop this process's chats that a cancel elsewhere named; resubscribe after outages."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            key = message["data"].decode()
                            if key in self.running:
                                await self.local.cancel(key)
            except REDIS_DOWN:
                await asyncio.sleep(0.5)

    async def _renew(self) -> None:
        """Keep this process's running chats marked as running, and write up what Redis missed."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            for writer in list(self.running.values()):
                try:
                    if writer.synced < writer.written:
                        await writer.resync()
                        self.forget_or_resync(writer)
                    if not writer.ended:
                        ttl_ms = int(RUN_TTL_S * 1000)
                        async with self.redis.pipeline(transaction=False) as pipe:
                            await pipe.set(run_key(writer.key), self.process_id, px=ttl_ms)
                            log_ttl_ms = int(self.retention_s * 1000) + ttl_ms
                            await pipe.pexpire(log_key(writer.key), log_ttl_ms)
                            await pipe.execute()
                except REDIS_DOWN:
                    break

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks))
        await self.local.close()
