"""Waiting on a condition instead of sleeping: a test goes on the moment it holds.

A fixed sleep before an assert is both slow (it always waits) and flaky (a loaded machine
may need longer); polling for the condition is neither.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]
POLL_EVERY_S = 0.01


async def wait_until(predicate: Predicate, what: str, timeout_s: float = 5.0) -> None:
    """Poll `predicate` (sync or async) until it is true; fail saying `what` did not happen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting until {what}")
        await asyncio.sleep(POLL_EVERY_S)
