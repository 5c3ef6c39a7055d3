"""A chat's log in Redis, written: the process's one writer of every chat's entries
(redis_entries.py says what an entry is).

The process's one writer of those entries (LogFlusher) sends every chat's new events in
one round trip, so a run never waits on Redis for a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from server.store.events import Done, Failed, LogEvent
from server.store.memory import MemoryLogWriter
from server.store.memory_log import MemoryLog
from server.store.redis_conn import outage_log
from server.store.redis_entries import encode_events, log_key

# Entries a stream keeps (one per upstream read, or a bounded re-sync batch): a chat keeps
# its text within it; a listener asking from before the oldest entry kept gets 404.
STREAM_MAXLEN = 50_000
# A running chat's marker lapses this long after its process stops renewing it (a crash).
RUN_TTL_S = 30.0
# Flushes start at most this often: a flush costs about the same for one chat as for a
# thousand, so gathering for a while makes each token cheap; a listener on another process
# gets its text this much later, the chat's own process at once.
FLUSH_EVERY_S = 0.02
# One flush's entries together stay about this small (a catch-up after an outage is long).
MAX_FLUSH_BYTES = 1024 * 1024
# After a failed flush, the next try: the log waits in memory meanwhile.
RETRY_S = 0.5
# The longest a run's end waits for Redis to have it: less than a shutdown's wind-down
# (server/relay/runs.py WIND_DOWN_S), which cancels what is still going then.
END_WAIT_S = 1.0


class RedisLogWriter:
    """A run's log: in this process's memory for its own listeners, and written up to Redis
    by the process's one LogFlusher, so a run never waits on Redis for a token."""

    __slots__ = ("_end_written", "dirty", "flusher", "key", "local", "stream", "synced")

    def __init__(self, flusher: LogFlusher, key: str, local: MemoryLogWriter) -> None:
        self.flusher, self.key, self.local = flusher, key, local
        self.stream = log_key(key).encode()
        self.synced = 0  # seq of the last event Redis holds
        self.dirty = False  # waiting in the flusher's next batch
        self._end_written: asyncio.Future[None] | None = None

    @property
    def memory(self) -> MemoryLog:
        return self.local.log

    def append(self, events: Sequence[LogEvent]) -> Coroutine[Any, Any, None]:
        # The per-token path: the memory log's own coroutine, not one more around it.
        self.flusher.mark(self)
        if isinstance(events[-1], Done | Failed):
            return self._append_end(events)
        return self.local.append(events)

    async def _append_end(self, events: Sequence[LogEvent]) -> None:
        self._end_written = end_written = asyncio.get_running_loop().create_future()
        await self.local.append(events)
        # Once the chat's end is in Redis its key is free again, here and elsewhere; a Redis
        # that is away (or slow) does not hold the run's end up.
        await self.flusher.until_written(end_written)

    async def until_end_written(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until Redis has the chat's final event."""
        if self._end_written is not None:
            await asyncio.wait([self._end_written], timeout=timeout_s)

    def pending(self) -> tuple[int, list[LogEvent]] | None:
        """The seq of the first event Redis lacks and a bounded batch from it, or None."""
        memory = self.memory
        seq = max(self.synced, memory.base)
        if seq >= memory.last_seq:
            return None
        return seq + 1, memory.events_after(seq)

    def written(self, last: int) -> None:
        self.synced = last
        if self._end_written is not None and self.in_sync and not self._end_written.done():
            self._end_written.set_result(None)

    @property
    def in_sync(self) -> bool:
        return self.synced >= self.memory.last_seq


# A writer's entry in a flush: the writer and the seq of the last event sent.
Planned = tuple[RedisLogWriter, int]

# One flush: every chat's new entry in one script call with one argument, so the client packs
# one argument and parses one reply however many chats there are (redis-py's per-command
# packing and parsing were most of the cost per token). A record is a header line, `key_len
# first last nomkstream pexpire_ms ends data_len`, then the key and the entry's events. The
# reply has one character per record: 1 written, 2 already there (a flush retried after a
# lost reply), 0 the stream is gone (NOMKSTREAM: a Redis restarted empty: written again from
# the chat's start), x refused. An ended chat's run and listeners keys go with its last entry.
FLUSH = f"""
local blob, out, pos = ARGV[1], {{}}, 1
while pos <= #blob do
  local eol = string.find(blob, '\\n', pos, true)
  local klen, first, last, nomk, ttl, ends, dlen = string.match(
    string.sub(blob, pos, eol - 1), '^(%d+) (%d+) (%d+) (%d) (%d+) (%d) (%d+)$')
  klen, dlen = tonumber(klen), tonumber(dlen)
  local key = string.sub(blob, eol + 1, eol + klen)
  local data = string.sub(blob, eol + klen + 1, eol + klen + dlen)
  pos = eol + klen + dlen + 1
  local reply
  if nomk == '1' then
    reply = redis.pcall('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', {STREAM_MAXLEN},
                        last .. '-1', 'f', first, 'e', data)
  else
    reply = redis.pcall('XADD', key, 'MAXLEN', '~', {STREAM_MAXLEN}, last .. '-1',
                        'f', first, 'e', data)
  end
  local code = '1'
  if type(reply) == 'table' and reply.err then
    code = string.find(reply.err, 'equal or smaller', 1, true) and '2' or 'x'
  elseif not reply then
    code = '0'
  end
  if code == '1' then
    if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end
    if ends == '1' then
      local chat = string.sub(key, 1, -4)
      redis.call('DEL', chat .. 'run', chat .. 'listeners')
    end
  end
  out[#out + 1] = code
end
return table.concat(out)
"""
WRITE_REFUSED, STREAM_GONE = ord("x"), ord("0")


class LogFlusher:
    """The process's one writer to Redis: every run's new events since the last flush, one
    entry per chat, go out in one round trip (FLUSH); while it is in flight the next batch
    gathers. So a process uses one connection for its logs however many chats it runs, and
    Redis going away is one warning, not one per token."""

    def __init__(
        self, redis: Redis, retention_s: float, ended: Callable[[RedisLogWriter], None]
    ) -> None:
        self.redis, self.ended = redis, ended
        self.script = redis.register_script(FLUSH)
        self.ended_ttl_ms = int(retention_s * 1000)
        self.running_ttl_ms = int((retention_s + RUN_TTL_S) * 1000)
        self.batch: list[RedisLogWriter] = []
        self.wake = asyncio.Event()
        self.flushing = False
        self.closed = False  # RedisStore.close(): the loop ends
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
        loop = asyncio.get_running_loop()
        next_at = 0.0
        while not self.closed:
            await self.wake.wait()
            if (pause := next_at - loop.time()) > 0:
                await asyncio.sleep(pause)
            next_at = loop.time() + FLUSH_EVERY_S
            self.wake.clear()
            batch, self.batch = self.batch, []
            for writer in batch:
                writer.dirty = False
            self.flushing = True
            try:
                await self._flush(batch)
            except Exception as error:  # whatever it was, the next flush retries
                # The chats go on in memory; one line says so (server/store/redis_conn.py).
                for writer in batch:
                    self.mark(writer)
                outage_log.failed(error)
                self.away = error
                await asyncio.sleep(RETRY_S)
                continue
            finally:
                self.flushing = False
            if self.away is not None:
                self.away = None
                outage_log.answered()

    async def _flush(self, batch: list[RedisLogWriter]) -> None:
        planned, records = self._records(batch)
        if not planned:
            return
        reply: bytes = await self.script(args=[b"".join(records)], client=self.redis)
        refused = False
        for (writer, last), code in zip(planned, reply, strict=True):
            if code == WRITE_REFUSED:
                refused = True
                continue
            writer.written(0 if code == STREAM_GONE else last)
            if not writer.in_sync:
                self.mark(writer)
            elif writer.memory.ended:
                self.ended(writer)
        if refused:
            raise ResponseError("Redis refused a chat's log entry")

    def _records(self, batch: list[RedisLogWriter]) -> tuple[list[Planned], list[bytes]]:
        """Each writer's next entry as a record of FLUSH's batch, and (writer, its last seq)."""
        planned: list[Planned] = []
        records: list[bytes] = []
        size = 0
        for writer in batch:
            piece = writer.pending() if size < MAX_FLUSH_BYTES else None
            if piece is None:
                if not writer.in_sync:
                    self.mark(writer)  # the next flush: this one is full
                continue
            first, events = piece
            last, key, data = (
                first + len(events) - 1,
                log_key(writer.key).encode(),
                encode_events(events),
            )
            ends = isinstance(events[-1], Done | Failed)
            ttl_ms = self.ended_ttl_ms if ends else (self.running_ttl_ms if first == 1 else 0)
            records.append(
                b"%d %d %d %d %d %d %d\n%s%s"
                % (len(key), first, last, writer.synced > 0, ttl_ms, ends, len(data), key, data)
            )
            size += len(data)
            planned.append((writer, last))
        return planned, records
