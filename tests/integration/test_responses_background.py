"""/v1/responses as runs, with the real openai SDK: `background` responses that outlive their
client and are resumed with `starting_after` (on another process, through Redis),
retrieved, cancelled, deleted and their input listed; ownership like durable chats."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI, BadRequestError, NotFoundError
from openai.types.responses.response_input_param import ItemReference

from tests.conftest import Client, MakeClient
from tests.fake_openrouter import COMMENT, USAGE, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.integration.openai_sdk import sdk_for
from tests.integration.responses_events import check_events
from tests.waiting import wait_until

MODEL = "openai/gpt-4o-mini"


def gated_reply(gate: asyncio.Event) -> Reply:
    """`One`, then nothing until the test sets `gate`, then ` two three` and the end."""
    steps: list[Any] = [COMMENT, event(chunk("One")), gate]
    steps += [event(chunk(t)) for t in (" two", " three")]
    steps += [event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]
    return Reply(steps=steps)


async def first_events(sdk: AsyncOpenAI, **fields: Any) -> list[dict[str, Any]]:
    """Create a streamed response and break off after its first text."""
    stream = await sdk.responses.create(model=MODEL, input="Count", stream=True, **fields)
    events = []
    async for e in stream:
        events.append(e.model_dump(mode="json"))
        if e.type == "response.output_text.delta":
            break
    await stream.close()
    return events


async def test_background_stream_broken_off_and_resumed(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    gate = asyncio.Event()
    fake_openrouter.script(gated_reply(gate))
    async with sdk_for(client) as sdk:
        before = await first_events(sdk, background=True)
        response_id = before[0]["response"]["id"]
        assert before[0]["response"]["background"] is True
        gate.set()
        last = before[-1]["sequence_number"]
        resumed = await sdk.responses.retrieve(response_id, stream=True, starting_after=last)
        after = [e.model_dump(mode="json") async for e in resumed]
        # The SDK's own resume: all events replayed, its accumulator checking their order.
        async with sdk.responses.stream(response_id=response_id, starting_after=last) as helper:
            helped = [e async for e in helper]
            final = await helper.get_final_response()
    check_events(before + after)
    assert after[0]["sequence_number"] == last + 1
    text = [e["delta"] for e in before + after if e["type"] == "response.output_text.delta"]
    assert "".join(text) == "One two three"
    assert after[-1]["type"] == "response.completed"
    assert [e.sequence_number for e in helped] == [e["sequence_number"] for e in after]
    assert final.output_text == "One two three" and final.id == response_id
    # The client left, and the response went on upstream to its end.
    assert len(fake_openrouter.requests) == 1
    assert not fake_openrouter.requests[0].disconnected


async def test_background_create_answers_at_once_then_retrieve(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    gate = asyncio.Event()
    fake_openrouter.script(gated_reply(gate))
    async with sdk_for(client) as sdk:
        created = await sdk.responses.create(model=MODEL, input="Count", background=True)
        assert created.status in ("queued", "in_progress") and created.background is True

        async def partial() -> bool:
            response = await sdk.responses.retrieve(created.id)
            return response.status == "in_progress" and response.output_text == "One"

        await wait_until(partial, "the running response showed its first text")
        gate.set()

        async def completed() -> bool:
            return (await sdk.responses.retrieve(created.id)).status == "completed"

        await wait_until(completed, "the response completed")
        done = await sdk.responses.retrieve(created.id)
    assert done.output_text == "One two three"
    assert done.usage is not None and done.usage.total_tokens == 15


async def test_cancel_stops_a_background_response(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Par")), "hang"]))
    async with sdk_for(client) as sdk:
        created = await sdk.responses.create(model=MODEL, input="Hi", background=True)
        await asyncio.wait_for(fake_openrouter.started.wait(), 5)
        cancelled = await sdk.responses.cancel(created.id)
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)
        retrieved = await sdk.responses.retrieve(created.id)
        replay = await sdk.responses.retrieve(created.id, stream=True)
        events = [e.model_dump(mode="json") async for e in replay]
    assert cancelled.status == "cancelled" == retrieved.status
    check_events(events)
    assert events[-1]["response"]["status"] == "cancelled"


async def test_delete_forgets_and_input_items_lists(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hi"]))
    async with sdk_for(client) as sdk:
        response = await sdk.responses.create(
            model=MODEL,
            instructions="Be brief.",
            input=[
                {"role": "user", "content": "First"},
                {"role": "assistant", "content": "Answer"},
                {"role": "user", "content": [{"type": "input_text", "text": "Second"}]},
            ],
        )
        items = [item async for item in sdk.responses.input_items.list(response.id, order="asc")]
        newest = await sdk.responses.input_items.list(response.id, limit=1)
        deleted = await sdk.responses.with_raw_response.delete(response.id)
        with pytest.raises(NotFoundError):
            await sdk.responses.retrieve(response.id)
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    first = items[0]
    assert first.type == "message" and first.content[0].type == "input_text"
    assert first.content[0].text == "First"
    assert [i.id for i in newest.data] == [items[-1].id] and newest.has_more
    assert deleted.http_response.json() == {
        "id": response.id,
        "object": "response",
        "deleted": True,
    }


async def test_a_response_is_its_owners_alone(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await client.get("/api/profile")  # a page's session: its chats are its own
    body = {"model": MODEL, "input": "Mine", "background": True}
    created = await (await client.post("/v1/responses", data=orjson.dumps(body))).json()
    response_id = created["id"]
    own = await client.get(f"/v1/responses/{response_id}")
    assert own.status == 200
    async with sdk_for(client) as stranger:  # no cookie: another caller
        for call in (
            stranger.responses.retrieve(response_id),
            stranger.responses.cancel(response_id),
            stranger.responses.retrieve("resp_" + "0" * 48),
            stranger.responses.retrieve("not-an-id"),
        ):
            with pytest.raises(NotFoundError):
                await call


async def test_background_response_moves_between_processes(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    gate = asyncio.Event()
    fake_openrouter.script(gated_reply(gate), Reply(steps=[COMMENT, event(chunk("x")), "hang"]))
    first = await make_client(redis_url=redis_url)
    second = await make_client(redis_url=redis_url)
    async with sdk_for(first) as one, sdk_for(second) as other:
        before = await first_events(one, background=True)
        response_id = before[0]["response"]["id"]
        last = before[-1]["sequence_number"]
        gate.set()
        resumed = await other.responses.retrieve(response_id, stream=True, starting_after=last)
        after = [e.model_dump(mode="json") async for e in resumed]
        # A cancel on the other process reaches the one that runs the response.
        created = await one.responses.create(model=MODEL, input="Hi", background=True)
        await wait_until(lambda: len(fake_openrouter.requests) == 2, "upstream was asked")
        cancelled = await other.responses.cancel(created.id)
        await fake_openrouter.requests[1].wait_dropped_by_relay(2.0)
    check_events(before + after)
    text = [e["delta"] for e in before + after if e["type"] == "response.output_text.delta"]
    assert "".join(text) == "One two three"
    assert cancelled.status == "cancelled"


async def test_foreground_response_can_be_retrieved_after(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Kept"]))
    async with sdk_for(client) as sdk:
        response = await sdk.responses.create(model=MODEL, input="Hi")
        again = await sdk.responses.retrieve(response.id)
    assert again.output_text == "Kept" and again.status == "completed"
    assert again.model_dump() == response.model_dump()


async def test_item_reference_names_an_earlier_answer(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # The Vercel AI SDK sends an earlier answer as {"type": "item_reference", "id"}.
    fake_openrouter.script(sse_reply(["Paris"]), sse_reply(["Yes"]))
    async with sdk_for(client) as sdk:
        first = await sdk.responses.create(model=MODEL, input="Capital of France?")
        answer = first.output[0]
        assert answer.type == "message"
        reference: ItemReference = {"type": "item_reference", "id": answer.id}
        await sdk.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": "Capital of France?"},
                reference,
                {"role": "user", "content": "Sure?"},
            ],
        )
        with pytest.raises(BadRequestError) as raised:
            await sdk.responses.create(
                model=MODEL, input=[{"type": "item_reference", "id": "msg_" + "0" * 48 + "o0"}]
            )
    assert fake_openrouter.requests[1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "Sure?"},
    ]
    assert "input[0].id names no item" in raised.value.message
