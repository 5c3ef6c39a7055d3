"""/v1/responses: OpenAI's Responses API over the same core and runs as every chat.

A response is a run (server/relay/runs.py) whose log the translation in
server/relay/responses.py reads back as OpenAI's typed events; these routes only start it,
read it and stop it. Without `background` a client that leaves stops it, as on
/v1/chat/completions; with it the run goes on, and GET /v1/responses/{id}?stream=true
&starting_after=N follows it from any process (through Redis). A response is kept like any
chat: CHAT_RETENTION_S after its end, under its owner (the session, else whoever holds its
random id); another owner's id is the same 404 as an unknown one.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

from aiohttp import web

from server.errors import BadRequest, ChatError
from server.relay.responses import ResponseLog, log_as, response_head
from server.relay.responses_request import parse_response_request
from server.relay.runs import runs_key
from server.store.events import Failed, Raw, chat_store_key
from server.web.budget_gate import (
    decoded,
    hooks_of,
    metered,
    requested_tokens,
    run_started,
    with_tokens,
)
from server.web.history_service import signed_in_account_id
from server.web.http_io import expect_within_limit, json_response, read_json
from server.web.http_route import error_of
from server.web.limits import admit_chat
from server.web.openai_api import caller_profile
from server.web.openai_errors import openai_error_response
from server.web.profile import chat_owner, check_api_key
from server.web.responses_history import answer_hooks, continued, stored_turn
from server.web.responses_kept import (
    find_key,
    read_ended,
    read_log,
    resolve_references,
    response_key,
)
from server.web.responses_stream import stream_response

MAX_LIST_LIMIT = 100


async def find_response(request: web.Request) -> str:
    """The key of the caller's response named in the path; 404 for anyone else's."""
    return await find_key(request, request.match_info["response_id"])


async def create_response(request: web.Request) -> web.StreamResponse:
    ask = parse_response_request(await resolve_references(request, await read_json(request)))
    account_id = await signed_in_account_id(request)
    ask, place = await continued(request, ask, account_id)
    profile = await caller_profile(request)
    api_key = check_api_key(profile)
    lease = await admit_chat(request, profile)
    payload = ask.payload
    requested = requested_tokens(payload, "max_tokens")
    # Decoded only to price an account's prompt, and not kept (as on /v1/chat/completions).
    messages = decoded(payload.get("messages")) if account_id is not None else None
    meter = await metered(request, profile, lease, account_id, ask.model, messages, requested)
    del messages
    if meter is not None and meter.max_tokens is not None and meter.max_tokens != requested:
        ask = dataclasses.replace(ask, payload=with_tokens(payload, meter.max_tokens, "max_tokens"))
    response_id = "resp_" + secrets.token_hex(24)
    try:
        writer, conversation_id = await stored_turn(request, ask, account_id, place, response_id)
    except BaseException:
        await lease.release()
        if meter is not None:
            await meter.release()
        raise
    head = response_head(
        response_id,
        int(time.time()),
        ask.echo,
        ask.input_items,
        background=ask.background,
        # Kept in an account's history only: without an account, as if false (SPEC).
        store=writer is not None,
        previous_response_id=ask.previous_response_id,
        conversation_id=conversation_id,
    )
    key = response_key(await chat_owner(request), response_id)
    hooks = hooks_of(meter) + answer_hooks(writer)  # settled first, as in chat_start
    starting = request.app[runs_key].start(
        key,
        response_id,
        "v1",
        ask,
        api_key,
        lease,
        hooks,
        log_as=log_as(head),
        max_chars=None if meter is None else meter.max_chars,
    )
    try:
        run = await run_started(meter, starting)
    except ChatError as error:
        if writer is not None:  # its message must not say `streaming` forever
            await writer.failed_to_start(error)
        raise
    # Its log line names the account, and revocation finds it (nothing awaited since start).
    run.observer.account_id = account_id
    try:
        if ask.stream:
            answered = await stream_response(request, key, after=0, lazy=True)
        elif ask.background:
            reading = ResponseLog()
            reading.take([Raw(head.decode())])
            return json_response(reading.response())
        else:
            answered = await answer_response(request, key)
        # The next request on this keep-alive connection waits for this handler: upstream's
        # connection goes back to the pool first (as on the chat route).
        await run.wound_down()
        return answered
    finally:
        # Without `background` a client that leaves stops the response, as on chat completions.
        if not ask.background:
            run.cancel()


async def answer_response(request: web.Request, key: str) -> web.StreamResponse:
    """The whole response once it has ended; a failure is an HTTP error in OpenAI's shape."""
    reading = await read_log(request, key, until_end=True)
    if isinstance(reading.final, Failed):
        return openai_error_response(error_of(reading.final))
    return json_response(reading.response())


def query_flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false")
    return value in ("true", "1")


def query_count(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, str(default)).strip()
    # ASCII only: int() would read other scripts' digits (server/web/http_route.py).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"{name} must be a whole number of 0 or more")
    return int(raw)


async def retrieve_response(request: web.Request) -> web.StreamResponse:
    stream = query_flag(request, "stream")
    after = query_count(request, "starting_after", 0)
    key = await find_response(request)
    if stream:
        return await stream_response(request, key, after=after, lazy=False)
    return json_response((await read_log(request, key, until_end=False)).response())


async def cancel_response(request: web.Request) -> web.Response:
    key = await find_response(request)
    await request.app[chat_store_key].cancel(key)
    return json_response((await read_ended(request, key)).response())


async def delete_response(request: web.Request) -> web.Response:
    key = await find_response(request)
    store = request.app[chat_store_key]
    await store.cancel(key)
    reading = await read_ended(request, key)
    await store.forget(key)
    return json_response({"id": reading.response()["id"], "object": "response", "deleted": True})


async def list_input_items(request: web.Request) -> web.Response:
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    limit = query_count(request, "limit", 20)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIST_LIMIT}")
    key = await find_response(request)
    items = (await read_log(request, key, until_end=False)).input_items()
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


def setup_responses_api(app: web.Application) -> None:
    app.router.add_post("/v1/responses", create_response, expect_handler=expect_within_limit)
    app.router.add_get("/v1/responses/{response_id}", retrieve_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_post(
        "/v1/responses/{response_id}/cancel", cancel_response, expect_handler=expect_within_limit
    )
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)
