"""The history's parts in the app: the History, the Answers its chats write and the live
SyncBus, for the app's lifetime; how a route gets its account; and what the transports call
for a chat that carries `conversation` and for a socket that hears `sync` frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

import orjson
from aiohttp import WSMsgType, web

from server.errors import AccountStoreUnavailable, BadRequest, ChatError
from server.relay.runs import chat_key
from server.store.events import Done, Failed, Final, chat_store_key
from server.store.redis_conn import redis_key
from server.users.answers import Answers, AnswerWriter, parse_conversation
from server.users.db import database_key
from server.users.history import History
from server.users.live import SyncBus
from server.users.runners import start_watch, sweep
from server.web.identity import account_owner, request_identity

log = logging.getLogger(__name__)

history_key = web.AppKey("history", History)
answers_key = web.AppKey("answers", Answers)
sync_bus_key = web.AppKey("sync_bus", SyncBus)
# At shutdown, answers still being written get this long to land.
ANSWER_WRITES_WAIT_S = 3.0


async def history_service(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, before chat_runs: the runs that a shutdown ends write their answers
    before this cleanup waits for them."""
    bus = app[sync_bus_key] = SyncBus(app[redis_key])
    history = app[history_key] = History(app[database_key], bus.changed)
    answers = app[answers_key] = Answers(history)
    bus.start()
    # With Redis a dead process's chats outlive it: their answers are read back from there.
    replay = partial(replay_chat, app) if app[redis_key] is not None else None
    try:
        await answers.beat()
        if replay is None:
            await sweep(answers)  # what a process that died left streaming, marked at once
    except AccountStoreUnavailable:
        pass  # the watch tries again
    start_watch(answers, replay)
    try:
        yield
    finally:
        await answers.close(ANSWER_WRITES_WAIT_S)
        await bus.close()


async def replay_chat(
    app: web.Application, account_id: str, chat_id: str, writer: AnswerWriter
) -> Final | None:
    """A cut-off answer's chat read from the shared store into its writer: its final event
    (503 for a chat whose process died), or None when the store does not have it."""
    store = app.get(chat_store_key)
    if store is None or not store.shared:
        return None
    final: Final | None = None
    async for _, events in store.read(chat_key(account_owner(account_id), chat_id), 0):
        writer.seen(events)
        if isinstance(events[-1], Done | Failed):
            final = events[-1]
    return final


def setup_history(app: web.Application) -> None:
    app.cleanup_ctx.append(history_service)


async def account_id_of(request: web.Request) -> str:
    """The signed-in account's id; 401 without one (history is an account's)."""
    account_id = await signed_in_account_id(request)
    if account_id is None:
        raise AccessDeniedSignIn()
    return account_id


class AccessDeniedSignIn(ChatError):
    http_status = 401
    code = "sign_in_required"

    def __init__(self) -> None:
        super().__init__("Sign in required")


async def signed_in_account_id(request: web.Request) -> str | None:
    """The id of the account the request acts as (session or personal token), or None."""
    identity = await request_identity(request)
    return None if identity is None else identity.account.id


async def answer_writer(
    app: web.Application, account_id: str | None, conversation: object, chat_id: str, model: str
) -> AnswerWriter | None:
    """The run hook of a chat that carries `conversation`, its message made; None without."""
    if conversation is None:
        return None
    if account_id is None:
        raise BadRequest("conversation needs a signed-in account: history is kept per account")
    parsed = parse_conversation(conversation)
    return await app[answers_key].start(account_id, parsed, chat_id, model)


class SyncFrames:
    """A socket's `sync` frames: one send at a time, the newest version wins meanwhile."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.version = 0
        self.sending: asyncio.Task[None] | None = None

    def __call__(self, version: int) -> None:
        self.version = max(self.version, version)
        if self.sending is None or self.sending.done():
            self.sending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        sent = 0
        while self.version > sent and not self.ws.closed:
            sent = self.version
            frame = orjson.dumps({"type": "sync", "version": sent})
            try:
                await self.ws.send_frame(frame, WSMsgType.TEXT)
            except ConnectionResetError:
                return


def hear_sync(
    app: web.Application, account_id: str | None, ws: web.WebSocketResponse
) -> Callable[[], None]:
    """Subscribe a signed-in socket to its account's versions; the result unsubscribes."""
    if account_id is None:
        return lambda: None
    return app[sync_bus_key].subscribe(account_id, SyncFrames(ws))
