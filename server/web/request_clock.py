"""The request time: a request's headers and body arrive within `request_timeout_s`, else 408.

aiohttp has no such limit (its `slow_request_timeout` went in 2.0; `keepalive_timeout` closes
only idle connections, 95 s here). So each connection's protocol is wrapped in a
RequestClock: aiohttp's `web.Server` is documented as the protocol factory sites hand to
`loop.create_server`, and ClockedServer is that factory with the clock around each
protocol. The clock times the headers, from the request's first byte until the app sees
the request (a new connection that sends nothing is closed after the same time); the
middleware then gives the request the rest of that time for its body (read_body).
Apps served without the clock (aiohttp's test server) still time the body, from the moment
it is handled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from server.config import settings_key

log = logging.getLogger(__name__)

request_deadline_key = web.RequestKey("request_deadline", float)
"""Loop time by which the request's body must have arrived."""
body_timed_out_key = web.RequestKey("body_timed_out", bool)
"""Set when the body did not arrive in time: its 408 closes the connection."""
broken_body_key = web.RequestKey("broken_body", bool)
"""Set when the body could not be read (framing, compression): the connection is spent."""


def timeout_message(timeout_s: float) -> str:
    return f"The request did not arrive within {timeout_s:g} seconds"


def timeout_response(timeout_s: float) -> bytes:
    """The 408 for headers that did not arrive: aiohttp never saw the request to answer it."""
    body = orjson.dumps({"message": timeout_message(timeout_s)})
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


# After a 408: time for the answer to reach the client while what it still sends is read and
# dropped (closing with bytes unread would reset the connection before it reads the 408).
CLOSE_AFTER_408_S = 1.0


class RequestClock(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline on each request's headers."""

    # One per open connection, idle sockets included: no instance dict.
    __slots__ = (
        "_answer",
        "_in_app",
        "_inner",
        "_last_data_at",
        "_loop",
        "_started_at",
        "_timed_out",
        "_timeout_s",
        "_timer",
        "_transport",
    )

    def __init__(self, inner: asyncio.Protocol, timeout_s: float, answer: bytes) -> None:
        self._inner = inner
        self._timeout_s = timeout_s
        self._answer = answer
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        # When the request now arriving sent its first byte; None until it has.
        self._started_at: float | None = None
        self._in_app = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_data_at = self._loop.time()
        self._timed_out = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        # A new connection is opened to send a request: one that sends nothing is closed
        # after the request time too.
        self._timer = self._loop.call_later(self._timeout_s, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._last_data_at = self._loop.time()
        if self._timed_out:
            return
        if not self._in_app and self._started_at is None:
            # A request's time runs from its first byte.
            self._cancel_timer()
            self._started_at = self._last_data_at
            self._timer = self._loop.call_at(self._started_at + self._timeout_s, self._expire)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._timed_out:
            return None  # the client is done too: close now
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_arrived(self) -> float:
        """The app has the request's headers: stop their clock; when the request began."""
        self._cancel_timer()
        self._in_app = True
        started_at = self._loop.time() if self._started_at is None else self._started_at
        self._started_at = None
        return started_at

    def request_finished(self) -> None:
        """The request and its whole body are done: the next byte starts a new clock."""
        self._in_app = False

    async def wait_quiet(self, quiet_s: float, limit_s: float) -> None:
        """Until the client has sent nothing for `quiet_s`, or `limit_s` at most."""
        end = self._loop.time() + limit_s
        while (now := self._loop.time()) < end:
            silent_s = now - self._last_data_at
            if silent_s >= quiet_s:
                return
            await asyncio.sleep(min(quiet_s - silent_s, end - now))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if self._in_app or transport is None or transport.is_closing():
            return
        if self._started_at is None:  # not a byte since the connection opened
            transport.close()
            return
        # Nothing of this request has reached aiohttp's handler, so nothing was written.
        log.info(
            "request timeout: headers not complete within %g s remote=%s",
            self._timeout_s,
            _peer(transport),
        )
        self._timed_out = True
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(CLOSE_AFTER_408_S, transport.close)


class ClockedServer:
    """aiohttp's protocol factory, each connection's protocol inside a RequestClock.

    Sites use `runner.server` only as `loop.create_server`'s protocol factory (the role
    `web.Server` documents), and gunicorn's worker reads its `requests_count`.
    """

    def __init__(self, inner: web.Server, timeout_s: float) -> None:
        self.inner = inner
        self._timeout_s = timeout_s
        self._answer = timeout_response(timeout_s)

    def __call__(self) -> RequestClock:
        return RequestClock(self.inner(), self._timeout_s, self._answer)

    @property
    def requests_count(self) -> int:
        return self.inner.requests_count


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "-"


def clock_of(request: web.Request) -> RequestClock | None:
    """The connection's RequestClock, when the app is served through ClockedServer."""
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, RequestClock) else None


@web.middleware
async def request_time_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the body what is left of the request time; close the connection after a 408."""
    clock = clock_of(request)
    started_at = clock.request_arrived() if clock else asyncio.get_running_loop().time()
    request[request_deadline_key] = started_at + request.app[settings_key].request_timeout_s
    try:
        response = await handler(request)
        if request.get(broken_body_key):
            # aiohttp drops the connection after this answer: the client must not reuse it.
            response.force_close()
        transport = request.transport
        if request.get(body_timed_out_key) and transport is not None:
            # Sent and half-closed here; aiohttp reads (and drops) what the client still
            # sends, which would last its lingering time (10 s): closed after a second instead.
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            if transport.can_write_eof():
                transport.write_eof()
            asyncio.get_running_loop().call_later(CLOSE_AFTER_408_S, transport.close)
        return response
    finally:
        if clock is not None:
            # A body the handler left unread is read and dropped by aiohttp after the answer
            # (for at most its lingering time): the connection is free once that is done.
            request.content.on_eof(clock.request_finished)
