"""Graceful shutdown: running chats finish within SHUTDOWN_GRACE, then end cleanly.

Once listening stops (server/runner.py), new chats get 503 and running ones may finish;
when the grace runs out, each chat still running ends with a 503 error (an error frame,
an SSE error event, or an aborted plain stream) and every WebSocket closes with 1001.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, web

from .config import settings_key
from .drain import Drain, drain_key
from .ws_route import sockets_key

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
    """Hold the grace period once, then close every WebSocket with 1001.

    GracefulRunner calls it before aiohttp's cleanup; as an on_shutdown hook it also
    covers other runners, and closes any socket opened since the first call.
    """
    drain = app[drain_key]
    grace_s = app[settings_key].shutdown_grace_s
    if drain.draining:
        await close_sockets(app)
        return
    drain.draining = True
    if drain.deadlines:
        log.info("shutdown: waiting up to %.0f s for %d chats", grace_s, len(drain.deadlines))
    if not await drain.wait_idle(grace_s):
        log.warning("shutdown: ending %d chats still running", len(drain.deadlines))
        drain.end_all()
        await drain.wait_idle(END_WAIT_S)
    await close_sockets(app)


async def close_sockets(app: web.Application) -> None:
    # Concurrently and bounded: each close waits for the client's answer.
    closing = [
        asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown"))
        for ws in app[sockets_key].copy()
    ]
    if not closing:
        return
    _, pending = await asyncio.wait(closing, timeout=CLOSE_WAIT_S)
    for task in pending:
        task.cancel()


def setup_shutdown(app: web.Application) -> None:
    app[drain_key] = Drain()
    grace_s = app[settings_key].shutdown_grace_s
    if shutdown_budget_s(grace_s) >= PLATFORM_KILL_S:
        log.warning(
            "SHUTDOWN_GRACE=%s: a shutdown may take %.0f s, past a platform's %.0f s kill",
            grace_s,
            shutdown_budget_s(grace_s),
            PLATFORM_KILL_S,
        )
    app.on_shutdown.append(finish_chats)
