"""SilenceWatchdog: only time spent waiting on upstream counts, and only past the limit.

A fake clock moves time, so these run in no real time and cannot be late.
"""

from __future__ import annotations

import asyncio

import pytest

from server.errors import UpstreamTimeout
from server.relay.upstream_answer import SilenceWatchdog
from tests.fake_clock import FakeClock


async def wait_on_upstream(watchdog: SilenceWatchdog, clock: FakeClock, seconds: float) -> None:
    """One wait on upstream that lasts `seconds`: a timer due meanwhile fires during it."""
    with watchdog:
        clock.advance(seconds)
        await asyncio.sleep(0)


async def test_a_wait_past_the_limit_raises_upstream_timeout() -> None:
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    with pytest.raises(UpstreamTimeout, match="silent"):
        await wait_on_upstream(watchdog, clock, 60)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    watchdog.close()


async def test_a_wait_just_short_of_the_limit_does_not_fire() -> None:
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    await wait_on_upstream(watchdog, clock, 59.9)
    watchdog.close()


async def test_short_waits_that_add_up_past_the_limit_do_not_fire() -> None:
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    for _ in range(6):
        await wait_on_upstream(watchdog, clock, 25)
    watchdog.close()


async def test_time_not_waiting_on_upstream_does_not_count() -> None:
    # A slow client pauses the chat between reads: that is not upstream's silence.
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    clock.advance(100)
    await wait_on_upstream(watchdog, clock, 30)
    watchdog.close()


async def test_a_wait_that_starts_late_is_timed_from_its_start() -> None:
    # The one timer re-arms itself from the wait's start, so it fires a whole limit later.
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    clock.advance(50)
    with pytest.raises(UpstreamTimeout):
        await wait_on_upstream(watchdog, clock, 60)
    assert clock.now == 110
    watchdog.close()


async def test_close_stops_the_timer() -> None:
    clock = FakeClock()
    watchdog = SilenceWatchdog(60, "silent", clock)
    watchdog.close()
    assert all(timer.cancelled for timer in clock.timers)


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def wait() -> None:
        watchdog = SilenceWatchdog(60, "silent", clock)
        try:
            with watchdog:
                started.set()
                await asyncio.Event().wait()
        finally:
            watchdog.close()

    task = asyncio.ensure_future(wait())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_event_loop_is_the_clock_by_default() -> None:
    watchdog = SilenceWatchdog(0.01, "silent")
    with pytest.raises(UpstreamTimeout), watchdog:
        await asyncio.sleep(1)
    watchdog.close()
