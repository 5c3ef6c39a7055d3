"""SilenceWatchdog: only time spent waiting on upstream counts, and only past the limit."""

from __future__ import annotations

import asyncio

import pytest

from server.watchdog import SilenceWatchdog


async def test_a_wait_past_the_limit_cancels_the_task_and_is_taken_over() -> None:
    watchdog = SilenceWatchdog(0.05)
    watchdog.start_wait()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(1)
    assert watchdog.took_over()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    watchdog.close()


async def test_short_waits_that_add_up_past_the_limit_do_not_fire() -> None:
    watchdog = SilenceWatchdog(0.05)
    for _ in range(6):
        watchdog.start_wait()
        await asyncio.sleep(0.02)
        watchdog.end_wait()
    assert not watchdog.fired
    watchdog.close()


async def test_time_not_waiting_on_upstream_does_not_count() -> None:
    # A slow client pauses the chat between reads: that is not upstream's silence.
    watchdog = SilenceWatchdog(0.03)
    await asyncio.sleep(0.1)
    assert not watchdog.fired
    watchdog.close()


async def test_a_cancel_from_elsewhere_is_not_taken_over() -> None:
    watchdog = SilenceWatchdog(10)
    assert not watchdog.took_over()
    watchdog.close()
