"""A chat's log in Redis, written and followed: one Stream per chat, one entry per flush of
its new events, the entry's id the seq of its last event, so a listener reads on from the
last seq it has with XREAD.

The process's one writer of those entries (LogFlusher) sends every chat's new events in
one round trip. Listeners of this process on chats that run on another one first catch up
by themselves with short, non-blocking XREADs from their seq (a replay, in bounded
batches); then they wait for new entries on the process's one blocking XREAD over every
followed stream (Follower), so a thousand listeners hold one connection, not a thousand.
A listener that falls behind that shared read goes back to catching up by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from server.errors import ChatNotFound, ChatStoreUnavailable
from server.store.events import Delta, Done, Failed, LogEvent, Raw, Reasoning, Slice
from server.store.memory import MemoryLogWriter
from server.store.memory_log import MemoryLog
from server.store.redis_conn import REDIS_DOWN, outage_log, stop_tasks

PREFIX = "chatrelay:chat:"
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
        elif isinstance(event, Raw):
            rows.append(["x", event.content])
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
        elif kind == "x":
            events.append(Raw(row[1]))
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


# Following: listeners of this process on chats that run on another one.

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
