"""/v1/responses from the JavaScript clients: the openai npm package and the Vercel AI SDK
(whose `createOpenAI(...)(id)` calls the Responses API by default), run by node against
the test server (tests/js_clients/clients.mjs; `make setup` installs their packages)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Client
from tests.fake_openrouter import FakeOpenRouter, sse_reply, tool_call_reply

CLIENTS = Path(__file__).resolve().parents[1] / "js_clients"
MODEL = "openai/gpt-4o-mini"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (CLIENTS / "node_modules" / "ai").is_dir(),
    reason="node and tests/js_clients/node_modules are needed: run `make setup`",
)


async def run_client(client: Client, case: str) -> dict[str, Any]:
    base = str(client.make_url("/v1"))
    process = await asyncio.create_subprocess_exec(
        "node",
        "clients.mjs",
        base,
        case,
        cwd=CLIENTS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


async def test_openai_npm_package(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo"]), sse_reply(["Str", "eamed"]))
    result = await run_client(client, "openai")
    assert result["whole"] == "Hello" and result["status"] == "completed"
    assert result["streamed"] == "Streamed"
    types = result["types"]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types


async def test_vercel_ai_sdk_stream_text_with_a_tool(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(tool_call_reply(), sse_reply(["It is", " 22C"]))
    result = await run_client(client, "vercel")
    assert result["errors"] == []
    assert result["calls"] == [{"name": "get_weather", "input": {"city": "Paris"}}]
    assert result["text"] == "It is 22C"
    assert result["usage"]["inputTokens"] == 24
    # The second step sent the call and its result back as input items.
    second = fake_openrouter.requests[1].body["messages"]
    assert second[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second[2] == {"role": "tool", "tool_call_id": "call_1", "content": "22C in Paris"}


async def test_vercel_ai_sdk_hands_an_answer_back(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Paris"]), sse_reply(["Yes"]))
    result = await run_client(client, "vercelTurns")
    assert result == {"first": "Paris", "second": "Yes"}
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "Sure?"},
    ]
