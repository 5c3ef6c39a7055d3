"""A chat's log in Redis: one Stream per chat, one entry per flush of its new events, the
entry's id the seq of its last event, so a listener reads on from the last seq it has with
XREAD; and the process's one writer of those entries (LogFlusher)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from .events import Delta, Done, Failed, LogEvent, Reasoning
from .memory_store import MemoryLog, MemoryLogWriter, bounded
from .redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)

PREFIX = "chatrelay:chat:"
# Entries a stream keeps (one per upstream read, or a bounded re-sync batch): a chat keeps
# its text within it; a listener asking from before the oldest entry kept gets 404.
STREAM_MAXLEN = 50_000
# A running chat's marker lapses this long after its process stops renewing it (a crash).
RUN_TTL_S = 30.0
# One flush's entries together stay about this small (a catch-up after an outage is long).
MAX_FLUSH_BYTES = 1024 * 1024
# After a failed flush, the next try: the log waits in memory meanwhile.
RETRY_S = 0.5
# The longest a run's end waits for Redis to have it: less than a shutdown's wind-down
# (server/runs.py WIND_DOWN_S), which cancels what is still going then.
END_WAIT_S = 1.0


def log_key(key: str) -> str:
    return PREFIX + "{" + key + "}:log"


def run_key(key: str) -> str:
    """Set while the chat runs, by the process that runs it, renewed while it lives."""
    return PREFIX + "{" + key + "}:run"


def listeners_key(key: str) -> str:
    """Listeners on other processes: members scored by when their presence lapses (ms)."""
    return PREFIX + "{" + key + "}:listeners"


CANCEL_CHANNEL = "chatrelay:cancel"


def encode_events(events: list[LogEvent]) -> bytes:
    rows: list[list[Any]] = []
    for event in events:
        if isinstance(event, Delta):
            rows.append(["d", event.content])
        elif isinstance(event, Reasoning):
            rows.append(["r", event.content])
        elif isinstance(event, Done):
            rows.append(["done", event.finish_reason, event.usage])
        else:
            rows.append(["error", event.status, event.message, event.retry_after])
    return orjson.dumps(rows)


def decode_events(data: bytes) -> list[LogEvent]:
    events: list[LogEvent] = []
    for row in orjson.loads(data):
        kind = row[0]
        if kind == "d":
            events.append(Delta(row[1]))
        elif kind == "r":
            events.append(Reasoning(row[1]))
        elif kind == "done":
            events.append(Done(row[1], row[2]))
        else:
            events.append(Failed(row[1], row[2], row[3]))
    return events


def entry(first_seq: int, events: list[LogEvent]) -> dict[Any, Any]:
    return {"f": first_seq, "e": encode_events(events)}


def read_entry(fields: dict[bytes, bytes]) -> tuple[int, list[LogEvent]]:
    return int(fields[b"f"]), decode_events(fields[b"e"])


def entry_seq(entry_id: object) -> int:
    """The seq of an entry's last event: its id is `<seq>-1`."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.partition("-")[0])


class RedisLogWriter:
    """A run's log: in this process's memory for its own listeners, and written up to Redis
    by the process's one LogFlusher, so a run never waits on Redis for a token."""

    __slots__ = ("_end_written", "dirty", "flusher", "key", "local", "synced")

    def __init__(self, flusher: LogFlusher, key: str, local: MemoryLogWriter) -> None:
        self.flusher, self.key, self.local = flusher, key, local
        self.synced = 0  # seq of the last event Redis holds
        self.dirty = False  # waiting in the flusher's next batch
        self._end_written: asyncio.Future[None] | None = None

    @property
    def memory(self) -> MemoryLog:
        return self.local.log

    async def append(self, events: list[LogEvent]) -> None:
        end_written = None
        if isinstance(events[-1], Done | Failed):
            end_written = self._end_written = asyncio.get_running_loop().create_future()
        self.flusher.mark(self)
        await self.local.append(events)
        if end_written is not None:
            # Once the chat's end is in Redis its key is free again, here and elsewhere; a
            # Redis that is away (or slow) does not hold the run's end up.
            await self.flusher.until_written(end_written)

    def pending(self) -> tuple[int, list[LogEvent]] | None:
        """The seq of the first event Redis lacks and a bounded batch from it, or None."""
        memory = self.memory
        start = max(self.synced, memory.base) - memory.base
        if start >= len(memory.events):
            return None
        return memory.base + start + 1, bounded(memory.events, start)

    def written(self, last: int) -> None:
        self.synced = last
        if self._end_written is not None and self.in_sync and not self._end_written.done():
            self._end_written.set_result(None)

    @property
    def in_sync(self) -> bool:
        return self.synced >= self.memory.last_seq


# A writer's entry in a flush: the writer, its last seq, the index of its XADD's result.
Planned = tuple[RedisLogWriter, int, int]


class LogFlusher:
    """The process's one writer to Redis: every run's new events since the last flush, one
    XADD per chat, go out as one pipelined round trip; while it is in flight the next batch
    gathers. So a process uses one connection for its logs however many chats it runs, and
    Redis going away is one warning, not one per token."""

    def __init__(
        self, redis: Redis, retention_s: float, ended: Callable[[RedisLogWriter], None]
    ) -> None:
        self.redis, self.retention_s, self.ended = redis, retention_s, ended
        self.batch: list[RedisLogWriter] = []
        self.wake = asyncio.Event()
        self.flushing = False
        self.away: Exception | None = None  # what the last flush failed with

    def mark(self, writer: RedisLogWriter) -> None:
        if not writer.dirty:
            writer.dirty = True
            self.batch.append(writer)
            self.wake.set()

    async def until_written(self, written: asyncio.Future[None]) -> None:
        if self.away is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(written), END_WAIT_S)

    async def drain(self, timeout_s: float) -> None:
        """At close: what is left goes out, unless Redis is away."""
        deadline = time.monotonic() + timeout_s
        while (self.batch or self.flushing) and self.away is None:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.batch = self.batch, []
            for writer in batch:
                writer.dirty = False
            self.flushing = True
            try:
                await self._flush(batch)
            except (*REDIS_DOWN, ResponseError) as error:
                for writer in batch:
                    self.mark(writer)
                if self.away is None:
                    log.warning(
                        "Redis unavailable (%s): %d chats kept in memory until it is back",
                        type(error).__name__,
                        len(batch),
                    )
                self.away = error
                await asyncio.sleep(RETRY_S)
                continue
            finally:
                self.flushing = False
            if self.away is not None:
                self.away = None
                log.info("Redis is back: what it missed of running chats is written up")

    async def _flush(self, batch: list[RedisLogWriter]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            planned = await self._queue(pipe, batch)
            if not planned:
                return
            results = await pipe.execute(raise_on_error=False)
        refused: ResponseError | None = None
        for writer, last, index in planned:
            result = results[index]
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                refused = result
                continue
            # Refused as not newer: a flush retried after a lost reply, Redis has it already.
            # None: the stream is gone (a Redis restarted empty), written again from the start.
            writer.written(0 if result is None else last)
            if not writer.in_sync:
                self.mark(writer)
            elif writer.memory.ended:
                self.ended(writer)
        if refused is not None:
            raise refused

    async def _queue(self, pipe: Pipeline, batch: list[RedisLogWriter]) -> list[Planned]:
        """Each writer's next entry into `pipe`: (writer, its last seq, its XADD's index)."""
        planned: list[Planned] = []
        size = 0
        for writer in batch:
            piece = writer.pending() if size < MAX_FLUSH_BYTES else None
            if piece is None:
                if not writer.in_sync:
                    self.mark(writer)  # the next flush: this one is full
                continue
            first, events = piece
            last, key = first + len(events) - 1, log_key(writer.key)
            data = encode_events(events)
            size += len(data)
            planned.append((writer, last, len(pipe)))
            # NOMKSTREAM once Redis had some: a stream that is gone answers None.
            await pipe.xadd(key, {"f": first, "e": data}, id=f"{last}-1", maxlen=STREAM_MAXLEN,
                      approximate=True, nomkstream=writer.synced > 0)  # fmt: skip
            if isinstance(events[-1], Done | Failed):
                await pipe.pexpire(key, int(self.retention_s * 1000))
                await pipe.delete(run_key(writer.key), listeners_key(writer.key))
            elif first == 1:
                await pipe.pexpire(key, int((self.retention_s + RUN_TTL_S) * 1000))
        return planned
