"""POST /api/chat/openrouter: the chat core written as plain text, or as SSE on request."""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import aclosing

import orjson
from aiohttp import web

from .chat import stream_chat
from .config import settings_key
from .drain import running_chat
from .errors import ChatError, ClientTooSlow, InternalError
from .events import ChatEvent, Delta, Done
from .limits import admit_chat
from .media import wants_event_stream
from .openrouter import openrouter_key
from .profile import check_api_key, request_profile
from .request import parse_chat_request
from .watchdog import SilenceWatchdog
from .web_json import error_response, read_json

log = logging.getLogger(__name__)


class LazyStart:
    """Send the 200 with the first text, or after `first_byte_s` of silence, whichever is first.

    Until then an upstream failure can still get its own status; after it, routers that
    want a first byte within 30 s keep the connection while a model is thinking.
    """

    def __init__(self, request: web.Request, response: web.StreamResponse, after_s: float) -> None:
        self._request, self._response = request, response
        self._task: asyncio.Task[object] | None = None
        self._timer = asyncio.get_running_loop().call_later(after_s, self.start)

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> asyncio.Task[object]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._response.prepare(self._request))
        return self._task

    async def close(self) -> None:
        self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()


def sse_event(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_bytes(event: ChatEvent) -> bytes:
    if isinstance(event, Done):
        return sse_event("done", {"finish_reason": event.finish_reason, "usage": event.usage})
    return sse_event(event.kind, {"content": event.content})


def text_bytes(event: ChatEvent) -> bytes:
    return event.content.encode() if isinstance(event, Delta) else b""


async def chat_openrouter(request: web.Request) -> web.StreamResponse:
    chat = parse_chat_request(await read_json(request))
    profile = await request_profile(request)
    api_key = check_api_key(profile)
    lease = await admit_chat(request, profile)
    as_sse = wants_event_stream(request.headers)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream" if as_sse else "text/plain; charset=utf-8",
            "Cache-Control": "no-cache",
            # Proxies such as nginx buffer streamed bodies unless told not to.
            "X-Accel-Buffering": "no",
        }
    )
    encode = sse_bytes if as_sse else text_bytes
    settings = request.app[settings_key]
    start = LazyStart(request, response, settings.first_byte_s)
    events = stream_chat(
        chat,
        api_key,
        request.app[openrouter_key],
        transport="sse" if as_sse else "http",
        chat_id=secrets.token_hex(6),
    )
    # SPEC's slow reader: a client that accepts nothing for write_timeout_s is dropped.
    writes = SilenceWatchdog(
        settings.write_timeout_s,
        f"The client accepted nothing for {settings.write_timeout_s:g} seconds",
        error=ClientTooSlow,
    )
    answered = False
    try:
        async with lease, running_chat(request.app), aclosing(events):
            async for event in events:
                data = encode(event)
                if data:
                    with writes:
                        await start.start()
                        await response.write(data)
                if isinstance(event, Done):
                    # The answer is complete: end the body now, while the core winds the
                    # upstream connection down for reuse.
                    with writes:
                        await start.start()
                        await response.write_eof()
                    answered = True
        return response
    except ClientTooSlow as error:
        # Telling it would wait on the same client: drop the connection instead.
        log.info("chat stopped: %s", error.message)
        if request.transport is not None:
            request.transport.abort()
        return response
    except ConnectionResetError:
        # The client left mid-stream: the core logs the chat as cancelled; not a failure.
        return response
    except ChatError as error:
        if answered:  # e.g. a shutdown while upstream's connection was being wound down
            return response
        return await _fail(request, response, start, error, as_sse)
    except Exception:
        log.exception("chat failed")
        if answered:
            return response
        return await _fail(request, response, start, InternalError(), as_sse)
    finally:
        writes.close()
        await start.close()


async def _fail(
    request: web.Request,
    response: web.StreamResponse,
    start: LazyStart,
    error: ChatError,
    as_sse: bool,
) -> web.StreamResponse:
    if not start.started:
        return error_response(error)
    await start.start()
    if as_sse:
        await response.write(sse_event("error", error.to_dict()))
        await response.write_eof()
        return response
    # Plain text has no way to say "failed" in-band: drop the connection before the last
    # chunk, so the client's read fails instead of showing a silently truncated answer.
    log.warning("chat failed after the 200 status=%d message=%s", error.status, error.message)
    if request.transport is not None:
        request.transport.abort()
    return response


def setup_http_route(app: web.Application) -> None:
    app.router.add_post("/api/chat/openrouter", chat_openrouter)
