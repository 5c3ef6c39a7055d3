"""A chat's log in Redis, followed by listeners of this process on chats that run on
another one (redis_entries.py says what an entry is).

They first catch up by themselves with short, non-blocking XREADs from their seq (a replay,
in bounded batches); then they wait for new entries on the process's one blocking XREAD over
every followed stream (Follower), so a thousand listeners hold one connection, not a
thousand. A listener that falls behind that shared read goes back to catching up by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from redis.asyncio import Redis

from server.errors import ChatNotFound, ChatStoreUnavailable
from server.store.events import Done, Failed, Slice
from server.store.redis_conn import REDIS_DOWN, outage_log, stop_tasks
from server.store.redis_entries import (
    PREFIX,
    entry,
    entry_seq,
    listeners_key,
    log_key,
    read_entry,
    run_key,
)

# The shared XREAD blocks for less than the client's socket timeout (server/store/redis_conn.py);
# a listener that heard nothing for this long checks that its chat still runs somewhere.
BLOCK_MS = 5000
READ_ENTRIES = 64
# Entries the shared read holds for one listener before it must catch up by itself.
MAX_INBOX = 16
# A listener waits this long for Redis to come back before it gives up (503).
OUTAGE_WAIT_S = 30.0
PRESENCE_TTL_S = 3 * BLOCK_MS / 1000
LOST = Failed(503, "The chat stopped: the server running it went away")
# How long a chat's keys may be missing while its process still runs it: that process
# renews them every few seconds (and at once when Redis answers again after an outage).
ABSENT_S = 15.0
T = TypeVar("T")
Entry = tuple[Any, dict[bytes, bytes]]


class Listener:
    """One listener's place in the shared read: the entries it was handed, not yet taken."""

    __slots__ = ("arrived", "delivered", "inbox")

    def __init__(self, seq: int) -> None:
        self.delivered = seq  # the seq of the last entry handed to it
        self.inbox: list[Entry] | None = []  # None: fell behind, catch up by yourself
        self.arrived: asyncio.Future[None] | None = None

    def hand(self, item: Entry) -> None:
        if self.inbox is not None:
            self.inbox.append(item)
            if len(self.inbox) > MAX_INBOX:
                self.inbox = None
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    async def take(self) -> list[Entry] | None:
        """What arrived (waiting up to BLOCK_MS for something); None when behind."""
        if self.inbox == []:
            self.arrived = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived, BLOCK_MS / 1000)
            self.arrived = None
        taken, self.inbox = self.inbox, ([] if self.inbox is not None else None)
        return taken


class Follower:
    """This process's one blocking XREAD over every stream its listeners follow."""

    def __init__(self, redis: Redis, process_id: str) -> None:
        self.redis = redis
        self.streams: dict[str, set[Listener]] = {}
        # A listener that joins while the read blocks wakes it with an entry here.
        self.wake_key, self.wake_id = f"{PREFIX}wake:{process_id}", "0-0"
        self.reading = self.woken = self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.wakes: set[asyncio.Task[None]] = set()

    def join(self, stream: str, listener: Listener) -> None:
        self.streams.setdefault(stream, set()).add(listener)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        elif self.reading and not self.woken:
            self.woken = True
            wake = asyncio.ensure_future(self._wake())
            self.wakes.add(wake)
            wake.add_done_callback(self.wakes.discard)

    def leave(self, stream: str, listener: Listener) -> None:
        listeners = self.streams.get(stream)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self.streams[stream]

    async def _wake(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            async with self.redis.pipeline(transaction=False) as pipe:
                await pipe.xadd(self.wake_key, {"w": 1}, maxlen=1, approximate=False)
                await pipe.pexpire(self.wake_key, 60_000)
                await pipe.execute()

    async def close(self) -> None:
        await stop_tasks([*self.wakes, *([self.task] if self.task is not None else [])])

    async def _run(self) -> None:
        while self.streams and not self.closed:
            ids: dict[Any, Any] = {
                stream: f"{min(one.delivered for one in listeners)}-1"
                for stream, listeners in self.streams.items()
            }
            ids[self.wake_key] = self.wake_id
            self.reading, self.woken = True, False
            try:
                reply: Any = await self.redis.xread(ids, count=READ_ENTRIES, block=BLOCK_MS)
            except Exception as error:  # whatever it was, the next read retries
                # Listeners find out by themselves, each within BLOCK_MS (see read_elsewhere).
                if not isinstance(error, REDIS_DOWN):
                    outage_log.failed(error)
                await asyncio.sleep(0.2)
                continue
            finally:
                self.reading = False
            for name, entries in reply or []:
                stream = name.decode()
                if stream == self.wake_key:
                    self.wake_id = entries[-1][0]
                    continue
                for listener in self.streams.get(stream, ()):
                    for item in entries:
                        seq = entry_seq(item[0])
                        if seq > listener.delivered:
                            listener.delivered = seq
                            listener.hand(item)


async def read_elsewhere(
    redis: Redis, follower: Follower, key: str, after: int
) -> AsyncIterator[Slice]:
    """Follow a chat through its Redis Stream, whichever process runs it."""
    seq, stream, presence, watch = after, log_key(key), Presence(redis, key), Absence()
    try:
        if (end := await ended_by(redis, key, seq, watch)) is not None:
            yield end
            return
        while True:
            await presence.renew()
            # Catch up by itself, in bounded reads that never block.
            while True:
                reply: Any = await patient(
                    partial(redis.xread, {stream: f"{seq}-1"}, count=READ_ENTRIES)
                )
                entries: list[Entry] = reply[0][1] if reply else []
                for first, events in new_events(key, seq, entries):
                    yield first, events
                    seq += len(events)
                    if isinstance(events[-1], Done | Failed):
                        return
                if len(entries) < READ_ENTRIES:
                    break
            # Then live, on the shared read, until it leaves this listener behind.
            listener = Listener(seq)
            follower.join(stream, listener)
            try:
                while (taken := await listener.take()) is not None:
                    if not taken and (end := await ended_by(redis, key, seq, watch)) is not None:
                        yield end
                        return
                    for first, events in new_events(key, seq, taken):
                        yield first, events
                        seq += len(events)
                        if isinstance(events[-1], Done | Failed):
                            return
                    await presence.renew()
            finally:
                follower.leave(stream, listener)
    finally:
        await presence.end()


class Presence:
    """A listener elsewhere counts as listening: the run's process asks before abandoning."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, listeners_key(key)
        self.member, self.until = secrets.token_hex(8), 0.0

    async def renew(self) -> None:
        if time.time() > self.until - PRESENCE_TTL_S / 2:
            self.until = time.time() + PRESENCE_TTL_S
            await patient(partial(self.redis.zadd, self.key, {self.member: self.until * 1000}))

    async def end(self) -> None:
        # Should Redis be away, the presence lapses by itself.
        with contextlib.suppress(*REDIS_DOWN):
            await self.redis.zrem(self.key, self.member)


def new_events(key: str, seq: int, entries: list[Entry]) -> list[Slice]:
    """The entries' events after `seq`, as slices; a gap (trimmed past MAXLEN) is a 404."""
    slices: list[Slice] = []
    for _, fields in entries:
        first, events = read_entry(fields)
        if first > seq + 1:
            raise ChatNotFound(key.partition(":")[2])
        events = events[seq + 1 - first :]
        if events:
            slices.append((seq + 1, events))
            seq += len(events)
    return slices


class Absence:
    """Since when a listener has found its chat running nowhere, without an end."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None

    def lasted(self) -> bool:
        """Whether it has lasted ABSENT_S: until then the chat may still run somewhere."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return now - self.since >= ABSENT_S


# Write LOST only while the chat's run key is still missing: the process running it may
# have come back meanwhile, and only that process ends a chat it runs.
WRITE_LOST = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.pcall('XADD', KEYS[2], ARGV[1], 'f', ARGV[2], 'e', ARGV[3])
return 1
"""


async def ended_by(redis: Redis, key: str, seq: int, absence: Absence) -> Slice | None:
    """The chat's final event when a listener that has `seq` has reached or passed it (a
    read always ends with it); None while the chat runs, or may run.

    A chat that runs nowhere and has no end ends with LOST (its process died), but only
    once that has lasted ABSENT_S: after Redis came back empty, the process running the
    chat writes its keys again (server/store/redis_store.py), and until then they are
    missing. A listener never ends a chat that another process runs."""
    if await patient(partial(redis.exists, run_key(key))):
        absence.since = None
        return None
    newest: Any = await patient(partial(redis.xrevrange, log_key(key), count=1))
    if newest:
        _, events = read_entry(newest[0][1])
        final_seq = entry_seq(newest[0][0])
        if isinstance(events[-1], Done | Failed):
            return (final_seq, [events[-1]]) if final_seq <= seq else None
    if not absence.lasted():
        return None
    if not newest:
        raise ChatNotFound(key.partition(":")[2])
    # Its process died: end it for every listener, once (another listener may have been
    # first), not leave them open forever.
    lost_seq = entry_seq(newest[0][0]) + 1
    lost = redis.register_script(WRITE_LOST)
    fields = entry(lost_seq, [LOST])
    args = [f"{lost_seq}-1", fields["f"], fields["e"]]
    await patient(partial(lost, keys=[run_key(key), log_key(key)], args=args))
    return None


async def patient(command: Callable[[], Awaitable[T]]) -> T:
    """A listener's command, waiting out a Redis restart of up to OUTAGE_WAIT_S."""
    deadline = time.monotonic() + OUTAGE_WAIT_S
    while True:
        try:
            return await command()
        except REDIS_DOWN:
            if time.monotonic() > deadline:
                raise ChatStoreUnavailable() from None
            await asyncio.sleep(0.2)
