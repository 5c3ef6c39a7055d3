"""MemoryLog: one chat's events in this process's memory, kept compactly.

A running chat's log is the store's per-token cost in memory: one Delta object and one str
per token came to ~15 KiB per paced stream (bench/README.md). So the text is kept as it
will be read back, joined: chunks of a few KiB, plus per event one byte (its kind) and
one 8-byte offset (where its text ends). An event is rebuilt only when a listener reads
it from the log, which a listener that keeps up never does (it is handed each read live).
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_right
from collections.abc import Sequence

from .events import Delta, Final, LogEvent, Reasoning
from .store import MAX_READ_CHARS, MAX_READ_EVENTS, Live, RunControl

KINDS: tuple[type[Delta], type[Reasoning]] = (Delta, Reasoning)
# The newest pieces of text are kept as they came until this many, then joined.
JOIN_EVERY = 8
WIDE_OFFSET = 2**32 - 2**25  # past it, offsets need 8 bytes (less a read's worth of margin)
# A joined chunk grows to about this many characters before a new one starts.
CHUNK_CHARS = 4096


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
    characters of text from the chat's start, trimmed text included."""

    def __init__(self, run: RunControl | None) -> None:
        self.run = run
        self.base = 0
        self.kinds = bytearray()  # per kept text event: its index in KINDS
        # Per kept text event: the offset where its text ends; 4 bytes each, until a chat
        # passes 4 Gi characters (8 bytes each from then on).
        self.ends = array("I")
        self.start = 0  # the offset where the first kept event's text starts
        self.chunks: list[str] = []  # the kept text, joined
        self.chunk_starts: list[int] = []
        self.pieces: list[str] = []  # the newest text, not joined yet
        self.pieces_chars = 0
        self.final: Final | None = None
        self.written = 0  # chars of text ever appended
        self.ended = False
        self.dropped = False  # by the store: no longer counted in its total
        self.readers: set[Reader] = set()
        self.caught_up: asyncio.Future[None] | None = None
        self.window: asyncio.TimerHandle | None = None

    @property
    def kept(self) -> int:
        return self.written - self.start

    @property
    def last_seq(self) -> int:
        return self.base + len(self.ends) + (self.final is not None)

    def add(self, events: Sequence[LogEvent]) -> int:
        """Keep the events (a Done or Failed only last); the chars of text they add."""
        written = self.written
        for event in events:
            if type(event) is Delta:
                self.kinds.append(0)
            elif type(event) is Reasoning:
                self.kinds.append(1)
            else:
                self.final = event  # type: ignore[assignment]
                break
            written += len(event.content)
            self.pieces.append(event.content)
            self.ends.append(written)
        added, self.written = written - self.written, written
        self.pieces_chars += added
        if written > WIDE_OFFSET and self.ends.typecode == "I":
            self.ends = array("q", self.ends)
        if len(self.pieces) >= JOIN_EVERY:
            self.join()
        return added

    def join(self) -> None:
        if not self.pieces:
            return
        text = "".join(self.pieces)
        self.pieces.clear()
        self.pieces_chars = 0
        if self.chunks and len(self.chunks[-1]) < CHUNK_CHARS:
            self.chunks[-1] += text
        else:
            self.chunks.append(text)
            self.chunk_starts.append(self.written - len(text))

    def offset_at(self, seq: int) -> int:
        """Where the text of events up to `seq` ends (`seq` at least `base`)."""
        index = min(seq - self.base, len(self.ends))
        return self.ends[index - 1] if index > 0 else self.start

    def text(self, begin: int, end: int) -> str:
        """The kept text between two offsets; the newest is read from the pieces as they
        came (a listener or Redis's flush reading the last few events joins nothing)."""
        parts = []
        pieces_start = self.written - self.pieces_chars
        if begin < pieces_start:
            at = bisect_right(self.chunk_starts, begin) - 1
            stop = min(end, pieces_start)
            while begin < stop:
                chunk, chunk_start = self.chunks[at], self.chunk_starts[at]
                part = chunk[begin - chunk_start : stop - chunk_start]
                parts.append(part)
                begin += len(part)
                at += 1
        at = pieces_start
        for piece in self.pieces:
            if at >= end:
                break
            piece_end = at + len(piece)
            if piece_end > begin:
                parts.append(piece[max(begin - at, 0) : end - at])
            at = piece_end
        return "".join(parts)

    def events_after(self, seq: int) -> list[LogEvent]:
        """The events after `seq` (at least `base`): at most MAX_READ_EVENTS and about
        MAX_READ_CHARS of text, one event at least."""
        index = seq - self.base
        stop = min(len(self.ends), index + MAX_READ_EVENTS)
        begin = self.offset_at(seq)
        within = bisect_right(self.ends, begin + MAX_READ_CHARS, index, stop)
        stop = max(within, index + 1) if within < stop else stop
        stop = min(stop, len(self.ends))
        out: list[LogEvent] = []
        if stop > index:
            text, ends, kinds = self.text(begin, self.ends[stop - 1]), self.ends, self.kinds
            at = begin
            for i in range(index, stop):
                out.append(KINDS[kinds[i]](text[at - begin : ends[i] - begin]))
                at = ends[i]
        if stop == len(self.ends) and self.final is not None and len(out) < MAX_READ_EVENTS:
            out.append(self.final)
        return out

    def trim(self, limit: int) -> None:
        """Drop the oldest events until at most `limit` chars of text are kept (one event
        stays, however long)."""
        if self.kept <= limit:
            return
        self.join()
        drop = min(bisect_right(self.ends, self.written - limit - 1) + 1, len(self.ends) - 1)
        if drop <= 0:
            return
        self.start = self.ends[drop - 1]
        del self.kinds[:drop]
        del self.ends[:drop]
        self.base += drop
        while len(self.chunk_starts) > 1 and self.chunk_starts[1] <= self.start:
            del self.chunks[0], self.chunk_starts[0]
