"""A response's events as Server-Sent Events: `event: <type>` and `data: <event>` each.

Every event is translated from the run's log from its start (server/relay/responses.py), so
its `sequence_number` is the same for every reader; a reader that resumes from N gets only
what comes after N. When the POST that created the response streams it, its 200 goes out
with upstream's first chunk (LazyStart, as on every route), so an error before it (a 401,
a 429 with Retry-After, …) is an HTTP error in OpenAI's shape that the SDKs raise as theirs;
after it a failure is the stream's `response.failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from server.config import settings_key
from server.errors import ChatError, ClientTooSlow
from server.relay.responses import ResponseLog
from server.store.events import Failed, LogEvent, chat_store_key
from server.web.http_route import SSE_HEADERS, LazyStart, client_writes, error_of
from server.web.openai_api import drop_slow_client
from server.web.openai_errors import openai_error_response

log = logging.getLogger(__name__)


def sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class EventWriter:
    """A response's events written to one client, the 200 held until there is an answer."""

    def __init__(self, request: web.Request, response: web.StreamResponse, after: int) -> None:
        self.response, self.after = response, after
        self.start = LazyStart(request, response, request.app[settings_key].first_byte_s)
        self.writes = client_writes(request)
        self.reading = ResponseLog()
        self.held: list[bytes] = []  # created and in_progress, until upstream answers
        # Looked up once, not per token: the same for the request's life.
        self.transport = request.transport

    def early_error(self) -> web.Response | None:
        """Upstream failed before its first chunk and nothing is out: its own HTTP status."""
        final = self.reading.final
        if not self.start.started and isinstance(final, Failed) and not self.reading.payloads:
            return openai_error_response(error_of(final))
        return None

    async def write(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(sse(e) for e in events if e["sequence_number"] > self.after)
        if not self.start.started and not self.reading.payloads and not self.reading.ended:
            self.held.append(data)
            return
        if self.held:
            data, self.held = b"".join(self.held) + data, []
        if data:
            with self.writes:
                await self.start.start()
                await self.response.write(data)

    def ready(self) -> bool:
        """As a live listener (server/store/events.py): whether a write now goes out at once."""
        transport = self.transport
        return not (
            transport is None or transport.get_write_buffer_size() or transport.is_closing()
        )

    async def live(self, first_seq: int, logged: Sequence[LogEvent]) -> None:
        """A read the client keeps up with, translated and written from the run's task:
        no wake-up of the listener's per token (never the final event: no early error)."""
        await self.write(self.reading.take(logged))

    async def end(self) -> None:
        with self.writes:
            await self.start.start()
            await self.response.write_eof()

    async def close(self) -> None:
        self.writes.close()
        await self.start.close()


class LiveEvents:
    """The store's Live protocol over an EventWriter."""

    __slots__ = ("write", "writer")

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.write = writer.live

    def ready(self) -> bool:
        return self.writer.ready()


async def stream_response(
    request: web.Request, key: str, *, after: int, lazy: bool
) -> web.StreamResponse:
    """Write the response's events after `after`, live until its end. `lazy`: the 200
    waits for upstream's first chunk (the POST), else it goes out at once (a resume)."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    writer = EventWriter(request, response, after)
    reading = writer.reading
    try:
        if not lazy:
            await writer.start.start()
        try:
            live = LiveEvents(writer)
            async for _, logged in request.app[chat_store_key].read(key, 0, live):
                events = reading.take(logged)
                if (early := writer.early_error()) is not None:
                    return early
                await writer.write(events)
        except ChatError as error:  # the store lost it meanwhile (expired, Redis down)
            if not writer.start.started or not reading.started:
                return openai_error_response(error)
            if not reading.ended:
                await writer.write(reading.take([Failed(error.status, error.message)]))
        await writer.end()
        return response
    except ClientTooSlow as error:
        return drop_slow_client(request, response, error)
    except ConnectionResetError:
        # The client left: a foreground response is stopped by its route, a background one
        # goes on for whoever resumes it.
        return response
    finally:
        await writer.close()
