"""The Responses tool loop every agent SDK runs, on a stored chain (issue 25): a turn that
answered function calls, continued by `previous_response_id` with their outputs, must give
upstream each call before its output, on that turn and on every later one, exactly as a
stateless Chat Completions client would send them. With the real openai SDK on a personal
token, on both engines; the chain stays one conversation of the account's history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI
from openai.types.responses import FunctionToolParam
from openai.types.responses.response_input_param import FunctionCallOutput

from tests.account_clients import Browser, bearer
from tests.conftest import Client, MakeClient
from tests.fake_openrouter import FakeOpenRouter, sse_reply, tool_calls_reply
from tests.history.devices import MESSAGE_KEYS
from tests.integration.openai_sdk import sdk_for

MODEL = "openai/gpt-4o-mini"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": None,
}


@pytest.fixture
async def client(make_client: MakeClient, database_url: str) -> Client:
    return await make_client(database_url=database_url, signup="open")


@pytest.fixture
async def token(client: Client) -> AsyncIterator[str]:
    browser = Browser.of(client)
    await browser.sign_up("ada@example.com")
    made: str = (await browser.make_token())["token"]
    yield made
    await browser.close()


def call(call_id: str, city: str) -> dict[str, Any]:
    arguments = orjson.dumps({"city": city}).decode()
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


def output(call_id: str, text: str) -> FunctionCallOutput:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


async def ask(sdk: AsyncOpenAI, input: Any, previous: str | None = None) -> Any:
    return await sdk.responses.create(
        model=MODEL, input=input, tools=[WEATHER], previous_response_id=previous
    )


async def kept_path(client: Client, token: str, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation as GET /api/conversations/{id} gives it, checked against SPEC's
    message shape: its newest branch from the first message."""
    opened = await client.get(f"/api/conversations/{conversation_id}", headers=bearer(token))
    assert opened.status == 200
    kept: list[dict[str, Any]] = (await opened.json())["messages"]
    for message in kept:
        assert set(message) >= MESSAGE_KEYS, message
        assert message["conversation_id"] == conversation_id
        assert message["status"] == "done" and message["error"] is None
        assert isinstance(message["content"], str | list)
    by_id = {m["id"]: m for m in kept}
    last: dict[str, Any] | None = kept[-1]
    path: list[dict[str, Any]] = []
    while last is not None:
        path.append(last)
        last = by_id.get(last["parent_id"])
    assert len(path) == len(kept)  # one branch: nothing beside it
    return path[::-1]


async def test_a_tool_loop_continued_by_previous_response_id_keeps_every_call(
    client: Client, fake_openrouter: FakeOpenRouter, token: str
) -> None:
    fake_openrouter.script(
        tool_calls_reply(("call_paris", "get_weather", '{"city":"Paris"}')),
        sse_reply(["Sunny", ", 22C"]),
        sse_reply(["Rain tomorrow"]),
    )
    async with sdk_for(client, api_key=token) as sdk:
        first = await ask(sdk, "Weather in Paris?")
        [function_call] = first.output
        assert function_call.type == "function_call" and function_call.call_id == "call_paris"
        second = await ask(sdk, [output(function_call.call_id, "22C, sunny")], first.id)
        third = await ask(sdk, "And tomorrow?", second.id)
    assert second.output_text == "Sunny, 22C" and third.output_text == "Rain tomorrow"
    question = {"role": "user", "content": "Weather in Paris?"}
    calls = {"role": "assistant", "content": None, "tool_calls": [call("call_paris", "Paris")]}
    result = {"role": "tool", "tool_call_id": "call_paris", "content": "22C, sunny"}
    sent = [r.body["messages"] for r in fake_openrouter.requests]
    assert sent[0] == [question]
    assert sent[1] == [question, calls, result]
    assert sent[2] == [
        question,
        calls,
        result,
        {"role": "assistant", "content": "Sunny, 22C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    # One conversation in the account's history, each message as SPEC says it.
    listed = await client.get("/api/conversations", headers=bearer(token))
    conversations = (await listed.json())["data"]
    assert first.conversation is not None and third.conversation is not None
    assert [c["id"] for c in conversations] == [first.conversation.id] == [third.conversation.id]
    path = await kept_path(client, token, first.conversation.id)
    assert [(m["role"], m["content"]) for m in path] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "22C, sunny"),
        ("assistant", "Sunny, 22C"),
        ("user", "And tomorrow?"),
        ("assistant", "Rain tomorrow"),
    ]
    assert [m["chat_id"] for m in path if m["role"] == "assistant"] == [
        first.id,
        second.id,
        third.id,
    ]
    assert path[1]["tool_calls"] == [call("call_paris", "Paris")]
    assert path[2]["tool_call_id"] == "call_paris"
    # Every other message keeps SPEC's shape exactly.
    assert all("tool_calls" not in m and "tool_call_id" not in m for m in path[3:])


async def test_a_streamed_tool_loop_keeps_every_call(
    client: Client, fake_openrouter: FakeOpenRouter, token: str
) -> None:
    """As the agent SDKs run it: each turn streamed."""
    fake_openrouter.script(
        tool_calls_reply(("call_paris", "get_weather", '{"city":"Paris"}')),
        sse_reply(["Sunny"]),
    )
    async with sdk_for(client, api_key=token) as sdk:
        async with sdk.responses.stream(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER]
        ) as stream:
            first = await stream.get_final_response()
        async with sdk.responses.stream(
            model=MODEL,
            input=[output("call_paris", "22C")],
            tools=[WEATHER],
            previous_response_id=first.id,
        ) as stream:
            second = await stream.get_final_response()
    assert second.output_text == "Sunny"
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_paris", "Paris")]},
        {"role": "tool", "tool_call_id": "call_paris", "content": "22C"},
    ]


async def test_parallel_calls_answered_beside_a_question(
    client: Client, fake_openrouter: FakeOpenRouter, token: str
) -> None:
    fake_openrouter.script(
        tool_calls_reply(
            ("call_a", "get_weather", '{"city":"Paris"}'),
            ("call_b", "get_weather", '{"city":"Rome"}'),
            text="Let me look.",
        ),
        sse_reply(["Rome"]),
        sse_reply(["You're welcome"]),
    )
    async with sdk_for(client, api_key=token) as sdk:
        first = await ask(sdk, "Paris or Rome?")
        assert [item.type for item in first.output] == ["message", "function_call", "function_call"]
        outputs = [output("call_a", "18C"), output("call_b", "25C")]
        question = {"role": "user", "content": "Which is warmer?"}
        second = await ask(sdk, [*outputs, question], first.id)
        await ask(sdk, "Thanks", second.id)
    calls = {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [call("call_a", "Paris"), call("call_b", "Rome")],
    }
    turn = [
        {"role": "user", "content": "Paris or Rome?"},
        calls,
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "25C"},
        question,
    ]
    sent = [r.body["messages"] for r in fake_openrouter.requests]
    assert sent[1] == turn
    assert sent[2] == [
        *turn,
        {"role": "assistant", "content": "Rome"},
        {"role": "user", "content": "Thanks"},
    ]


async def test_calls_handed_back_as_input_are_kept_for_the_next_turn(
    client: Client, fake_openrouter: FakeOpenRouter, token: str
) -> None:
    """A client that sends the whole exchange itself (the call and its output as input
    items) and then continues it by `previous_response_id`."""
    fake_openrouter.script(sse_reply(["Sunny"]), sse_reply(["Rain"]))
    handed = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        output("call_1", "22C"),
    ]
    async with sdk_for(client, api_key=token) as sdk:
        first = await ask(sdk, handed)
        await ask(sdk, "And tomorrow?", first.id)
    assert fake_openrouter.requests[1].body["messages"] == [
        *fake_openrouter.requests[0].body["messages"],
        {"role": "assistant", "content": "Sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert fake_openrouter.requests[0].body["messages"][1]["tool_calls"] == [
        call("call_1", "Paris")
    ]


async def test_an_exported_tool_loop_imports_whole(
    client: Client, fake_openrouter: FakeOpenRouter, token: str
) -> None:
    """The conversation's file keeps the calls and their outputs: imported by another
    account it is the same chain; as Markdown each call and result is named."""
    fake_openrouter.script(
        tool_calls_reply(("call_paris", "get_weather", '{"city":"Paris"}')),
        sse_reply(["Sunny"]),
    )
    async with sdk_for(client, api_key=token) as sdk:
        first = await ask(sdk, "Weather in Paris?")
        await ask(sdk, [output("call_paris", "22C")], first.id)
    assert first.conversation is not None
    where = f"/api/conversations/{first.conversation.id}/export"
    exported = await client.get(where, params={"format": "json"}, headers=bearer(token))
    markdown = await client.get(where, params={"format": "md"}, headers=bearer(token))
    assert exported.status == 200 and markdown.status == 200
    text = await markdown.text()
    assert '*Called get_weather({"city":"Paris"}) (call_paris)*' in text
    assert "## Tool result (call_paris)\n\n22C" in text
    other = Browser.of(client)
    try:
        await other.sign_up("bob@example.com")
        other_token: str = (await other.make_token())["token"]
    finally:
        await other.close()
    imported = await client.post(
        "/api/conversations/import", data=await exported.read(), headers=bearer(other_token)
    )
    assert (await imported.json()) == {"imported": 1, "skipped": 0}
    mine = await kept_path(client, token, first.conversation.id)
    theirs = await kept_path(client, other_token, first.conversation.id)
    shape = ("role", "content", "tool_calls", "tool_call_id")
    assert [[m.get(k) for k in shape] for m in theirs] == [[m.get(k) for k in shape] for m in mine]
    assert [m["role"] for m in theirs] == ["user", "assistant", "tool", "assistant"]
    assert theirs[1]["tool_calls"] == [call("call_paris", "Paris")]
