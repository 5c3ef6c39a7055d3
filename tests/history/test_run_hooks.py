"""A run's hooks (server/relay/runs.py): what the layers above use to follow a chat they may
not be imported by (history writes its answer, budgets settles its cost)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from server.relay.request import parse_chat_request
from server.relay.runs import chat_key, runs_key
from server.store.events import Delta, Done, Failed, Final, LogEvent, chat_store_key
from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter, sse_reply, stream_error_reply
from tests.waiting import wait_until


class Lease:
    async def release(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.final: Final | None = None
        self.logged_at_end: bool | None = None
        self.ended_calls = 0

    def seen(self, events: Sequence[LogEvent]) -> None:
        self.text.extend(e.content for e in events if isinstance(e, Delta))

    async def ended(self, final: Final) -> None:
        self.ended_calls += 1
        self.final = final


async def run_chat(make_client: MakeClient, hook: Recorder) -> list[LogEvent]:
    client = await make_client()
    app = client.app
    assert app is not None
    key = chat_key("test", "c1")
    run = await app[runs_key].start(
        key, "c1", "ws", parse_chat_request(chat_body()), "sk-test", Lease(), [hook]
    )
    await asyncio.wait_for(run.wound_down(), 10)
    events: list[LogEvent] = []
    async for _, read in app[chat_store_key].read(key, 0):
        events.extend(read)
    return events


async def test_a_hook_sees_the_text_and_ends_once_before_the_final_event(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo", " there"]))
    hook = Recorder()
    events = await run_chat(make_client, hook)
    assert "".join(hook.text) == "Hello there"
    assert hook.ended_calls == 1
    assert isinstance(hook.final, Done) and hook.final.finish_reason == "stop"
    assert events[-1] == hook.final


async def test_a_failed_chat_ends_its_hook_with_the_error(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply(429, "Slow down", ("Hi",)))
    hook = Recorder()
    events = await run_chat(make_client, hook)
    assert hook.ended_calls == 1
    assert isinstance(hook.final, Failed) and hook.final.status == 429
    assert events[-1] == hook.final


async def test_a_hook_that_raises_does_not_keep_the_chat_from_ending(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    class Broken(Recorder):
        async def ended(self, final: Final) -> None:
            raise RuntimeError("bug")

    fake_openrouter.script(sse_reply(["ok"]))
    events = await run_chat(make_client, Broken())
    assert isinstance(events[-1], Done)


async def test_a_hook_cut_short_by_a_cancel_still_lets_the_chat_end(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    class Stuck(Recorder):
        async def ended(self, final: Final) -> None:
            self.ended_calls += 1
            await asyncio.Event().wait()  # a write that never lands

    class CountedLease(Lease):
        released = 0

        async def release(self) -> None:
            CountedLease.released += 1

    fake_openrouter.script(sse_reply(["ok"]))
    client = await make_client()
    app = client.app
    assert app is not None
    hook, key = Stuck(), chat_key("test", "c2")
    chat = parse_chat_request(chat_body())
    run = await app[runs_key].start(key, "c2", "ws", chat, "sk-test", CountedLease(), [hook])
    assert run.task is not None
    await wait_until(lambda: hook.ended_calls == 1, "the hook is waiting")
    run.task.cancel()  # what a shutdown does to a pump still busy after its wind-down time
    await asyncio.wait_for(run.wound_down(), 10)
    events: list[LogEvent] = []
    async with asyncio.timeout(10):  # a log without its final event would be read forever
        async for _, read in app[chat_store_key].read(key, 0):
            events.extend(read)
    assert isinstance(events[-1], Done)
    assert CountedLease.released == 1
