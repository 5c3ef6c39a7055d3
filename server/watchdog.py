"""SilenceWatchdog: fail a wait on upstream that lasts UPSTREAM_TIMEOUT, with one lazy timer.

aiohttp's `sock_read` re-arms a timer on every read, which cost about 7% of the relay's CPU
per token (bench/). Here a read only stores a time, and the one timer per stream re-arms
itself when it fires early. Only time spent waiting on upstream counts: a chat paused
because its own client reads slowly is not upstream's silence.
"""

from __future__ import annotations

import asyncio


class SilenceWatchdog:
    """Cancels the waiting task once a wait (`waiting_since`) lasts `timeout_s`; see `fired`."""

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("SilenceWatchdog needs a running task")
        self._task = task
        self._timeout_s = timeout_s
        self.waiting_since: float | None = None
        self.fired = False
        self._timer = self._loop.call_later(timeout_s, self._check)

    def start_wait(self) -> None:
        self.waiting_since = self._loop.time()

    def end_wait(self) -> None:
        self.waiting_since = None

    def _check(self) -> None:
        since = self.waiting_since
        now = self._loop.time()
        if since is not None and now - since >= self._timeout_s:
            self.fired = True
            self._task.cancel()
            return
        self._timer = self._loop.call_at(
            (now if since is None else since) + self._timeout_s, self._check
        )

    def took_over(self) -> bool:
        """After a CancelledError: True (and the cancel undone) when it was this watchdog's."""
        if not self.fired:
            return False
        self._task.uncancel()
        return True

    def close(self) -> None:
        self._timer.cancel()
