"""One 200 answer from upstream read as batches of events: SSE, or one chat.completion.

The per-token path is the plain-SSE loop in `batches`: one read, one decoder call, one
chunk read; compression and the completion fallback are separate branches taken once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from .errors import transport_error
from .redaction import KeyRedactor
from .upstream_body import inflater_for, read_capped
from .watchdog import SilenceWatchdog
from .wire import Batch, ChunkReader, SSEDecoder, read_completion

Batches = AsyncIterator[Batch]


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
    """Payloads are cleaned before decoding; what JSON escapes could still spell the key
    (finish reason, usage, an error) is looked at once more, which is rare on a stream."""
    if batch.finish_reason is not None or batch.usage is not None or batch.error is not None:
        batch.finish_reason = redactor.value(batch.finish_reason)
        batch.usage = redactor.value(batch.usage)
        if batch.error is not None:
            batch.error.message = redactor.text(batch.error.message)
    return batch
