"""RedisStore: chat logs shared by every process, one Redis Stream per chat (REDIS_URL).

The process running a chat keeps its log in memory too (a MemoryStore), so its own
listeners never wait on Redis; the process's one LogFlusher writes every chat's new events
up to Redis in one pipelined round trip (server/store/redis_log.py), and listeners on other
processes follow through the streams (server/store/redis_follow.py). A cancel is published
to every process; the one running the chat stops it. Redis going away fails new chats (503);
running ones go on for their own listeners, and their log is written up to Redis once it is
back, so nobody elsewhere sees a gap.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from redis.asyncio import Redis

from server.errors import ChatError, ChatIdInUse, ChatNotFound, ChatStoreUnavailable
from server.store.events import Live, RunControl, Slice
from server.store.memory import MemoryStore
from server.store.redis_conn import REDIS_DOWN, outage_log, stop_tasks, store_errors
from server.store.redis_entries import CANCEL_CHANNEL, listeners_key, log_key, run_key
from server.store.redis_follow import Follower, read_elsewhere
from server.store.redis_log import RETRY_S, RUN_TTL_S, LogFlusher, RedisLogWriter

RENEW_EVERY_S = 5.0
# Set by every process, never expiring: when it is missing, Redis has come back empty.
UP_KEY = "chatrelay:up"
# Set for a while by a process that finds Redis back after an outage, or empty: meanwhile
# each process writes its running chats' keys again (within a renewal), and a chat not
# found is a 503 to retry, not a 404.
RESTORING_KEY = "chatrelay:restoring"
RESTORING_MS = int(2 * RENEW_EVERY_S * 1000)
# Chat starts, all those waiting in one round trip: each chat's key marked as running here
# unless it runs already, and the ended chat it replaces, if any, dropped. ARGV: this
# process, the mark's expiry in ms, then records `len chat` of each chat's key prefix
# (`chatrelay:chat:{key}:`). The reply has one character per chat: 1 started, 0 running.
CLAIM = """
local blob, out, pos = ARGV[3], {}, 1
while pos <= #blob do
  local space = string.find(blob, ' ', pos, true)
  local len = tonumber(string.sub(blob, pos, space - 1))
  local chat = string.sub(blob, space + 1, space + len)
  pos = space + len + 1
  if redis.call('SET', chat .. 'run', ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('DEL', chat .. 'log', chat .. 'listeners')
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
return table.concat(out)
"""
# The longest a forget waits for this process's flush of a chat's end.
FORGET_WAIT_S = 2.0
# At close, the longest the last flush may take (the chats' ends, at shutdown).
DRAIN_S = 3.0


class SharedControl:
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
            elsewhere = 1  # unknown while Redis is away: an outage abandons no chat
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
        self.flusher = LogFlusher(redis, retention_s, self._forget)
        self.follower = Follower(redis, self.process_id)
        self._claim = redis.register_script(CLAIM)
        self.starting: list[tuple[bytes, asyncio.Future[bool]]] = []
        self.claiming = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.spawn(self.flusher.run())
        self.spawn(self._hear_cancels())
        self.spawn(self._renew())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def create(self, key: str, run: RunControl) -> RedisLogWriter:
        started = asyncio.get_running_loop().create_future()
        self.starting.append((log_key(key)[:-3].encode(), started))
        if not self.claiming:
            self.claiming = True
            self.spawn(self._claim_waiting())
        with store_errors():
            if not await started:
                raise ChatIdInUse(f"A chat with id {key.partition(':')[2]} is still running")
        local = await self.local.create(key, SharedControl(self, key, run))
        writer = self.running[key] = RedisLogWriter(self.flusher, key, local)
        return writer

    async def _claim_waiting(self) -> None:
        """Every chat start waiting, in one call; those that come meanwhile in the next.
        So a burst of starts takes a round trip or two and one connection, not one each."""
        try:
            while self.starting:
                batch, self.starting = self.starting, []
                records = b"".join(b"%d %s" % (len(chat), chat) for chat, _ in batch)
                ttl_ms = int(RUN_TTL_S * 1000)
                try:
                    reply: bytes = await self._claim(args=[self.process_id, ttl_ms, records])
                except Exception as error:  # each start raises it: a 503 for Redis away
                    for _, started in batch:
                        if not started.done():
                            started.set_exception(error)
                    continue
                for (_, started), code in zip(batch, reply, strict=True):
                    if not started.done():
                        started.set_result(code == ord("1"))
        finally:
            self.claiming = False

    def _forget(self, writer: RedisLogWriter) -> None:
        """Off the running chats once Redis has its end."""
        if self.running.get(writer.key) is writer:
            del self.running[writer.key]

    async def exists(self, key: str) -> bool:
        if key in self.running:
            return True
        # A chat runs from its claim, before Redis has any of its text (a model thinking).
        with store_errors():
            return bool(await self.redis.exists(run_key(key), log_key(key)))

    async def not_found(self, chat_id: str) -> ChatError:
        """404, but 503 while Redis may be getting its chats back: it came back empty, and
        the processes running them write their keys again (RESTORING)."""
        with store_errors():
            up, restoring = await self.redis.mget(UP_KEY, RESTORING_KEY)
        if up is None or restoring is not None:
            return ChatStoreUnavailable()
        return ChatNotFound(chat_id)

    async def forget(self, key: str) -> None:
        # Once Redis has this process's end of it: a flush after the DEL would write it anew.
        writer = self.running.get(key)
        if writer is not None:
            await writer.until_end_written(FORGET_WAIT_S)
        await self.local.forget(key)
        with store_errors():
            await self.redis.delete(log_key(key), listeners_key(key))

    async def cancel(self, key: str) -> bool:
        if key in self.running:
            return await self.local.cancel(key)
        with store_errors():
            if not await self.redis.exists(run_key(key)):
                return False
            await self.redis.publish(CANCEL_CHANNEL, key)
        return True

    def read(self, key: str, after: int, live: Live | None = None) -> AsyncIterator[Slice]:
        # The per-token path: this process's own chats are read straight from memory.
        if key in self.running:
            return self.local.read(key, after, live)
        return self._read_elsewhere(key, after)

    async def _read_elsewhere(self, key: str, after: int) -> AsyncIterator[Slice]:
        # A chat kept nowhere is ChatNotFound from its first check (ended_by).
        async for piece in read_elsewhere(self.redis, self.follower, key, after):
            yield piece

    async def _hear_cancels(self) -> None:
        """Stop this process's chats that a cancel elsewhere named; resubscribe after outages."""
        while not self.closed:
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
        """Keep this process's running chats marked as running, all in one round trip, and
        write their keys again when Redis lost them (RESTORING)."""
        # The first round: this process has nothing in Redis yet that could be missing.
        restore: bool | None = False
        while not self.closed:
            try:
                await self._renew_once(restore)
                restore, pause = None, RENEW_EVERY_S
            except Exception as error:  # whatever it was, the next round retries
                if not isinstance(error, REDIS_DOWN):
                    outage_log.failed(error)
                # The round after the outage restores.
                restore, pause = True, RETRY_S
            await asyncio.sleep(pause)

    async def _renew_once(self, restore: bool | None) -> None:
        """One round. `restore`: Redis was away since the last one (True), or may have
        restarted empty in between (None: UP_KEY tells)."""
        ttl_ms = int(RUN_TTL_S * 1000)
        log_ttl_ms = int(self.retention_s * 1000) + ttl_ms
        running = [w for w in self.running.values() if not w.memory.ended]
        async with self.redis.pipeline(transaction=False) as pipe:
            await pipe.set(UP_KEY, 1, nx=True)
            if restore:
                await pipe.set(RESTORING_KEY, 1, px=RESTORING_MS)
            for writer in running:
                await pipe.set(run_key(writer.key), self.process_id, px=ttl_ms)
                await pipe.pexpire(log_key(writer.key), log_ttl_ms)
            replies = await pipe.execute()
        if restore is None and replies[0]:  # UP_KEY was missing: Redis came back empty
            await self.redis.set(RESTORING_KEY, 1, px=RESTORING_MS)
        logs_kept = replies[len(replies) - 2 * len(running) :][1::2]
        for writer, kept in zip(running, logs_kept, strict=True):
            if not kept and writer.synced > 0:
                # Redis lost the log: the flusher writes it again from the chat's start.
                writer.synced = 0
                self.flusher.mark(writer)

    async def close(self) -> None:
        await self.flusher.drain(DRAIN_S)
        # Each loop also stops by the flag, and the wait is bounded: a cancel that lands
        # inside a redis-py command can be lost, and a close must never hang the shutdown.
        self.closed = self.flusher.closed = self.follower.closed = True
        await stop_tasks(self.tasks)
        await self.follower.close()
        await self.local.close()
