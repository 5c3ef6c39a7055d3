"""Graceful shutdown: running chats finish within SHUTDOWN_GRACE, then end cleanly.

Once listening stops (server/runner.py), new chats get 503 and running ones may finish;
when the grace runs out, each chat still running ends with a 503 error event and every
WebSocket closes with 1001. When the chat store is shared (Redis), every WebSocket closes
at once with 1012 instead: the page reconnects to another process and follows its chats
there, through the store, while this one keeps running them for the grace.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, web

from .config import settings_key
from .registry import Registry, registry_key
from .store import chat_store_key

log = logging.getLogger(__name__)

# After the grace: time for ended chats to send their error, then for sockets to close.
END_WAIT_S = 1.0
CLOSE_WAIT_S = 2.0
# aiohttp's shutdown_timeout for handlers still running after on_shutdown (none of ours);
# aiohttp may wait it twice, once before and once after cancelling them.
HANDLER_WAIT_S = 1.5
PLATFORM_KILL_S = 30.0


def shutdown_budget_s(grace_s: float) -> float:
    """The longest a shutdown takes after SIGTERM, with a grace period of `grace_s`."""
    return grace_s + END_WAIT_S + CLOSE_WAIT_S + 2 * HANDLER_WAIT_S


async def finish_chats(app: web.Application) -> None:
    """Hold the grace period, then end what still runs with 503 and close every WebSocket.

    GracefulRunner (server/runner.py) calls it, once, before aiohttp's own cleanup.
    """
    registry = app[registry_key]
    grace_s = app[settings_key].shutdown_grace_s
    registry.draining = True
    if app[chat_store_key].shared:
        await close_sockets(registry, WSCloseCode.SERVICE_RESTART, b"Server restart")
    if registry.runs:
        log.info("shutdown: waiting up to %.0f s for %d chats", grace_s, len(registry.runs))
    if not await registry.wait_idle(grace_s):
        log.warning("shutdown: ending %d chats still running", len(registry.runs))
        registry.shut_down_runs()
        await registry.wait_idle(END_WAIT_S)
    await registry.wait_listeners(END_WAIT_S)
    # The chats' last frames went out on their sockets (or through the store): close them.
    await close_sockets(registry, WSCloseCode.GOING_AWAY, b"Server shutdown")


async def close_sockets(registry: Registry, code: int, message: bytes) -> None:
    # Concurrently and bounded: each close waits for the client's answer.
    closing = [
        asyncio.ensure_future(ws.close(code=code, message=message))
        for ws in registry.sockets.copy()
    ]
    if not closing:
        return
    _, pending = await asyncio.wait(closing, timeout=CLOSE_WAIT_S)
    for task in pending:
        task.cancel()


def setup_shutdown(app: web.Application) -> None:
    app[registry_key] = Registry()
    grace_s = app[settings_key].shutdown_grace_s
    if shutdown_budget_s(grace_s) >= PLATFORM_KILL_S:
        log.warning(
            "SHUTDOWN_GRACE=%s: a shutdown may take %.0f s, past a platform's %.0f s kill",
            grace_s,
            shutdown_budget_s(grace_s),
            PLATFORM_KILL_S,
        )
