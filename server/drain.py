"""The chats running in an app: counted, measured, refused and ended during a shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from .config import settings_key
from .errors import ChatTooLong, ServerShuttingDown
from .metrics import current_metrics, metrics_key


class Drain:
    """The chats running in this app, and whether the app is shutting down."""

    def __init__(self) -> None:
        self.draining = False
        self.deadlines: set[asyncio.Timeout] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self.idle.wait()
        except TimeoutError:
            return False
        return True

    def end_all(self) -> None:
        now = asyncio.get_running_loop().time()
        for deadline in self.deadlines:
            deadline.reschedule(now)


drain_key = web.AppKey("drain", Drain)


@asynccontextmanager
async def running_chat(app: web.Application) -> AsyncIterator[None]:
    """Hold one running chat: counted, measured, and ended by ServerShuttingDown if need be."""
    drain = app[drain_key]
    if drain.draining:
        raise ServerShuttingDown()
    metrics = app[metrics_key]
    token = current_metrics.set(metrics)
    metrics.chats_running.inc()
    max_s = app[settings_key].max_chat_duration_s
    try:
        # A deadline at MAX_CHAT_DURATION_S (comment lines could keep a chat open forever),
        # moved to now when the grace runs out; it cancels only the chat inside, and
        # asyncio turns that cancel into TimeoutError right here.
        async with asyncio.timeout(max_s) as deadline:
            drain.deadlines.add(deadline)
            drain.idle.clear()
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        if drain.draining:
            raise ServerShuttingDown() from None
        raise ChatTooLong(
            f"The chat was stopped after {max_s:g} seconds, the longest a chat may run here"
        ) from None
    finally:
        drain.deadlines.discard(deadline)
        if not drain.deadlines:
            drain.idle.set()
        metrics.chats_running.dec()
        current_metrics.reset(token)
