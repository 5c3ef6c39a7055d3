"""What runs in this process: its chats and its WebSockets, registered by the transports and
the runs, and read by the graceful shutdown (server/runner.py) that works from them.

A module of its own, below every package, so that runs (relay/) and transports (web/)
register into it without importing the process's runner.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

from aiohttp import web


class Stoppable(Protocol):
    def shut_down(self) -> None:
        """End now with a 503 error event: the server is going away."""


class Registry:
    def __init__(self) -> None:
        self.draining = False
        self.runs: set[Stoppable] = set()
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        # The tasks writing chats' frames to those sockets.
        self.listeners: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add_run(self, run: Stoppable) -> None:
        self.runs.add(run)
        self._idle.clear()

    def remove_run(self, run: Stoppable) -> None:
        self.runs.discard(run)
        if not self.runs:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no chat runs here; False when some still do after `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def add_listener(self, task: asyncio.Task[None]) -> None:
        self.listeners.add(task)
        task.add_done_callback(self.listeners.discard)

    async def wait_listeners(self, timeout_s: float) -> None:
        """Let the sockets' listeners write the final frames of chats that just ended."""
        if self.listeners:
            await asyncio.wait(list(self.listeners), timeout=timeout_s)

    def shut_down_runs(self) -> None:
        for run in list(self.runs):
            run.shut_down()


registry_key = web.AppKey("registry", Registry)
