"""/v1/responses on `python -m server` as users run it (its runner, uvloop), with the real
openai SDK: a foreground client that leaves closes upstream within a second, streamed or
not, and a background one does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import SERVER_KEY
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.integration.openai_sdk import sdk_for
from tests.server_process import server_env, start_server, stop_server
from tests.waiting import wait_until

pytestmark = pytest.mark.subprocess

MODEL = "openai/gpt-4o-mini"
HANGING = Reply(steps=[COMMENT, event(chunk("one")), "hang"])


@pytest.fixture
async def server_url(
    fake_openrouter: FakeOpenRouter, unused_tcp_port: int, tmp_path: Path
) -> AsyncIterator[str]:
    env = server_env(
        OPENROUTER_BASE_URL=fake_openrouter.url,
        OPENROUTER_API_KEY=SERVER_KEY,
        DATA_DIR=str(tmp_path),
    )
    process, url = await start_server(env, unused_tcp_port)
    yield url
    assert await stop_server(process) == 0


async def test_clients_leaving_close_upstream(
    server_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(HANGING, HANGING, HANGING)
    async with sdk_for(server_url) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
        async for e in stream:
            if e.type == "response.output_text.delta":
                break
        await stream.close()
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)
        # Not streamed: the SDK waits for the whole answer; giving up must stop upstream too.
        waiting = asyncio.ensure_future(sdk.responses.create(model=MODEL, input="Hi"))
        await wait_until(lambda: len(fake_openrouter.requests) == 2, "upstream was asked")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await fake_openrouter.requests[1].wait_dropped_by_relay(1.0)
        # In the background it goes on until cancelled.
        stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True, background=True)
        response_id = ""
        async for e in stream:
            if e.type == "response.created":
                response_id = e.response.id
            if e.type == "response.output_text.delta":
                break
        await stream.close()
        running = await sdk.responses.retrieve(response_id)
        assert running.status == "in_progress" and running.output_text == "one"
        assert not fake_openrouter.requests[2].ended.is_set()
        cancelled = await sdk.responses.cancel(response_id)
        assert cancelled.status == "cancelled"
        await fake_openrouter.requests[2].wait_dropped_by_relay(1.0)
