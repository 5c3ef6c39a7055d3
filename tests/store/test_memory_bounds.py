"""The memory store's bounds: per chat by its text, in total by MAX_STORE_BYTES (bytes held)."""

from __future__ import annotations

import pytest

from server.errors import ChatNotFound
from server.store import memory as memory_store
from server.store import memory_log
from server.store.events import Delta, Done, LogEvent, Reasoning
from server.store.memory import MemoryStore
from tests.chat_store import FakeRun, read_all


async def test_a_chat_keeps_only_its_newest_text_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_store, "MAX_CHAT_BYTES", 100)
    store = MemoryStore(300, 600)
    log = await store.create("o:big", FakeRun())
    for n in range(50):
        await log.append([Delta(f"{n:04d}")])
    assert store.total <= 100
    # The newest text is still there for a listener not far behind, with its own seqs...
    assert [seq for seq, _ in await read_all_until(store, "o:big", 45)] == [46, 47, 48, 49, 50]
    # ...and one asking for what is gone gets 404, never a gap.
    with pytest.raises(ChatNotFound):
        await read_all_until(store, "o:big", 0)


async def read_all_until(store: MemoryStore, key: str, after: int) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    async for first_seq, events in store.read(key, after):
        out += list(enumerate(events, first_seq))
        if first_seq + len(events) - 1 >= 50:
            break
    return out


async def test_past_the_total_cap_the_oldest_ended_chats_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_store, "MAX_STORE_BYTES", 250)
    store = MemoryStore(300, 600)
    running = await store.create("o:running", FakeRun())
    await running.append([Delta("r" * 100)])
    for name in ("old", "mid", "new"):
        log = await store.create(f"o:{name}", FakeRun())
        await log.append([Delta(name[0] * 60), Done("stop", None)])
    assert not await store.exists("o:old")
    assert await store.exists("o:mid") and await store.exists("o:new")
    assert await store.exists("o:running") and store.total <= 250
    assert [e for _, e in await read_all(store, "o:new")] == [Delta("n" * 60), Done("stop", None)]


async def test_text_kept_joined_reads_back_exactly_per_seq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Text of both kinds and any width, across joins, chunks and a trim, by seq."""
    monkeypatch.setattr(memory_store, "MAX_CHAT_BYTES", 20_000)
    store = MemoryStore(300, 600)
    log = await store.create("o:mixed", FakeRun())
    pieces = ["a", "é", "🎉x", "дом", "", "\n", "z" * 700, "\u2019", "\ud83c"]
    events = [
        (Reasoning if n % 5 == 0 else Delta)(pieces[n % len(pieces)] + str(n)) for n in range(3_000)
    ]
    for start in range(0, len(events), 3):
        await log.append(events[start : start + 3])
    await log.append([Done("stop", None)])
    read = await read_all(store, "o:mixed", 2_900)
    assert read == [*enumerate(events[2_900:], 2_901), (3_001, Done("stop", None))]
    kept = await read_all_until_end(store, "o:mixed")
    assert sum(len(e.content) for _, e in kept if isinstance(e, Delta | Reasoning)) <= 20_000
    first_kept = kept[0][0]
    assert kept == [*enumerate(events[first_kept - 1 :], first_kept), (3_001, Done("stop", None))]
    with pytest.raises(ChatNotFound):
        await read_all(store, "o:mixed", first_kept - 2)


async def read_all_until_end(store: MemoryStore, key: str) -> list[tuple[int, LogEvent]]:
    """From the oldest seq still kept."""
    log = store.logs[key]
    return await read_all(store, key, log.base)


async def test_offsets_widen_without_losing_a_character(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offsets take 4 bytes each until a chat's text nears 4 Gi characters, then 8."""
    monkeypatch.setattr(memory_log, "WIDE_OFFSET", 50)
    store = MemoryStore(300, 600)
    log = await store.create("o:wide", FakeRun())
    events = [Delta(f"<{n}>") for n in range(40)]
    for event in events:
        await log.append([event])
    await log.append([Done("stop", None)])
    assert await read_all(store, "o:wide") == [*enumerate(events, 1), (41, Done("stop", None))]
    assert await read_all(store, "o:wide", 30) == [
        *enumerate(events[30:], 31),
        (41, Done("stop", None)),
    ]
