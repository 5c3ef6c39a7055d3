"""What a process admitted stops when its account is disabled or deleted, or its session or
token ends elsewhere: a watcher checks the database each second for the accounts of the
chats running here and the sockets open here, and ends those chats with 403 and closes
those sockets. The process that made the change does it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from server.errors import AccountStoreUnavailable, Forbidden
from server.registry import registry_key
from server.relay.runs import Run
from server.users.credentials import digest
from server.users.db import database_key
from server.users.sessions import StillValid, still_valid
from server.web.identity import Identity

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
CLOSE_MESSAGE = b"Signed out"
CLOSE_WAIT_S = 2.0


class Watched:
    """The sockets open here that an account's session or token opened."""

    def __init__(self) -> None:
        self.sockets: weakref.WeakKeyDictionary[web.WebSocketResponse, Identity] = (
            weakref.WeakKeyDictionary()
        )


watched_key = web.AppKey("watched", Watched)


def watch_socket(
    app: web.Application, ws: web.WebSocketResponse, identity: Identity | None
) -> None:
    """Close `ws` once its account, session or token is no longer good."""
    if identity is not None:
        app[watched_key].sockets[ws] = identity


def account_runs(app: web.Application) -> list[Run]:
    return [
        run
        for run in app[registry_key].runs
        if isinstance(run, Run) and run.observer.account_id is not None
    ]


def end_chats_of(app: web.Application, account_ids: set[str]) -> set[str]:
    """End the chats of these accounts running here with 403; the accounts that had some."""
    ended = set()
    for run in account_runs(app):
        if run.observer.account_id in account_ids and run.running:
            run.cancel(Forbidden("This account is disabled"))
            ended.add(run.observer.account_id)
    return ended


async def check_once(app: web.Application) -> None:
    runs = account_runs(app)
    sockets = dict(app[watched_key].sockets)
    if not runs and not sockets:
        return
    account_ids = {run.observer.account_id for run in runs if run.observer.account_id}
    account_ids |= {identity.account.id for identity in sockets.values()}
    session_digests = {digest(i.session_id) for i in sockets.values() if i.session_id}
    token_digests = {i.token_digest for i in sockets.values() if i.token_digest}
    async with app[database_key].transaction(write=False) as connection:
        valid = await still_valid(connection, account_ids, session_digests, token_digests)
    # Their sockets close on the next round: the chats' 403 frames go out first.
    ending = end_chats_of(app, account_ids - valid.accounts)
    closing = []
    for ws, identity in sockets.items():
        if identity.account.id in ending:
            continue
        if not ws.closed and not still_admitted(identity, valid):
            app[watched_key].sockets.pop(ws, None)
            close = ws.close(code=WSCloseCode.POLICY_VIOLATION, message=CLOSE_MESSAGE)
            closing.append(asyncio.ensure_future(close))
    if closing:
        # Bounded: each close waits for the client's answer.
        await asyncio.wait(closing, timeout=CLOSE_WAIT_S)


def still_admitted(identity: Identity, valid: StillValid) -> bool:
    if identity.account.id not in valid.accounts:
        return False
    if identity.session_id is not None:
        return digest(identity.session_id) in valid.session_digests
    return identity.token_digest is None or identity.token_digest in valid.token_digests


async def watch_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        try:
            await check_once(app)
        except AccountStoreUnavailable:
            pass  # checked again once the database is back
        except Exception:
            log.exception("revocation check failed")


async def revocation_watch(app: web.Application) -> AsyncIterator[None]:
    app[watched_key] = Watched()
    task = asyncio.create_task(watch_forever(app))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup_revocation(app: web.Application) -> None:
    app.cleanup_ctx.append(revocation_watch)
