"""MemoryStore: chat logs in this process's memory, bounded, for one process without Redis.

Bounds: a running chat keeps at most MAX_CHAT_CHARS of its newest text (a listener asking
for older text gets 404); all logs together keep about MAX_STORE_CHARS, past which the
oldest ended chats go first; an ended chat goes after CHAT_RETENTION_S. A log holds the
chat's events only, never its request.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator

from .errors import ChatIdInUse, ChatNotFound
from .events import Done, Failed, LogEvent
from .store import MAX_READ_CHARS, MAX_READ_EVENTS, RunControl, Slice

MAX_CHAT_CHARS = 16 * 1024 * 1024
MAX_STORE_CHARS = 256 * 1024 * 1024
# A listener of this process this far behind pauses its chat's upstream (no unbounded buffer).
MAX_LAG_CHARS = 1024 * 1024


def _chars(events: list[LogEvent]) -> int:
    # The per-token path: one event per upstream read, most of the time.
    if len(events) == 1:
        event = events[0]
        return 0 if isinstance(event, Done | Failed) else len(event.content)
    return sum(len(e.content) for e in events if not isinstance(e, Done | Failed))


class Reader:
    __slots__ = ("chars",)

    def __init__(self, chars: int) -> None:
        self.chars = chars  # the text up to this reader's seq, in the log's `written` terms


class MemoryLog:
    """One chat's events; `base` is the seq before the first one kept."""

    def __init__(self, run: RunControl | None) -> None:
        self.run = run
        self.events: list[LogEvent] = []
        self.base = 0
        self.kept = 0  # chars of text held now
        self.written = 0  # chars of text ever appended
        self.ended = False
        self.readers: set[Reader] = set()
        # One future per waiting reader: a reader cancelled while waiting cancels only its own.
        self.waiters: list[asyncio.Future[None]] = []
        self.caught_up: asyncio.Future[None] | None = None
        self.window: asyncio.TimerHandle | None = None

    @property
    def last_seq(self) -> int:
        return self.base + len(self.events)

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def trim(self, limit: int) -> None:
        drop, chars = 0, self.kept
        while chars > limit and drop < len(self.events) - 1:
            chars -= _chars(self.events[drop : drop + 1])
            drop += 1
        del self.events[:drop]
        self.base += drop
        self.kept = chars


class MemoryLogWriter:
    """The run's end of a MemoryLog."""

    def __init__(self, store: MemoryStore, key: str, log: MemoryLog) -> None:
        self._store, self._key, self.log = store, key, log

    async def append(self, events: list[LogEvent]) -> None:
        log = self.log
        if log.ended:
            return
        log.events += events
        chars = _chars(events)
        log.kept += chars
        log.written += chars
        self._store.total += chars
        if isinstance(events[-1], Done | Failed):
            self._store.ended(self._key, log)
        elif log.kept > MAX_CHAT_CHARS:
            kept = log.kept
            log.trim(MAX_CHAT_CHARS)
            self._store.total -= kept - log.kept
        log.wake()
        while log.readers and not log.ended:
            behind = log.written - min(reader.chars for reader in log.readers)
            if behind <= MAX_LAG_CHARS:
                break
            log.caught_up = asyncio.get_running_loop().create_future()
            await log.caught_up


class MemoryStore:
    """Chat logs in a dict; ended ones in end order, for retention and the total cap."""

    shared = False

    def __init__(self, resume_window_s: float, retention_s: float) -> None:
        self.resume_window_s = resume_window_s
        self.retention_s = retention_s
        self.logs: dict[str, MemoryLog] = {}
        self.ended_logs: OrderedDict[str, MemoryLog] = OrderedDict()
        self.total = 0

    async def create(self, key: str, run: RunControl) -> MemoryLogWriter:
        old = self.logs.get(key)
        if old is not None:
            if not old.ended:
                raise ChatIdInUse(f"A chat with id {key.partition(':')[2]} is still running")
            self.drop(key, old)
        log = self.logs[key] = MemoryLog(run)
        return MemoryLogWriter(self, key, log)

    async def exists(self, key: str) -> bool:
        return key in self.logs

    async def cancel(self, key: str) -> bool:
        log = self.logs.get(key)
        if log is None or log.run is None:
            return False
        log.run.cancel()
        return True

    async def read(self, key: str, after: int) -> AsyncIterator[Slice]:
        log = self.logs.get(key)
        if log is None:
            raise ChatNotFound(key.partition(":")[2])
        reader = Reader(log.written - _chars(log.events[max(0, after - log.base) :]))
        self.listen(log, reader)
        try:
            seq = after
            while True:
                start = seq - log.base
                if start < 0:
                    raise ChatNotFound(key.partition(":")[2])
                if start < len(log.events):
                    taken = bounded(log.events, start)
                    reader.chars += _chars(taken)
                    yield seq + 1, taken
                    seq += len(taken)
                    self.moved(log)
                elif log.ended:
                    return
                else:
                    waiter = asyncio.get_running_loop().create_future()
                    log.waiters.append(waiter)
                    await waiter
        finally:
            self.leave(log, reader)

    def listen(self, log: MemoryLog, reader: Reader) -> None:
        log.readers.add(reader)
        if log.window is not None:
            log.window.cancel()
            log.window = None

    def leave(self, log: MemoryLog, reader: Reader) -> None:
        log.readers.discard(reader)
        self.moved(log)
        if not log.readers and log.run is not None:
            run = log.run
            if self.resume_window_s <= 0:
                run.abandon()
            else:
                loop = asyncio.get_running_loop()
                log.window = loop.call_later(self.resume_window_s, run.abandon)

    def moved(self, log: MemoryLog) -> None:
        if log.caught_up is not None:
            if not log.caught_up.done():
                log.caught_up.set_result(None)
            log.caught_up = None

    def ended(self, key: str, log: MemoryLog) -> None:
        log.ended, log.run = True, None
        if log.window is not None:
            log.window.cancel()
        self.ended_logs[key] = log
        loop = asyncio.get_running_loop()
        loop.call_later(self.retention_s, self.expire, key, log)
        while self.total > MAX_STORE_CHARS and self.ended_logs:
            oldest, oldest_log = next(iter(self.ended_logs.items()))
            self.drop(oldest, oldest_log)

    def expire(self, key: str, log: MemoryLog) -> None:
        if self.logs.get(key) is log:
            self.drop(key, log)

    def drop(self, key: str, log: MemoryLog) -> None:
        if self.logs.get(key) is log:
            del self.logs[key]
        self.ended_logs.pop(key, None)
        self.total -= log.kept
        log.kept = 0
        log.wake()

    async def close(self) -> None:
        self.logs.clear()
        self.ended_logs.clear()


def bounded(events: list[LogEvent], start: int) -> list[LogEvent]:
    """A slice from `start` of at most MAX_READ_EVENTS events and about MAX_READ_CHARS."""
    end = min(len(events), start + MAX_READ_EVENTS)
    if end - start == 1:
        return events[start:end]
    chars = 0
    for index in range(start, end):
        event = events[index]
        if not isinstance(event, Done | Failed):
            chars += len(event.content)
        if chars > MAX_READ_CHARS and index > start:
            return events[start:index]
    return events[start:end]
