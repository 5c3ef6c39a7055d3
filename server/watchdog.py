"""SilenceWatchdog: fail a wait on upstream that lasts UPSTREAM_TIMEOUT, with one lazy timer.

aiohttp's `sock_read` re-arms a timer on every read, which cost about 7% of the relay's CPU
per token (bench/). Here a read only stores a time, and the one timer per stream re-arms
itself when it fires early. Only time spent waiting on upstream counts: a chat paused
because its own client reads slowly is not upstream's silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from .errors import ChatError, UpstreamTimeout


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The two things the watchdog takes from the event loop; tests pass a fake clock."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class SilenceWatchdog:
    """`with watchdog:` around each wait on upstream; one that lasts too long raises
    UpstreamTimeout (or `error`) out of the `with`. A sync context manager: this is the
    per-token path. The POST route watches its writes to a slow client the same way."""

    def __init__(
        self,
        timeout_s: float,
        message: str,
        clock: Clock | None = None,
        error: Callable[[str], ChatError] = UpstreamTimeout,
    ) -> None:
        self._clock: Clock = clock or asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("SilenceWatchdog needs a running task")
        self._task = task
        self._timeout_s = timeout_s
        self._message = message
        self._error = error
        self._waiting_since: float | None = None
        self._fired = False
        self._timer = self._clock.call_at(self._clock.time() + timeout_s, self._check)

    def __enter__(self) -> None:
        self._waiting_since = self._clock.time()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._waiting_since = None
        if self._fired and exc_type is asyncio.CancelledError:
            self._task.uncancel()
            raise self._error(self._message) from None

    def _check(self) -> None:
        since = self._waiting_since
        now = self._clock.time()
        if since is not None and now - since >= self._timeout_s:
            self._fired = True
            self._task.cancel()
            return
        next_check = (now if since is None else since) + self._timeout_s
        self._timer = self._clock.call_at(next_check, self._check)

    def close(self) -> None:
        self._timer.cancel()
