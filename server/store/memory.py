"""MemoryStore: chat logs in this process's memory, bounded, for one process without Redis.

Bounds, in bytes of memory: a running chat keeps at most MAX_CHAT_BYTES of its newest text
(a listener asking for older text gets 404); all logs together keep about MAX_STORE_BYTES,
past which the oldest ended chats go first; an ended chat goes after CHAT_RETENTION_S. A log
holds the chat's events only, never its request. What is counted is what is held: each
event's text in UTF-8 and its offset and kind (an emoji a token was 9 bytes where the count
said 1, when the caps counted characters: 80 ended chats took +548 MB).

A chat's log itself, kept compactly, is MemoryLog (memory_log.py).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

from server.errors import ChatError, ChatIdInUse, ChatNotFound
from server.store.events import Live, LogEvent, RunControl, Slice
from server.store.memory_log import MemoryLog, Reader

MAX_CHAT_BYTES = 16 * 1024 * 1024
MAX_STORE_BYTES = 256 * 1024 * 1024
# A listener of this process this far behind pauses its chat's upstream (no unbounded buffer).
MAX_LAG_BYTES = 1024 * 1024


class MemoryLogWriter:
    """The run's end of a MemoryLog."""

    def __init__(self, store: MemoryStore, key: str, log: MemoryLog) -> None:
        self._store, self._key, self.log = store, key, log

    async def append(self, events: Sequence[LogEvent]) -> None:
        log = self.log
        if log.ended:
            return
        first = log.last_seq + 1
        self._store.total += log.add(events)
        if log.final is not None:
            self._store.ended(self._key, log)
        elif log.held > MAX_CHAT_BYTES:
            held = log.held
            log.trim(MAX_CHAT_BYTES)
            self._store.total -= held - log.held
        if not log.readers:
            return
        # Each waiting listener takes the read: a live one that keeps up right here (the
        # per-token path), any other from the log in its own task.
        slowest = log.written
        for reader in tuple(log.readers):
            waiter = reader.waiter
            if waiter is None or waiter.done():
                slowest = min(slowest, log.offset_at(reader.seq))
                continue
            live = reader.live
            if live is not None and reader.seq == first - 1 and log.final is None and live.ready():
                reader.seq = first + len(events) - 1
                try:
                    await live.write(first, events)
                except Exception as error:  # raised in the listener's own task
                    reader.failed = error
                    reader.wake()
            else:
                reader.wake()
        if log.written - slowest > MAX_LAG_BYTES:
            await self._catch_up(slowest)

    async def _catch_up(self, slowest: int) -> None:
        """Backpressure: wait while a listener of this process is far behind."""
        log = self.log
        while log.written - slowest > MAX_LAG_BYTES and log.readers and not log.ended:
            log.caught_up = asyncio.get_running_loop().create_future()
            await log.caught_up
            slowest = min(
                (log.offset_at(r.seq) for r in log.readers if r.waiter is None),
                default=log.written,
            )


class MemoryStore:
    """Chat logs in a dict; ended ones in end order, for retention and the total cap."""

    shared = False

    def __init__(self, resume_window_s: float, retention_s: float) -> None:
        self.resume_window_s = resume_window_s
        self.retention_s = retention_s
        self.logs: dict[str, MemoryLog] = {}
        self.ended_logs: OrderedDict[str, MemoryLog] = OrderedDict()
        self.total = 0  # bytes held by the logs not dropped (MemoryLog.held)

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

    async def not_found(self, chat_id: str) -> ChatError:
        return ChatNotFound(chat_id)

    async def cancel(self, key: str) -> bool:
        log = self.logs.get(key)
        if log is None or log.run is None:
            return False
        log.run.cancel()
        return True

    async def forget(self, key: str) -> None:
        log = self.logs.get(key)
        if log is not None and log.ended:
            self.drop(key, log)

    async def read(self, key: str, after: int, live: Live | None = None) -> AsyncIterator[Slice]:
        log = self.logs.get(key)
        if log is None:
            raise ChatNotFound(key.partition(":")[2])
        reader = Reader(after, live)
        self.listen(log, reader)
        try:
            while True:
                if reader.failed is not None:
                    raise reader.failed
                seq = reader.seq
                if seq < log.base:
                    raise ChatNotFound(key.partition(":")[2])
                if seq < log.last_seq:
                    taken = log.events_after(seq)
                    reader.seq = seq + len(taken)
                    yield seq + 1, taken
                    if taken[-1] is log.final:
                        return
                    self.moved(log)
                elif log.final is not None:
                    # Asked from its end or past it: a read still ends with the final event.
                    yield log.last_seq, [log.final]
                    return
                else:
                    reader.waiter = asyncio.get_running_loop().create_future()
                    self.moved(log)
                    await reader.waiter
        finally:
            reader.waiter = None
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
        log.expiry = loop.call_later(self.retention_s, self.expire, key, log)
        while self.total > MAX_STORE_BYTES and self.ended_logs:
            oldest, oldest_log = next(iter(self.ended_logs.items()))
            self.drop(oldest, oldest_log)

    def expire(self, key: str, log: MemoryLog) -> None:
        if self.logs.get(key) is log:
            self.drop(key, log)

    def drop(self, key: str, log: MemoryLog) -> None:
        """Forget the log; a listener still reading it reads on to its end."""
        if self.logs.get(key) is log:
            del self.logs[key]
        self.ended_logs.pop(key, None)
        if log.expiry is not None:
            log.expiry.cancel()
            log.expiry = None
        if not log.dropped:
            log.dropped = True
            self.total -= log.held

    async def close(self) -> None:
        self.logs.clear()
        self.ended_logs.clear()
