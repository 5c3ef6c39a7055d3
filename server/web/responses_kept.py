"""A response's log in the chat store: its key under its owner, finding it for a caller,
and reading it back (server/relay/responses.py translates it).

A response is kept like any chat, CHAT_RETENTION_S after its end, under its owner: the
session that made it, or whoever holds its random id when there was no session (the SDKs
keep no cookies). Another owner's id gets the same 404 as an unknown one.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from server.errors import BadRequest, ResponseNotFound
from server.relay.responses import RESPONSE_ID, ResponseLog
from server.relay.runs import ANONYMOUS, chat_key
from server.store.events import chat_store_key
from server.web.profile import chat_owner

# GET without stream: what the log holds now; a read that brings nothing new for this long
# has caught up with a running response.
CAUGHT_UP_S = 0.05
FIRST_READ_S = 2.0
# Cancel and delete answer once the run has ended, which a cancel makes take a moment.
END_WAIT_S = 5.0


def response_key(owner: str | None, response_id: str) -> str:
    # A namespace of their own: a chat route never reads a response's log, nor this one a chat's.
    return chat_key(f"responses.{owner or ANONYMOUS}", response_id)


async def find_key(request: web.Request, response_id: str) -> str:
    """The key of the caller's response with that id; 404 for anyone else's."""
    if not RESPONSE_ID.fullmatch(response_id):
        raise ResponseNotFound(None)
    store = request.app[chat_store_key]
    for owner in {await chat_owner(request), None}:
        key = response_key(owner, response_id)
        if await store.exists(key):
            return key
    raise ResponseNotFound(response_id)


async def read_log(request: web.Request, key: str, *, until_end: bool) -> ResponseLog:
    """The response as its log holds it: to its end (`until_end`), or as it stands now."""
    reading = ResponseLog()
    reads = request.app[chat_store_key].read(key, 0)
    try:
        while not reading.ended:
            wait = None if until_end else (CAUGHT_UP_S if reading.started else FIRST_READ_S)
            try:
                async with asyncio.timeout(wait):
                    _, logged = await anext(reads)
            except (StopAsyncIteration, TimeoutError):
                break
            reading.take(logged)
    finally:
        # Leave the store's read now, not when it is collected: the listener is counted.
        close = getattr(reads, "aclose", None)
        if close is not None:
            await close()
    if not reading.started:
        raise ResponseNotFound(key.partition(":")[2])
    return reading


async def read_ended(request: web.Request, key: str) -> ResponseLog:
    """The response once it has ended, or as it stands after END_WAIT_S."""
    try:
        async with asyncio.timeout(END_WAIT_S):
            return await read_log(request, key, until_end=True)
    except TimeoutError:
        return await read_log(request, key, until_end=False)


# An item's id says where it is: the response (its 48 hex digits), input or output, the index.
ITEM_ID = re.compile(r"(?:msg|rs|fc|fco)_([0-9a-f]{48})([io])([0-9]{1,6})")


async def resolve_references(request: web.Request, body: object) -> object:
    """The body with each `item_reference` input item replaced by the item it names, from
    the caller's responses still kept (the Vercel AI SDK sends earlier answers that way)."""
    items = body.get("input") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(items, list):
        return body
    logs: dict[str, ResponseLog] = {}
    resolved = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            resolved.append(await referenced(request, item.get("id"), f"input[{index}]", logs))
        else:
            resolved.append(item)
    return {**body, "input": resolved}


async def referenced(
    request: web.Request, item_id: object, where: str, logs: dict[str, ResponseLog]
) -> dict[str, Any]:
    match = ITEM_ID.fullmatch(item_id) if isinstance(item_id, str) else None
    if match is None:
        raise BadRequest(f"{where}.id must name an item of a response kept here")
    response_id = "resp_" + match[1]
    if response_id not in logs:
        try:
            key = await find_key(request, response_id)
        except ResponseNotFound:
            raise BadRequest(f"{where}.id names no item of a response kept here") from None
        logs[response_id] = await read_log(request, key, until_end=False)
    log = logs[response_id]
    kept = log.input_items() if match[2] == "i" else log.response()["output"]
    found = next((item for item in kept if item.get("id") == item_id), None)
    if not isinstance(found, dict):
        raise BadRequest(f"{where}.id names no item of a response kept here")
    return found
