"""The memory store's cap is in bytes held, not characters: ended chats of emoji stay under
it as English ones do (issue 21.10: 80 ended chats of emoji took +548 MB, about 8 bytes of
memory for each character the cap counted)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import orjson
import pytest

from server.store import memory as memory_store
from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import USAGE, FakeOpenRouter, Reply, chunk, event

MIB = 1024 * 1024
CAP_BYTES = 4 * MIB
CHATS = 8
EVENTS = 12_000
TOKEN = "🎉" * 16  # 16 characters, 64 bytes of UTF-8
EVENTS_PER_WRITE = 500


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def emoji_reply(write: bytes) -> Reply:
    """One bytes object written again and again: the fake upstream's memory stays flat."""
    end = event(chunk(finish_reason="stop", usage=USAGE)) + event("[DONE]")
    return Reply(steps=[*[write] * (EVENTS // EVENTS_PER_WRITE), end])


async def test_ended_chats_of_emoji_stay_under_the_cap_in_bytes(
    make_client: MakeClient,
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
    traced: None,
) -> None:
    monkeypatch.setattr(memory_store, "MAX_STORE_BYTES", CAP_BYTES)
    client = await make_client()
    write = event(chunk(TOKEN)) * EVENTS_PER_WRITE
    fake_openrouter.script(*[emoji_reply(write) for _ in range(CHATS)])
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(CHATS):
        async with client.post("/api/chat/openrouter", data=orjson.dumps(chat_body())) as r:
            assert r.status == 200
            # Read in parts: the test client keeps what `text()` reads for the test's life.
            answer = bytearray()
            async for part in r.content.iter_any():
                answer += part
            assert answer.decode() == TOKEN * EVENTS  # each answer whole: 768 KiB of UTF-8
            del answer
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    # Eight answers of 768 KiB (12,000 offsets and kinds each): 6.5 MiB if none were dropped.
    assert held < 1.3 * CAP_BYTES, f"{held / MIB:.1f} MiB held against a cap of 4 MiB"
