"""The HTTP chat routes: POST /api/chat/openrouter, and resuming or stopping a chat by its id.

The POST's chat log is written as plain text, or as SSE when Accept asks for it;
GET /api/chats/{id}/events resumes a chat as SSE and DELETE /api/chats/{id} stops it.
It stays whole past 300 lines: the POST and the resume write one log through one listener
(LiveBody), and splitting them would put that listener in a third module both import.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence

import mimeparse
import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from server.config import settings_key
from server.errors import BadRequest, ChatError, ClientTooSlow
from server.relay.request import ChatRequest, parse_chat_request
from server.relay.runs import chat_key, runs_key
from server.relay.upstream_answer import SilenceWatchdog
from server.store.events import Delta, Done, Failed, LogEvent, chat_store_key, merged
from server.web.budget_gate import capped, metered
from server.web.chat_start import start_chat_run
from server.web.history_service import signed_in_account_id
from server.web.http_io import error_response, expect_within_limit, read_json
from server.web.limits import admit_chat, take_socket_slot
from server.web.profile import chat_owner, check_api_key, request_profile

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Proxies such as nginx buffer streamed bodies unless told not to.
    "X-Accel-Buffering": "no",
}
EVENT_STREAM = "text/event-stream"
PLAIN_TEXT = "text/plain"
# Ties go to the last one: plain text is what a client that states no preference gets.
OFFERED = [EVENT_STREAM, PLAIN_TEXT]


def wants_event_stream(headers: CIMultiDictProxy[str]) -> bool:
    """Whether Accept prefers SSE: media ranges compared as media types (case-insensitive,
    parameters and q-values respected), never as substrings."""
    accept = ",".join(headers.getall("Accept", ()))
    if not accept.strip():
        return False
    try:
        best = mimeparse.best_match(OFFERED, accept.lower())
    except ValueError:  # a malformed header states no usable preference
        return False
    return bool(best == EVENT_STREAM)


class LazyStart:
    """Send the 200 with the first text, or after `first_byte_s` of silence, whichever is first.

    Until then an upstream failure can still get its own status; after it, routers that
    want a first byte within 30 s keep the connection while a model is thinking.
    """

    def __init__(self, request: web.Request, response: web.StreamResponse, after_s: float) -> None:
        self._request, self._response = request, response
        self.started = False
        # The 200 is out: nothing more to wait for (the per-token path checks only this).
        self.prepared = False
        # The silence's start, in a task of its own; the first text starts it in its writer.
        self._task: asyncio.Task[object] | None = None
        self._timer = asyncio.get_running_loop().call_later(after_s, self._silence)

    def _silence(self) -> None:
        if not self.started:
            self.started = True
            self._task = asyncio.ensure_future(self._response.prepare(self._request))

    async def start(self) -> None:
        if not self.started:
            # Prepared right here, not in a task: a chat's first text takes no extra turn
            # of the loop (under a burst of chats, each turn waits for all the others).
            self.started = True
            self._timer.cancel()
            await self._response.prepare(self._request)
        elif self._task is not None:
            await self._task
        self.prepared = True

    async def close(self) -> None:
        self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()


class LiveBody:
    """The response as a live listener (server/store/events.py): a read the client keeps up with
    is written from the run's task, no wake-up of this one; the first text sends the 200."""

    __slots__ = ("encode", "response", "start", "transport")

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        start: LazyStart,
        encode: Callable[[int, Sequence[LogEvent]], bytes],
    ) -> None:
        self.response, self.start, self.encode = response, start, encode
        # Looked up once per chat, not per token: the connection's transport is the same
        # for the request's life, and says it is closing once the connection is lost.
        self.transport = request.transport

    def ready(self) -> bool:
        transport = self.transport
        return not (
            transport is None or transport.get_write_buffer_size() or transport.is_closing()
        )

    async def write(self, first_seq: int, events: Sequence[LogEvent]) -> None:
        data = self.encode(first_seq, events)
        if data:
            if not self.start.prepared:
                await self.start.start()
            await self.response.write(data)


def sse_event(name: str, data: object, seq: int | None = None) -> bytes:
    event_id = b"" if seq is None else b"id: " + str(seq).encode() + b"\n"
    return b"event: " + name.encode() + b"\n" + event_id + b"data: " + orjson.dumps(data) + b"\n\n"


def sse_bytes(first_seq: int, events: Sequence[LogEvent]) -> bytes:
    """The events as SSE, each with `id: <seq>` so a client can resume with Last-Event-ID."""
    out = []
    for seq, event in merged(first_seq, events):
        if isinstance(event, Done):
            data = {"finish_reason": event.finish_reason, "usage": event.usage}
            out.append(sse_event("done", data, seq))
        elif isinstance(event, Failed):
            out.append(sse_event("error", event.to_dict(), seq))
        else:
            out.append(sse_event(event.kind, {"content": event.content}, seq))
    return b"".join(out)


def text_bytes(first_seq: int, events: Sequence[LogEvent]) -> bytes:
    if len(events) == 1:  # the per-token path: one read, one piece of text
        event = events[0]
        return event.content.encode() if type(event) is Delta else b""
    return b"".join(e.content.encode() for e in events if isinstance(e, Delta))


def parse_post(body: object) -> tuple[ChatRequest, bool]:
    """The chat, and whether it is resumable (top-level `"resumable": true`). The decoded
    body is not kept: a running chat holds its request encoded, about its size."""
    return parse_chat_request(body), isinstance(body, dict) and body.get("resumable") is True


async def chat_openrouter(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    chat, resumable = parse_post(body)
    conversation = body.get("conversation") if isinstance(body, dict) else None
    profile = await request_profile(request)
    api_key = check_api_key(profile)
    lease = await admit_chat(request, profile)
    account_id = await signed_in_account_id(request)
    messages = body.get("messages") if isinstance(body, dict) else None
    meter = await metered(
        request, profile, lease, account_id, chat.model, messages, chat.max_tokens
    )
    del body, messages  # a running chat holds its request encoded, not decoded
    chat = capped(chat, meter)
    as_sse = wants_event_stream(request.headers)
    # Random and long: for a POST without a session, holding the id is what owning it means.
    chat_id = secrets.token_hex(16)
    key = chat_key(await chat_owner(request), chat_id)
    transport = "sse" if as_sse else "http"
    run = await start_chat_run(
        request.app,
        key,
        chat_id,
        transport,
        chat,
        api_key,
        lease,
        account_id=account_id,
        conversation=conversation,
        meter=meter,
    )
    response = web.StreamResponse(
        headers={
            **SSE_HEADERS,
            "Content-Type": "text/event-stream" if as_sse else "text/plain; charset=utf-8",
            "X-Chat-Id": chat_id,
        }
    )
    dropped: ClientTooSlow | None = None
    try:
        answered = await relay(request, response, key, as_sse)
        # The next request on this keep-alive connection waits for this handler: let upstream's
        # connection go back to the pool first, so the client's next chat reuses it.
        await run.wound_down()
        return answered
    except ClientTooSlow as error:
        dropped = error
        return response
    finally:
        # A plain POST's client leaving stops its chat at once (chatbot-ui's Stop is an
        # abort); a resumable one's goes on for whoever resumes it. One we dropped for not
        # reading is logged as that failure, not as the client's cancel.
        if not resumable:
            run.cancel(dropped)


async def relay(
    request: web.Request, response: web.StreamResponse, key: str, as_sse: bool
) -> web.StreamResponse:
    """Write a chat's log to a POST's response, its 200 sent lazily (LazyStart); ClientTooSlow
    once the client, having accepted nothing for WRITE_TIMEOUT_S, is dropped."""
    encode = sse_bytes if as_sse else text_bytes
    settings = request.app[settings_key]
    start = LazyStart(request, response, settings.first_byte_s)
    live = LiveBody(request, response, start, encode)
    events = request.app[chat_store_key].read(key, 0, live)
    writes = client_writes(request)
    final: LogEvent | None = None
    try:
        try:
            async for first_seq, logged in events:
                final = logged[-1]
                # Nothing written yet: upstream's error can still have its own status.
                if isinstance(final, Failed) and not start.started:  # noqa: SIM102
                    if not encode(first_seq, logged[:-1]):
                        return error_response(error_of(final))
                data = encode(first_seq, logged)
                if data:
                    with writes:
                        await start.start()
                        await response.write(data)
        except ClientTooSlow:
            raise
        except ChatError as error:  # the store lost the chat (expired, Redis down)
            if not start.started:
                return error_response(error)
            final = Failed(error.status, error.message)
            if as_sse:
                with writes:
                    await response.write(sse_event("error", final.to_dict()))
        with writes:
            await start.start()
            return await finish(request, response, final, as_sse)
    except ClientTooSlow as error:
        # Telling it would wait on the same client: drop the connection instead.
        log.info("chat stopped: %s", error.message)
        if request.transport is not None:
            request.transport.abort()
        raise
    except ConnectionResetError:
        # The client left mid-stream: not a failure (the chat's line says what became of it).
        return response
    finally:
        writes.close()
        await start.close()


async def finish(
    request: web.Request, response: web.StreamResponse, final: LogEvent | None, as_sse: bool
) -> web.StreamResponse:
    if isinstance(final, Failed) and not as_sse:
        # Plain text has no way to say "failed" in-band: drop the connection before the last
        # chunk, so the client's read fails instead of showing a silently truncated answer.
        log.warning("chat failed after the 200 status=%d message=%s", final.status, final.message)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


def client_writes(request: web.Request) -> SilenceWatchdog:
    """SPEC's slow reader: a client that accepts nothing for write_timeout_s is dropped."""
    timeout_s = request.app[settings_key].write_timeout_s
    return SilenceWatchdog(
        timeout_s, f"The client accepted nothing for {timeout_s:g} seconds", error=ClientTooSlow
    )


def error_of(final: Failed) -> ChatError:
    error = ChatError(final.message, status=final.status, retry_after=final.retry_after)
    error.logged_code = final.code
    return error


def resume_after(request: web.Request) -> int:
    """The last seq the client has: `after=` in the query, else SSE's Last-Event-ID."""
    raw = request.query.get("after", request.headers.get("Last-Event-ID", "0")).strip() or "0"
    # ASCII only: str.isdigit passes "²", which int() refuses, and Arabic-Indic digits,
    # which int() reads as numbers.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("after (or Last-Event-ID) must be a whole number of 0 or more")
    return int(raw)


async def chat_events(request: web.Request) -> web.StreamResponse:
    after = resume_after(request)
    chat_id = request.match_info["chat_id"]
    key = await request.app[runs_key].find(await chat_owner(request), chat_id)
    # A listener holds a connection as long as a WebSocket does: it takes one of the
    # address's MAX_SOCKETS_PER_CLIENT slots, and one that reads nothing is dropped.
    slot = await take_socket_slot(request)
    writes = client_writes(request)
    try:
        response = web.StreamResponse(headers={**SSE_HEADERS, "X-Chat-Id": chat_id})
        with writes:
            await response.prepare(request)
        try:
            async for first_seq, events in request.app[chat_store_key].read(key, after):
                with writes:
                    await response.write(sse_bytes(first_seq, events))
        except ClientTooSlow:
            raise
        except ChatError as error:  # expired meanwhile, or the store went away
            with writes:
                await response.write(sse_event("error", error.to_dict()))
        with writes:
            await response.write_eof()
        return response
    except ClientTooSlow as error:
        log.info("listener dropped: %s", error.message)
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        writes.close()
        if slot is not None:
            await slot.release()


async def delete_chat(request: web.Request) -> web.Response:
    chat_id = request.match_info["chat_id"]
    key = await request.app[runs_key].find(await chat_owner(request), chat_id)
    await request.app[chat_store_key].cancel(key)
    return web.Response(status=204)


def setup_http_route(app: web.Application) -> None:
    app.router.add_post("/api/chat/openrouter", chat_openrouter, expect_handler=expect_within_limit)
    app.router.add_get("/api/chats/{chat_id}/events", chat_events)
    app.router.add_delete("/api/chats/{chat_id}", delete_chat)
