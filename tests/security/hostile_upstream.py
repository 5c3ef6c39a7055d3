"""Upstreams that attack the relay: endless events, compression bombs, broken HTTP.

An aiohttp app for what can be said in HTTP, and a raw asyncio server for what cannot
(bytes that are not valid HTTP at all). Each records whether it was asked anything.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

CHUNK_BYTES = 64 * 1024


@dataclass
class Hostile:
    """An aiohttp upstream whose one chat answer is the stream `answer` writes."""

    answer: Callable[[web.Request, web.StreamResponse], AsyncIterator[bytes]]
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/event-stream"})
    requests: int = 0
    sent_bytes: int = 0
    body_bytes: int = 0
    # Set once the relay's whole request has arrived.
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        # The request body is drained, not kept: memory tests count only the relay's.
        async for part in request.content.iter_chunked(CHUNK_BYTES):
            self.body_bytes += len(part)
        self.asked.set()
        response = web.StreamResponse(headers=self.headers)
        await response.prepare(request)
        try:
            async for data in self.answer(request, response):
                await response.write(data)
                self.sent_bytes += len(data)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the relay hung up, as it should
        return response


async def endless(data: bytes, total_bytes: int) -> AsyncIterator[bytes]:
    """The same bytes again and again (one object: the upstream's own memory stays flat)."""
    for _ in range(total_bytes // len(data)):
        yield data


def gzip_bomb(line: bytes, inflated_bytes: int) -> bytes:
    """A small gzip body that inflates to `inflated_bytes` of `line` repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = line * (CHUNK_BYTES // len(line))
    parts = [compressor.compress(block) for _ in range(inflated_bytes // len(block))]
    return b"".join(parts) + compressor.flush()


class RawUpstream:
    """A TCP server that answers every connection with the same raw bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
