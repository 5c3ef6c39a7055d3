"""wait_until: goes on as soon as the condition holds, and fails saying what never happened."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import wait_until


async def test_returns_once_the_condition_holds() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, event.set)
    await wait_until(event.is_set, "the event is set")
    assert event.is_set()


async def test_takes_an_async_predicate() -> None:
    polls = 0

    async def third_poll() -> bool:
        nonlocal polls
        polls += 1
        return polls == 3

    await wait_until(third_poll, "the third poll")
    assert polls == 3


async def test_a_condition_that_never_holds_fails_naming_it() -> None:
    with pytest.raises(AssertionError, match=r"after 0.05 s waiting until the moon is blue"):
        await wait_until(lambda: False, "the moon is blue", timeout_s=0.05)
