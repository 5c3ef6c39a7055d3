"""One suite for every chat store: what runs write is what listeners read, from any offset."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.errors import ChatIdInUse, ChatNotFound
from server.store.events import (
    MAX_READ_CHARS,
    MAX_READ_EVENTS,
    ChatStore,
    Delta,
    Done,
    Failed,
    LogEvent,
    Raw,
    Reasoning,
)
from tests.chat_store import FakeRun, read_all
from tests.store.conftest import MakeStore


async def test_a_log_reads_back_with_seqs_from_any_offset(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:a", FakeRun())
    await log.append([Reasoning("hm"), Delta("Hel")])
    await log.append([Delta("lo")])
    await log.append([Done("stop", {"completion_tokens": 2})])
    everything = await read_all(store, "o:a")
    assert everything == [
        (1, Reasoning("hm")),
        (2, Delta("Hel")),
        (3, Delta("lo")),
        (4, Done("stop", {"completion_tokens": 2})),
    ]
    assert await read_all(store, "o:a", 2) == everything[2:]
    # A read always ends with the final event: from it or past it, with it alone.
    assert await read_all(store, "o:a", 4) == await read_all(store, "o:a", 99) == everything[3:]


async def test_a_listener_follows_live_until_the_final_event(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:live", FakeRun())
    await log.append([Delta("a")])
    following = asyncio.ensure_future(read_all(store, "o:live"))
    second = asyncio.ensure_future(read_all(store, "o:live", 1))
    await asyncio.sleep(0.05)
    await log.append([Delta("b")])
    await log.append([Failed(502, "gone", None)])
    assert await asyncio.wait_for(following, 5) == [
        (1, Delta("a")),
        (2, Delta("b")),
        (3, Failed(502, "gone", None)),
    ]
    assert await asyncio.wait_for(second, 5) == [(2, Delta("b")), (3, Failed(502, "gone", None))]


async def test_unknown_chats_are_not_found(make_store: MakeStore) -> None:
    store = await make_store()
    assert not await store.exists("o:none")
    with pytest.raises(ChatNotFound, match="No chat with id none to resume"):
        await read_all(store, "o:none")
    assert not await store.cancel("o:none")


async def test_a_running_key_is_taken_an_ended_one_is_replaced(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:k", FakeRun())
    await log.append([Delta("first")])
    with pytest.raises(ChatIdInUse):
        await store.create("o:k", FakeRun())
    await log.append([Done("stop", None)])
    again = await store.create("o:k", FakeRun())
    await again.append([Delta("second"), Done("stop", None)])
    assert await read_all(store, "o:k") == [(1, Delta("second")), (2, Done("stop", None))]


async def test_a_cancel_reaches_the_run_and_an_ended_chat_is_not_cancelled(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    run = FakeRun()
    log = await store.create("o:c", run)
    assert await store.cancel("o:c")
    await asyncio.wait_for(run.cancelled.wait(), 5)
    await log.append([Done("cancelled", None)])
    assert not await store.cancel("o:c")


async def test_nobody_listening_for_the_window_abandons_the_run(make_store: MakeStore) -> None:
    store = await make_store(resume_window_s=0.2)
    run = FakeRun()
    log = await store.create("o:w", run)
    await log.append([Delta("a")])
    reading = asyncio.ensure_future(read_all(store, "o:w"))
    await asyncio.sleep(0.4)
    assert not run.abandoned.is_set()  # someone listens
    reading.cancel()
    await asyncio.wait_for(run.abandoned.wait(), 5)


async def test_an_ended_chat_is_dropped_after_the_retention(make_store: MakeStore) -> None:
    store = await make_store(retention_s=1.0)
    log = await store.create("o:r", FakeRun())
    await log.append([Delta("a"), Done("stop", None)])
    assert await store.exists("o:r")
    await asyncio.sleep(1.5)
    assert not await store.exists("o:r")


async def test_a_long_replay_comes_in_bounded_slices(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:long", FakeRun())
    for n in range(0, 20_000, 100):
        await log.append([Delta(f"<{m}>") for m in range(n, n + 100)])
    await log.append([Delta("x" * (3 * MAX_READ_CHARS)), Done("stop", None)])
    slices = [events async for _, events in store.read("o:long", 0)]
    assert len(slices) > 20_000 / MAX_READ_EVENTS
    for events in slices:
        assert len(events) <= MAX_READ_EVENTS
        chars = sum(len(e.content) for e in events if isinstance(e, Delta))
        assert chars <= MAX_READ_CHARS or len(events) == 1 or events[-1] == Done("stop", None)
    text = "".join(e.content for events in slices for e in events if isinstance(e, Delta))
    assert text == "".join(f"<{m}>" for m in range(20_000)) + "x" * (3 * MAX_READ_CHARS)


class FakeLive:
    """A listener that takes reads from the run while it keeps up; what it got, in order."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.keeping_up = True
        self.fail = fail
        self.got: list[tuple[int, LogEvent]] = []

    def ready(self) -> bool:
        return self.keeping_up

    async def write(self, first_seq: int, events: Sequence[LogEvent]) -> None:
        if self.fail is not None:
            raise self.fail
        self.got += list(enumerate(events, first_seq))


async def read_live(store: ChatStore, key: str, live: FakeLive) -> list[tuple[int, LogEvent]]:
    out = []
    async for first_seq, events in store.read(key, 0, live):
        out += list(enumerate(events, first_seq))
    return out


async def test_a_live_listener_is_handed_what_it_keeps_up_with(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:hand", FakeRun())
    await log.append([Delta("a")])
    live = FakeLive()
    reading = asyncio.ensure_future(read_live(store, "o:hand", live))
    await asyncio.sleep(0.05)  # it has read "a" and waits, caught up
    await log.append([Delta("b")])
    await log.append([Reasoning("c"), Delta("d")])
    live.keeping_up = False
    await log.append([Delta("e")])
    await asyncio.sleep(0.05)  # read from the log in the listener's own task
    live.keeping_up = True
    await log.append([Delta("f")])
    await log.append([Done("stop", None)])
    read = await asyncio.wait_for(reading, 5)
    # Every event once, in order, whichever way it went; the end always through the read.
    assert live.got == [(2, Delta("b")), (3, Reasoning("c")), (4, Delta("d")), (6, Delta("f"))]
    assert read == [(1, Delta("a")), (5, Delta("e")), (7, Done("stop", None))]


async def test_a_failed_live_write_ends_only_that_listener(make_store: MakeStore) -> None:
    store = await make_store()
    log = await store.create("o:broken", FakeRun())
    failing = asyncio.ensure_future(
        read_live(store, "o:broken", FakeLive(fail=ConnectionResetError("gone")))
    )
    other = asyncio.ensure_future(read_all(store, "o:broken"))
    await asyncio.sleep(0.05)
    await log.append([Delta("a")])
    with pytest.raises(ConnectionResetError, match="gone"):
        await asyncio.wait_for(failing, 5)
    await log.append([Done("stop", None)])
    assert await asyncio.wait_for(other, 5) == [(1, Delta("a")), (2, Done("stop", None))]


async def test_raw_events_read_back_and_forgotten(make_store: MakeStore) -> None:
    """A /v1/responses log: Raw documents beside text, read back alike (with Redis, from
    another process too); forget drops an ended one everywhere."""
    running, other = await make_store(), await make_store()
    elsewhere = other if running.shared else running
    log = await running.create("o:r", FakeRun())
    await log.append([Raw('{"id": "resp_1"}'), Delta("Hi")])
    await log.append([Raw('{"choices": []}'), Done("stop", None)])
    expected = [
        (1, Raw('{"id": "resp_1"}')),
        (2, Delta("Hi")),
        (3, Raw('{"choices": []}')),
        (4, Done("stop", None)),
    ]
    assert await read_all(running, "o:r") == expected
    assert await asyncio.wait_for(read_all(elsewhere, "o:r"), 5) == expected
    await elsewhere.forget("o:r")
    assert not await running.exists("o:r")
    assert not await elsewhere.exists("o:r")
