"""What upstream answers, read safely: a 200 as batches of events (SSE, or one chat.completion),
any body capped and inflated a bounded step at a time, the key taken out of all of it, and
no wait on upstream longer than UPSTREAM_TIMEOUT.

The per-token path is the plain-SSE loop in `Answer.batches`: one read, one decoder call,
one chunk read; compression and the completion fallback are separate branches taken once.

We ask for `Accept-Encoding: identity` and aiohttp inflates nothing by itself: a 1 MB gzip
body can inflate to gigabytes in one call and freeze the event loop. A server that
compresses anyway is inflated here, up to MAX_BODY_BYTES in all.

Some providers echo the key they refused, in an error or anywhere in a chunk; it must never
reach a user, a frame or a log: redaction.py takes it out of the payloads, the decoded text
(across pieces) and what is read from them, here, before anything else sees a batch.

aiohttp's `sock_read` re-arms a timer on every read, which cost about 7% of the relay's CPU
per token (bench/). SilenceWatchdog instead stores a time per read, and its one timer per
stream re-arms itself when it fires early. Only time spent waiting on upstream counts: a
chat paused because its own client reads slowly is not upstream's silence.

The watchdog and the inflater stay here, beside Answer's one read loop that they exist
for; the redactor has its own module (redaction.py).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Protocol

import aiohttp

from server.errors import ChatError, UpstreamError, UpstreamTimeout, transport_error
from server.relay.redaction import KeyRedactor
from server.relay.wire import Batch, ChunkReader, SSEDecoder, read_completion

Batches = AsyncIterator[Batch]


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The two things the watchdog takes from the event loop; tests pass a fake clock."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class SilenceWatchdog:
    """`with watchdog:` around each wait on upstream; one that lasts too long raises
    UpstreamTimeout (or `error`) out of the `with`. A sync context manager: this is the
    per-token path. The POST route watches its writes to a slow client the same way."""

    def __init__(
        self,
        timeout_s: float,
        message: str,
        clock: Clock | None = None,
        error: Callable[[str], ChatError] = UpstreamTimeout,
    ) -> None:
        self._clock: Clock = clock or asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("SilenceWatchdog needs a running task")
        self._task = task
        self._timeout_s = timeout_s
        self._message = message
        self._error = error
        self._waiting_since: float | None = None
        self._fired = False
        self._timer = self._clock.call_at(self._clock.time() + timeout_s, self._check)

    def __enter__(self) -> None:
        self._waiting_since = self._clock.time()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._waiting_since = None
        if self._fired and exc_type is asyncio.CancelledError:
            self._task.uncancel()
            raise self._error(self._message) from None

    def _check(self) -> None:
        since = self._waiting_since
        now = self._clock.time()
        if since is not None and now - since >= self._timeout_s:
            self._fired = True
            self._task.cancel()
            return
        next_check = (now if since is None else since) + self._timeout_s
        self._timer = self._clock.call_at(next_check, self._check)

    def close(self) -> None:
        self._timer.cancel()


class Answer:
    """A response whose status was 200, with what reading it needs."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        watchdog: SilenceWatchdog,
        redactor: KeyRedactor,
        *,
        max_body_bytes: int,
        silence_message: str,
    ) -> None:
        self.response, self.watchdog, self.redactor = response, watchdog, redactor
        self.max_body_bytes, self.silence_message = max_body_bytes, silence_message

    async def batches(self) -> Batches:
        """The events of each read; a read that completes no SSE event yields nothing."""
        response, watchdog, redactor = self.response, self.watchdog, self.redactor
        inflater = inflater_for(response, self.max_body_bytes)
        decoder = SSEDecoder()
        reader = ChunkReader()
        first = b""
        if response.content_type == "application/json":
            # A server that ignores `stream: true` answers one chat.completion; one that
            # labels its SSE as JSON is read as SSE.
            if inflater is None:
                first = await self._read_some()
            if inflater is not None or first.lstrip()[:1] in (b"", b"{"):
                yield await self._completion(first)
                return
            if payloads := decoder.feed(first):
                yield _decoded(payloads, reader, redactor)
        content = response.content
        while True:
            try:
                with watchdog:
                    read = await content.readany()
            except aiohttp.ClientError as exc:
                raise transport_error(exc, self.silence_message) from None
            if not read:
                break
            if inflater is None:
                payloads = decoder.feed(read)
                if payloads:
                    yield _decoded(payloads, reader, redactor)
                # Not held through the wait for the next read: with the two other loops'
                # last batch, ~2 KiB per paced chat.
                del read, payloads
                continue
            for part in inflater.steps(read):
                payloads = decoder.feed(part)
                if payloads:
                    yield _decoded(payloads, reader, redactor)
                # A compressed read may inflate to many steps: let other chats run between.
                await asyncio.sleep(0)
        payloads = decoder.close()
        batch = _decoded(payloads, reader, redactor) if payloads else Batch([], [])
        batch.events += reader.close()
        redactor.close(batch)
        if batch.events or batch.payloads:
            yield batch

    async def _completion(self, first: bytes) -> Batch:
        """A server that ignored `stream: true`: its one JSON answer as one batch."""
        limit = self.max_body_bytes - len(first)
        try:
            with self.watchdog:
                body = first + await read_capped(self.response, limit, strict=True)
        except aiohttp.ClientError as exc:
            raise transport_error(exc, self.silence_message) from None
        if self.redactor.found_in([body]):
            body = self.redactor.payloads([body])[0]
        return _clean(read_completion(body), self.redactor)

    async def _read_some(self) -> bytes:
        try:
            with self.watchdog:
                return await self.response.content.readany()
        except aiohttp.ClientError as exc:
            raise transport_error(exc, self.silence_message) from None


def _decoded(payloads: list[bytes], reader: ChunkReader, redactor: KeyRedactor) -> Batch:
    if redactor.found_in(payloads):
        payloads = redactor.payloads(payloads)
    return _clean(reader.read(payloads), redactor)


def _clean(batch: Batch, redactor: KeyRedactor) -> Batch:
    """Payloads are cleaned before decoding; the decoded text is searched across pieces
    (redaction.py), and what else JSON escapes could still spell the key (finish reason,
    usage, an error) is looked at once more, which is rare on a stream."""
    redactor.settle(batch)
    if batch.finish_reason is not None or batch.usage is not None or batch.error is not None:
        batch.finish_reason = redactor.value(batch.finish_reason)
        batch.usage = redactor.value(batch.usage)
        if batch.error is not None:
            batch.error.message = redactor.text(batch.error.message)
    return batch


# Output of one inflate step: what the SSE decoder handles between two yields to the loop.
INFLATE_STEP_BYTES = 64 * 1024
# zlib's "gzip or zlib header, whichever it is".
GZIP_OR_ZLIB_WBITS = 32 + zlib.MAX_WBITS
INFLATED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class Inflater:
    """gzip or deflate, inflated `INFLATE_STEP_BYTES` at a time, at most `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self._inflate = zlib.decompressobj(GZIP_OR_ZLIB_WBITS)
        self._left = limit
        self._limit = limit

    def steps(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._inflate.decompress(data, INFLATE_STEP_BYTES)
            except zlib.error:
                raise UpstreamError("OpenRouter sent a compressed answer that is corrupt") from None
            data = self._inflate.unconsumed_tail
            self._left -= len(out)
            if self._left < 0:
                raise UpstreamError(
                    f"OpenRouter sent a compressed answer larger than {self._limit} bytes"
                )
            if out:
                yield out
            elif not data or self._inflate.eof:
                return


def inflater_for(response: aiohttp.ClientResponse, limit: int) -> Inflater | None:
    """None for an uncompressed body; UpstreamError for an encoding we do not read."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in INFLATED_ENCODINGS:
        return Inflater(limit)
    # Not the header's value in the message: it is upstream's raw bytes.
    raise UpstreamError("OpenRouter sent an answer compressed in a way chatrelay does not read")


async def read_capped(response: aiohttp.ClientResponse, limit: int, *, strict: bool) -> bytes:
    """The whole body, inflated, up to `limit` bytes: past it, the rest is cut off, or with
    `strict` the answer is refused (a body that must be whole to be read)."""
    inflater = inflater_for(response, limit if strict else limit + INFLATE_STEP_BYTES)
    body = bytearray()
    async for read in response.content.iter_any():
        for part in inflater.steps(read) if inflater else (read,):
            body += part
            if len(body) > limit:
                if strict:
                    raise UpstreamError(f"OpenRouter sent an answer larger than {limit} bytes")
                return bytes(body[:limit])
    return bytes(body)
