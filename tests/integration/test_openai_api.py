"""/v1 with the real openai SDK: streams, completions, tools, options and models."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from tests.conftest import SERVER_KEY, Client, MakeClient
from tests.fake_openrouter import (
    USAGE,
    FakeOpenRouter,
    Reply,
    chunk,
    completion_reply,
    event,
    split_surrogate_reply,
    sse_reply,
    tool_call_reply,
)
from tests.integration.openai_sdk import (
    completion_body,
    data_lines,
    json_lines,
    messages,
    sdk_for,
)

MODEL = "openai/gpt-4o-mini"


WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_sdk_streams_the_answer(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo, ", "wörld 🌍"], delay_s=0.01))
    async with sdk_for(client) as sdk:
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=messages(),
            stream=True,
        )
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p for p in pieces if p) == "Hello, wörld 🌍"


async def test_stream_relays_upstreams_chunks_byte_for_byte(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = sse_reply(["one", " two"])
    fake_openrouter.script(reply)
    response = await client.post(
        "/v1/chat/completions",
        data=orjson.dumps(completion_body(stream=True, stream_options={"include_usage": True})),
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    body = await response.read()
    sent = [p for s in reply.steps if isinstance(s, bytes) for p in data_lines(s)]
    assert data_lines(body) == sent  # the comment is dropped; every chunk and [DONE] as sent
    assert body.endswith(b"data: [DONE]\n\n")


def openai_usage_reply(text: str) -> Reply:
    """OpenAI's way: usage comes in a chunk of its own, with empty `choices`."""
    usage_chunk = {**chunk(), "choices": [], "usage": USAGE}
    steps: list[Any] = [event(chunk(text)), event(chunk(finish_reason="stop"))]
    return Reply(steps=[*steps, event(usage_chunk), event("[DONE]")])


async def test_usage_chunk_only_when_the_client_asks(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    async with sdk_for(client) as sdk:
        for include in (False, True):
            fake_openrouter.script(openai_usage_reply("hi"))
            options: Any = {"stream_options": {"include_usage": True}} if include else {}
            stream = await sdk.chat.completions.create(
                model=MODEL,
                messages=messages(),
                stream=True,
                **options,
            )
            chunks = [c async for c in stream]
            # Clients that did not ask index choices[0] on every chunk: none may be empty.
            assert all(c.choices for c in chunks) is not include
            assert (chunks[-1].usage is not None) is include
            if include:
                assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


async def test_non_streaming_answer_is_one_chat_completion(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo"]))
    async with sdk_for(client) as sdk:
        completion = await sdk.chat.completions.create(model=MODEL, messages=messages())
    assert completion.object == "chat.completion"
    assert completion.id == "gen-test" and completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "Hello"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 15
    # Upstream is streamed either way: the core reads it for usage, errors and cancelling.
    assert fake_openrouter.requests[0].body["stream"] is True


async def test_tool_calls_stream_through_byte_for_byte(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = tool_call_reply()
    fake_openrouter.script(reply)
    response = await client.post(
        "/v1/chat/completions",
        data=orjson.dumps(
            completion_body(
                stream=True,
                tools=[WEATHER_TOOL],
                tool_choice="auto",
                stream_options={"include_usage": True},
            )
        ),
    )
    sent = [p for s in reply.steps if isinstance(s, bytes) for p in data_lines(s)]
    assert data_lines(await response.read()) == sent
    seen = fake_openrouter.requests[0].body
    assert seen["tools"] == [WEATHER_TOOL] and seen["tool_choice"] == "auto"


async def test_sdk_gets_tool_calls_streamed_and_assembled(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(tool_call_reply(), tool_call_reply())
    async with sdk_for(client) as sdk:
        completion = await sdk.chat.completions.create(
            model=MODEL,
            messages=messages(),
            tools=[WEATHER_TOOL],
        )
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=messages(),
            tools=[WEATHER_TOOL],
            stream=True,
        )
        arguments = ""
        async for c in stream:
            for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                arguments += call.function.arguments or "" if call.function else ""
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id == "call_1" and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert orjson.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert orjson.loads(arguments) == {"city": "Paris"}


async def test_tool_result_turn_is_accepted(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # The second turn of a tool call: an assistant message with no content, then the result.
    history: list[ChatCompletionMessageParam] = [
        *messages("Weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    fake_openrouter.script(sse_reply(["Sunny, 18 C."]))
    async with sdk_for(client) as sdk:
        completion = await sdk.chat.completions.create(
            model=MODEL,
            messages=history,
            tools=[WEATHER_TOOL],
        )
    assert completion.choices[0].message.content == "Sunny, 18 C."
    assert fake_openrouter.requests[0].body["messages"] == history


async def test_request_options_reach_upstream_as_given(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    async with sdk_for(client) as sdk:
        await sdk.chat.completions.create(
            model=MODEL,
            messages=messages(),
            temperature=0.3,
            max_tokens=50,
            top_p=0.9,
            stop=["\n\n"],
            seed=7,
            response_format={"type": "json_object"},
            extra_body={"provider": {"sort": "price"}, "models": ["a/b", "c/d"]},
        )
    seen = fake_openrouter.requests[0]
    assert seen.headers["Authorization"] == f"Bearer {SERVER_KEY}"
    body = seen.body
    assert body["model"] == MODEL and body["messages"] == messages()
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50 and body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"] and body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert body["provider"] == {"sort": "price"} and body["models"] == ["a/b", "c/d"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["usage"] == {"include": True}


async def test_logprobs_and_annotations_reach_the_client(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    first, second = chunk("Paris"), chunk(" is nice", finish_reason="stop")
    first["choices"][0]["logprobs"] = {
        "content": [{"token": "Paris", "logprob": -0.1, "bytes": None, "top_logprobs": []}]
    }
    second["choices"][0]["logprobs"] = {
        "content": [{"token": " is nice", "logprob": -0.2, "bytes": None, "top_logprobs": []}]
    }
    second["choices"][0]["delta"]["annotations"] = [
        {
            "type": "url_citation",
            "url_citation": {
                "url": "https://example.org",
                "title": "x",
                "start_index": 0,
                "end_index": 5,
            },
        }
    ]
    steps: list[Any] = [event(first), event(second), event("[DONE]")]
    fake_openrouter.script(Reply(steps=steps), Reply(steps=steps))
    response = await client.post(
        "/v1/chat/completions", data=orjson.dumps(completion_body(stream=True, logprobs=True))
    )
    assert json_lines(await response.read()) == [first, second]
    async with sdk_for(client) as sdk:
        completion = await sdk.chat.completions.create(
            model=MODEL, messages=messages(), logprobs=True
        )
    choice = completion.choices[0]
    assert choice.message.content == "Paris is nice"
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [t.token for t in choice.logprobs.content] == ["Paris", " is nice"]
    assert choice.message.annotations is not None
    assert choice.message.annotations[0].url_citation.url == "https://example.org"


async def test_models_list_in_openais_shape(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    async with sdk_for(client) as sdk:
        models = [m async for m in sdk.models.list()]
        again = [m async for m in sdk.models.list()]
    assert [m.id for m in models] == [
        "openai/gpt-4o-mini",
        "anthropic/claude-3.5-sonnet",
        "meta-llama/llama-3-8b-instruct:free",
    ]
    assert all(m.object == "model" for m in models)
    assert [m.created for m in models] == [1_700_000_000] * 3  # upstream's own
    assert models[0].owned_by == "openai"
    assert again == models
    assert fake_openrouter.models_calls == 1  # the same cache as /api/models


async def test_one_log_line_and_v1_metrics_per_chat(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client()
    async with sdk_for(client) as sdk:
        await sdk.chat.completions.create(model=MODEL, messages=messages("private words"))
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        _ = [c async for c in stream]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
    assert len(lines) == 2
    assert all("transport=v1" in line and "status=200" in line for line in lines)
    assert "private words" not in caplog.text and SERVER_KEY not in caplog.text
    metrics = await (await client.get("/metrics")).text()
    assert 'chatrelay_chats_total{outcome="done",transport="v1"} 2.0' in metrics


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_surrogate_pair_cut_across_chunks_and_a_server_ignoring_stream(
    client: Client, fake_openrouter: FakeOpenRouter, stream: bool
) -> None:
    fake_openrouter.script(
        split_surrogate_reply("Party ", "🎉", " time"), completion_reply("Whole answer")
    )
    async with sdk_for(client) as sdk:
        texts: list[str | None] = []
        for _ in range(2):
            if stream:
                chunks = await sdk.chat.completions.create(
                    model=MODEL, messages=messages(), stream=True
                )
                pieces = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                # Relayed as sent: each half is its own chunk, as a JavaScript server cut it.
                texts.append("".join(pieces).encode("utf-16", "surrogatepass").decode("utf-16"))
            else:
                completion = await sdk.chat.completions.create(model=MODEL, messages=messages())
                texts.append(completion.choices[0].message.content)
    assert texts == ["Party 🎉 time", "Whole answer"]
