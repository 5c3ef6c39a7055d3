"""GET /api/chats/{id}/events (resume a chat as SSE) and DELETE /api/chats/{id} (stop it)."""

from __future__ import annotations

from aiohttp import web

from .errors import BadRequest, ChatError
from .http_route import SSE_HEADERS, sse_bytes, sse_event
from .profile import chat_owner
from .runs import runs_key
from .store import chat_store_key


def resume_after(request: web.Request) -> int:
    """The last seq the client has: `after=` in the query, else SSE's Last-Event-ID."""
    raw = request.query.get("after", request.headers.get("Last-Event-ID", "0")).strip() or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("after (or Last-Event-ID) must be a whole number of 0 or more")
    return int(raw)


async def chat_events(request: web.Request) -> web.StreamResponse:
    after = resume_after(request)
    chat_id = request.match_info["chat_id"]
    key = await request.app[runs_key].find(await chat_owner(request), chat_id)
    response = web.StreamResponse(headers={**SSE_HEADERS, "X-Chat-Id": chat_id})
    await response.prepare(request)
    try:
        async for first_seq, events in request.app[chat_store_key].read(key, after):
            await response.write(sse_bytes(first_seq, events))
    except ChatError as error:  # expired meanwhile, or the store went away
        await response.write(sse_event("error", error.to_dict()))
    await response.write_eof()
    return response


async def delete_chat(request: web.Request) -> web.Response:
    chat_id = request.match_info["chat_id"]
    key = await request.app[runs_key].find(await chat_owner(request), chat_id)
    await request.app[chat_store_key].cancel(key)
    return web.Response(status=204)


def setup_chats_route(app: web.Application) -> None:
    app.router.add_get("/api/chats/{chat_id}/events", chat_events)
    app.router.add_delete("/api/chats/{chat_id}", delete_chat)
