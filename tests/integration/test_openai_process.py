"""/v1 on `python -m server` as users run it (its runner, uvloop), with the real openai SDK."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from tests.conftest import SERVER_KEY
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.integration.openai_sdk import messages, sdk_for
from tests.server_process import start_server, stop_server
from tests.waiting import wait_until

pytestmark = pytest.mark.subprocess

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
async def server_url(fake_openrouter: FakeOpenRouter, unused_tcp_port: int) -> AsyncIterator[str]:
    env = {
        **os.environ,
        "OPENROUTER_BASE_URL": fake_openrouter.url,
        "OPENROUTER_API_KEY": SERVER_KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PORT", None)
    env.pop("ACCESS_TOKEN", None)
    process, url = await start_server(env, unused_tcp_port)
    yield url
    assert await stop_server(process) == 0


async def test_sdk_chats_streamed_and_not(server_url: str, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(sse_reply(["Hi", " there"]), sse_reply(["Hi", " again"]))
    async with sdk_for(server_url) as sdk:
        completion = await sdk.chat.completions.create(model=MODEL, messages=messages())
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        streamed = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        models = [m.id async for m in sdk.models.list()]
    assert completion.choices[0].message.content == "Hi there"
    assert "".join(streamed) == "Hi again"
    assert MODEL in models


async def test_clients_leaving_close_upstream(
    server_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    hanging = Reply(steps=[COMMENT, event(chunk("one")), "hang"])
    fake_openrouter.script(hanging, hanging)
    async with sdk_for(server_url) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        first = await stream.__anext__()
        assert first.choices[0].delta.content == "one"
        await stream.close()
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)
        # Not streamed: the SDK waits for the whole answer; giving up must stop upstream too.
        waiting = asyncio.ensure_future(
            sdk.chat.completions.create(model=MODEL, messages=messages())
        )
        await wait_until(lambda: len(fake_openrouter.requests) == 2, "upstream was asked")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await fake_openrouter.requests[1].wait_dropped_by_relay(1.0)
