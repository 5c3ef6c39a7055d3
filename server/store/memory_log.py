"""MemoryLog: one chat's events in this process's memory, kept compactly, and its readers.

A running chat's log (MemoryLog) is the store's per-token cost in memory: one Delta object
and one str per token came to ~15 KiB per paced stream (bench/README.md). So the text is
kept as it will be read back, joined: chunks of a few KiB, plus per event one byte (its
kind) and one 8-byte offset (where its text ends). An event is rebuilt only when a listener
reads it from the log, which a listener that keeps up never does (it is handed each read
live). The chunks are UTF-8: a str is as wide as its widest character, so one emoji or
curly quote made a whole chunk of text 4 or 2 bytes a character. Offsets count bytes of
that UTF-8, so a chat's size is known without decoding anything.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_right
from collections.abc import Sequence

from server.store.events import (
    MAX_READ_CHARS,
    MAX_READ_EVENTS,
    Delta,
    Final,
    Live,
    LogEvent,
    Raw,
    Reasoning,
    RunControl,
)

KINDS: tuple[type[Delta], type[Reasoning], type[Raw]] = (Delta, Reasoning, Raw)
# The newest pieces of text are kept as they came until this many, then joined.
JOIN_EVERY = 8
WIDE_OFFSET = 2**32 - 2**25  # past it, offsets need 8 bytes (less a read's worth of margin)
# A joined chunk grows to about this many bytes before a new one starts.
CHUNK_BYTES = 4096
# Lone surrogates (a pair upstream cut and never finished) survive the round trip.
UTF8, KEEP_SURROGATES = "utf-8", "surrogatepass"


class Reader:
    """One listener of this process; `seq` is the last event it has taken."""

    __slots__ = ("failed", "live", "seq", "waiter")

    def __init__(self, seq: int, live: Live | None) -> None:
        self.seq = seq
        self.live = live
        # Set while it waits, caught up; one future for as many live reads as come meanwhile.
        self.waiter: asyncio.Future[None] | None = None
        # A live write that failed, raised in the listener's own task.
        self.failed: BaseException | None = None

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class MemoryLog:
    """One chat's events; `base` is the seq before the first one kept. Offsets count
    bytes of UTF-8 text from the chat's start, trimmed text included."""

    def __init__(self, run: RunControl | None) -> None:
        self.run = run
        self.base = 0
        self.kinds = bytearray()  # per kept text event: its index in KINDS
        # Per kept text event: the offset where its text ends; 4 bytes each, until a chat
        # passes 4 GiB of text (8 bytes each from then on).
        self.ends = array("I")
        self.start = 0  # the offset where the first kept event's text starts
        self.chunks: list[bytes] = []  # the kept text, joined, in UTF-8
        self.chunk_starts: list[int] = []  # the offset where each starts
        self.pieces: list[str] = []  # the newest text, not joined yet
        self.pieces_bytes = 0
        self.final: Final | None = None
        self.written = 0  # bytes of text ever appended
        self.ended = False
        self.dropped = False  # by the store: no longer counted in its total
        self.readers: set[Reader] = set()
        self.caught_up: asyncio.Future[None] | None = None
        self.window: asyncio.TimerHandle | None = None
        # The retention timer of an ended log: cancelled when the cap drops the log first,
        # else it would hold the log's text (and its memory) for CHAT_RETENTION_S more.
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def kept(self) -> int:
        return self.written - self.start

    @property
    def held(self) -> int:
        """The bytes this log holds: its kept text, and each kept event's offset and kind."""
        return self.written - self.start + len(self.ends) * (self.ends.itemsize + 1)

    @property
    def last_seq(self) -> int:
        return self.base + len(self.ends) + (self.final is not None)

    def add(self, events: Sequence[LogEvent]) -> int:
        """Keep the events (a Done or Failed only last); the bytes they add to `held`."""
        held = self.held
        written = self.written
        for event in events:
            if type(event) is Delta:
                self.kinds.append(0)
            elif type(event) is Reasoning:
                self.kinds.append(1)
            elif type(event) is Raw:
                self.kinds.append(2)
            else:
                self.final = event  # type: ignore[assignment]
                break
            content = event.content
            # isascii() is a flag lookup: English text pays no encoding here.
            written += len(content) if content.isascii() else utf8_size(content)
            self.pieces.append(content)
            self.ends.append(written)
        self.pieces_bytes += written - self.written
        self.written = written
        if written > WIDE_OFFSET and self.ends.typecode == "I":
            self.ends = array("q", self.ends)
        if len(self.pieces) >= JOIN_EVERY or self.final is not None:
            self.join()
        return self.held - held

    def join(self) -> None:
        if not self.pieces:
            return
        text = "".join(self.pieces).encode(UTF8, KEEP_SURROGATES)
        pieces_start = self.written - self.pieces_bytes
        self.pieces.clear()
        self.pieces_bytes = 0
        if self.chunks and pieces_start - self.chunk_starts[-1] < CHUNK_BYTES:
            self.chunks[-1] += text
        else:
            self.chunks.append(text)
            self.chunk_starts.append(pieces_start)

    def offset_at(self, seq: int) -> int:
        """Where the text of events up to `seq` ends (`seq` at least `base`)."""
        index = min(seq - self.base, len(self.ends))
        return self.ends[index - 1] if index > 0 else self.start

    def data(self, begin: int, end: int) -> bytes:
        """The kept text between two offsets, in UTF-8; the newest is read from the pieces
        as they came (a listener or Redis's flush reading the last few events joins nothing)."""
        parts = []
        pieces_start = self.written - self.pieces_bytes
        if begin < pieces_start:
            at = bisect_right(self.chunk_starts, begin) - 1
            stop = min(end, pieces_start)
            while begin < stop:
                chunk, chunk_start = self.chunks[at], self.chunk_starts[at]
                part = chunk[begin - chunk_start : stop - chunk_start]
                parts.append(part)
                begin += len(part)
                at += 1
        if end > pieces_start:
            pieces = "".join(self.pieces).encode(UTF8, KEEP_SURROGATES)
            parts.append(pieces[max(begin - pieces_start, 0) : end - pieces_start])
        return b"".join(parts)

    def events_after(self, seq: int) -> list[LogEvent]:
        """The events after `seq` (at least `base`): at most MAX_READ_EVENTS and about
        MAX_READ_CHARS bytes of text, one event at least."""
        index = seq - self.base
        stop = min(len(self.ends), index + MAX_READ_EVENTS)
        begin = self.offset_at(seq)
        within = bisect_right(self.ends, begin + MAX_READ_CHARS, index, stop)
        stop = max(within, index + 1) if within < stop else stop
        stop = min(stop, len(self.ends))
        out: list[LogEvent] = []
        if stop > index:
            data, ends, kinds = self.data(begin, self.ends[stop - 1]), self.ends, self.kinds
            at = begin
            for i in range(index, stop):
                text = data[at - begin : ends[i] - begin].decode(UTF8, KEEP_SURROGATES)
                out.append(KINDS[kinds[i]](text))
                at = ends[i]
        if stop == len(self.ends) and self.final is not None and len(out) < MAX_READ_EVENTS:
            out.append(self.final)
        return out

    def trim(self, limit: int) -> None:
        """Drop the oldest events until the log holds at most `limit` bytes (one event
        stays, however long)."""
        held = self.held
        if held <= limit:
            return
        self.join()
        # The text to keep: the limit less each kept event's offset and kind, in the
        # proportion this log has them.
        text_limit = limit * self.kept // held
        drop = min(bisect_right(self.ends, self.written - text_limit - 1) + 1, len(self.ends) - 1)
        if drop <= 0:
            return
        self.start = self.ends[drop - 1]
        del self.kinds[:drop]
        del self.ends[:drop]
        self.base += drop
        while len(self.chunk_starts) > 1 and self.chunk_starts[1] <= self.start:
            del self.chunks[0], self.chunk_starts[0]


def utf8_size(text: str) -> int:
    """The bytes `text` takes in the log (lone surrogates included, as they are kept)."""
    return len(text.encode(UTF8, KEEP_SURROGATES))
