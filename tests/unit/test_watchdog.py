"""SilenceWatchdog: only time spent waiting on upstream counts, and only past the limit."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import UpstreamTimeout
from server.watchdog import SilenceWatchdog


async def test_a_wait_past_the_limit_raises_upstream_timeout() -> None:
    watchdog = SilenceWatchdog(0.05, "silent")
    with pytest.raises(UpstreamTimeout, match="silent"), watchdog:
        await asyncio.sleep(1)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    watchdog.close()


async def test_short_waits_that_add_up_past_the_limit_do_not_fire() -> None:
    watchdog = SilenceWatchdog(0.05, "silent")
    for _ in range(6):
        with watchdog:
            await asyncio.sleep(0.02)
    watchdog.close()


async def test_time_not_waiting_on_upstream_does_not_count() -> None:
    # A slow client pauses the chat between reads: that is not upstream's silence.
    watchdog = SilenceWatchdog(0.03, "silent")
    await asyncio.sleep(0.1)
    with watchdog:
        await asyncio.sleep(0.01)
    watchdog.close()


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def wait() -> None:
        watchdog = SilenceWatchdog(10, "silent")
        try:
            with watchdog:
                await asyncio.sleep(1)
        finally:
            watchdog.close()

    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
