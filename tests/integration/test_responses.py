"""/v1/responses with the real openai SDK: created streamed and not, every event checked
against the SDK's own types, tools, reasoning, options translated, errors before and after
the start, and a client leaving."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from openai import APIStatusError, RateLimitError
from openai.types.responses import FunctionToolParam, ResponseInputParam

from tests.conftest import SERVER_KEY, Client, MakeClient
from tests.fake_openrouter import (
    COMMENT,
    USAGE,
    FakeOpenRouter,
    Reply,
    chunk,
    error_reply,
    event,
    split_surrogate_reply,
    sse_reply,
    stream_error_reply,
    tool_call_reply,
)
from tests.integration.openai_sdk import sdk_for
from tests.integration.responses_events import check_events, sse_events

MODEL = "openai/gpt-4o-mini"


async def test_sdk_creates_a_response(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo, ", "wörld 🌍"]))
    async with sdk_for(client) as sdk:
        response = await sdk.responses.create(
            model=MODEL, instructions="Be brief.", input="Hello", max_output_tokens=50
        )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "Hello, wörld 🌍"
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.usage.total_tokens == 15
    assert response.max_output_tokens == 50 and response.instructions == "Be brief."
    sent = fake_openrouter.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert sent["max_tokens"] == 50 and sent["stream"] is True


async def test_sdk_streams_a_response_event_by_event(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo"], delay_s=0.01))
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Hello", stream=True)
        events = [e async for e in stream]
    check_events([e.model_dump(mode="json") for e in events])
    # Deltas that came in one upstream read may be one event.
    kinds = [e.type for i, e in enumerate(events) if i == 0 or e.type != events[i - 1].type]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "Hello"
    assert final.response.usage is not None and final.response.usage.total_tokens == 15


async def test_sdk_stream_helper_assembles_the_response(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["One", " two"]))
    async with sdk_for(client) as sdk, sdk.responses.stream(model=MODEL, input="Count") as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == "One two" == final.output_text


def reasoning_reply() -> Reply:
    steps: list[Any] = [COMMENT]
    steps += [event(chunk(reasoning=r)) for r in ("Think", "ing.")]
    steps += [event(chunk(t)) for t in ("Ans", "wer")]
    steps += [event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]
    return Reply(steps=steps)


async def test_reasoning_is_a_reasoning_item_before_the_message(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(reasoning_reply(), reasoning_reply())
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(
            model=MODEL, input="Why?", stream=True, reasoning={"effort": "high"}
        )
        events = [e.model_dump(mode="json") async for e in stream]
        response = await sdk.responses.create(model=MODEL, input="Why?")
    check_events(events)
    reasoning = [e["delta"] for e in events if e["type"] == "response.reasoning_text.delta"]
    assert "".join(reasoning) == "Thinking."
    assert [item.type for item in response.output] == ["reasoning", "message"]
    item = response.output[0]
    assert item.type == "reasoning" and item.content is not None
    assert item.content[0].text == "Thinking."
    assert response.output_text == "Answer"
    assert fake_openrouter.requests[0].body["reasoning"] == {"effort": "high"}


WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": None,
}


async def test_function_call_streamed_and_answered(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(tool_call_reply(), tool_call_reply(), sse_reply(["Sunny"]))
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER], stream=True
        )
        events = [e.model_dump(mode="json") async for e in stream]
        response = await sdk.responses.create(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER], tool_choice="required"
        )
        call = response.output[0]
        assert call.type == "function_call"
        # The next turn: the call and its output as input items.
        await sdk.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "22C"},
            ],
            tools=[WEATHER],
        )
    check_events(events)
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert orjson.loads("".join(deltas)) == {"city": "Paris"}
    assert call.name == "get_weather" and call.call_id == "call_1"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    first = fake_openrouter.requests[0].body
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": None,
            },
        }
    ]
    assert fake_openrouter.requests[1].body["tool_choice"] == "required"
    third = fake_openrouter.requests[2].body["messages"]
    assert third[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.arguments},
            }
        ],
    }
    assert third[2] == {"role": "tool", "tool_call_id": "call_1", "content": "22C"}


async def test_options_translated_for_upstream(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    image = "data:image/png;base64,iVBORw0KGgo="
    question: ResponseInputParam = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is it?"},
                {"type": "input_image", "image_url": image, "detail": "low"},
            ],
        }
    ]
    async with sdk_for(client) as sdk:
        response = await sdk.responses.create(
            model=MODEL,
            input=question,
            temperature=0.3,
            top_p=0.9,
            parallel_tool_calls=False,
            text={"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}},
            metadata={"run": "7"},
        )
    sent = fake_openrouter.requests[0].body
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ],
        }
    ]
    assert (sent["temperature"], sent["top_p"], sent["parallel_tool_calls"]) == (0.3, 0.9, False)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "A", "schema": schema, "strict": True},
    }
    assert "metadata" not in sent
    assert response.metadata == {"run": "7"} and response.temperature == 0.3


def length_reply() -> Reply:
    steps = [event(chunk("Cut")), event(chunk(finish_reason="length", usage=USAGE))]
    return Reply(steps=[*steps, event("[DONE]")])


async def test_length_cut_is_incomplete(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(length_reply(), length_reply())
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Go", stream=True)
        events = [e.model_dump(mode="json") async for e in stream]
        response = await sdk.responses.create(model=MODEL, input="Go", max_output_tokens=1)
    check_events(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response.status == "incomplete" and response.output_text == "Cut"


async def test_error_before_the_start_is_openai_error(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(
        error_reply(429, "Slow down", {"Retry-After": "7"}),
        error_reply(429, "Slow down", {"Retry-After": "7"}),
    )
    async with sdk_for(client) as sdk:
        with pytest.raises(RateLimitError) as raised:
            await sdk.responses.create(model=MODEL, input="Hi")
        assert raised.value.response.headers["Retry-After"] == "7"
        with pytest.raises(RateLimitError):
            stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
            [e async for e in stream]


async def test_error_after_the_start_is_response_failed(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply("server_error", "Provider fell over", ("Par",)))
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
        events = [e.model_dump(mode="json") async for e in stream]
    check_events(events)
    final = events[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["status"] == "failed"
    assert final["response"]["error"]["message"] == "Provider fell over"
    # What came before the failure is kept, closed as incomplete.
    assert final["response"]["output"][0]["content"][0]["text"] == "Par"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "Hi"}, "model"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"model": MODEL, "input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": MODEL, "input": "Hi", "temperature": 3}, "temperature"),
        ({"model": MODEL, "input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": MODEL, "input": "Hi", "text": {"format": {"type": "xml"}}}, "text.format"),
        ({"model": MODEL, "input": "Hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ],
)
async def test_bad_fields_are_400_naming_them(
    client: Client, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/responses", data=orjson.dumps(body))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["message"].startswith(field) and error["type"] == "invalid_request_error"


async def test_bad_request_raises_the_sdks_error(client: Client) -> None:
    async with sdk_for(client) as sdk:
        with pytest.raises(APIStatusError) as raised:
            await sdk.responses.create(model=MODEL, input="Hi", previous_response_id="resp_x")
    assert raised.value.status_code == 400
    assert "previous_response_id" in raised.value.message


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "not-streamed"])
async def test_client_leaving_closes_upstream(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, streamed: bool
) -> None:
    client = await make_client(first_byte_s=0.05)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("one")), "hang"]))
    async with sdk_for(client) as sdk:
        if streamed:
            stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
            async for e in stream:
                if e.type == "response.output_text.delta":
                    break
            await stream.close()
        else:
            waiting = asyncio.ensure_future(sdk.responses.create(model=MODEL, input="Hi"))
            await asyncio.wait_for(fake_openrouter.started.wait(), 5)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)


async def test_raw_stream_is_sse_with_event_names(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hi"]))
    body = {"model": MODEL, "input": "Hi", "stream": True}
    response = await client.post("/v1/responses", data=orjson.dumps(body))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(await response.read())
    check_events(events)
    assert events[-1]["type"] == "response.completed"


async def test_a_surrogate_pair_cut_across_chunks_arrives_whole(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(split_surrogate_reply("Party ", "🎉", "!"))
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
        events = [e.model_dump(mode="json") async for e in stream]
    check_events(events)
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Party 🎉!"


async def test_text_that_may_begin_the_key_is_not_lost(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # The server key starts with "s": a piece ending in "s" is held until the next one (each
    # in a read of its own), its chunk with it.
    tokens = ["Yes", " yes", " s"]
    fake_openrouter.script(sse_reply(tokens, delay_s=0.05), sse_reply(tokens, delay_s=0.05))
    async with sdk_for(client) as sdk:
        response = await sdk.responses.create(model=MODEL, input="Hi")
        stream = await sdk.responses.create(model=MODEL, input="Hi", stream=True)
        events = [e.model_dump(mode="json") async for e in stream]
    check_events(events)
    assert response.output_text == "Yes yes s"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Yes yes s"


def text_then_tool_call_reply() -> Reply:
    call = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    with_call = chunk()
    with_call["choices"][0]["delta"] = {"role": "assistant", "tool_calls": [call]}
    steps: list[Any] = [event(chunk("Let me look that up for Paris")), event(with_call)]
    steps += [event(chunk(finish_reason="tool_calls", usage=USAGE)), event("[DONE]")]
    return Reply(steps=steps)


async def test_text_then_a_tool_call_are_two_items_in_order(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(text_then_tool_call_reply())
    async with sdk_for(client) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="Weather?", stream=True)
        events = [e.model_dump(mode="json") async for e in stream]
    check_events(events)
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[0]["content"][0]["text"] == "Let me look that up for Paris"
    assert output[1]["call_id"] == "call_9" and output[1]["arguments"] == '{"city": "Paris"}'


async def test_a_key_upstream_echoes_never_reaches_the_client(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    half = len(SERVER_KEY) // 2
    pieces = ["Your key is ", SERVER_KEY[:half], SERVER_KEY[half:], " ok"]
    fake_openrouter.script(sse_reply(pieces, delay_s=0.05))
    body = {"model": MODEL, "input": "Hi", "stream": True}
    response = await client.post("/v1/responses", data=orjson.dumps(body))
    raw = await response.read()
    assert SERVER_KEY.encode() not in raw and SERVER_KEY[:half].encode() not in raw
    events = sse_events(raw)
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == (
        "Your key is [redacted] ok"
    )
