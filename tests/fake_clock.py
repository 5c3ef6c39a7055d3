"""A clock for code that takes the event loop's time and timers: time moves only on advance().

Tests of timeouts then run in no real time and cannot be late on a loaded machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Stands in for the event loop's `time()` and `call_at()`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on, running each timer that falls due at its own time, in order.

        Timers run synchronously, so a callback that cancels a task lands at its next await.
        """
        until = self.now + seconds
        while due := [t for t in self.timers if t.when <= until and not t.cancelled]:
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = until
