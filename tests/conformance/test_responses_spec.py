"""SPEC "The Responses API", read to the letter and checked from outside over raw HTTP (no
SDK smoothing anything over): every route's answer, `resp_` ids, event names and sequence
numbers, one final event, background runs resumed, cancel, delete, input items, `store` and
`previous_response_id` with and without an account, and errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import Serve
from tests.fake_openrouter import (
    COMMENT,
    USAGE,
    FakeOpenRouter,
    Reply,
    chunk,
    error_reply,
    event,
    sse_reply,
    stream_error_reply,
)
from tests.history.devices import Client, json_of
from tests.waiting import wait_until

MODEL = "openai/gpt-4o-mini"
FINAL = ("response.completed", "response.incomplete", "response.failed")


@pytest.fixture
async def server(serve: Serve) -> TestServer:
    return await serve(signup="open")


@pytest.fixture
async def anonymous(server: TestServer) -> AsyncIterator[Client]:
    client: Client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()


def gated(gate: asyncio.Event) -> Reply:
    steps: list[Any] = [COMMENT, event(chunk("One")), gate, event(chunk(" two"))]
    steps += [event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]
    return Reply(steps=steps)


def sse_of(body: bytes) -> list[dict[str, Any]]:
    """Each SSE block as its data, its `event:` name checked to be the data's `type`."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        data: dict[str, Any] = orjson.loads(fields["data"])
        assert fields["event"] == data["type"], block
        events.append(data)
    return events


async def openai_error(response: Any, status: int) -> dict[str, Any]:
    """The error of an answer in OpenAI's shape, with its status (any 4xx/5xx for 0)."""
    if status == 0:
        assert response.status >= 400, (response.status, await response.text())
    else:
        assert response.status == status, (response.status, await response.text())
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error)
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    return error


def check_response(found: dict[str, Any]) -> None:
    assert found["object"] == "response"
    assert isinstance(found["id"], str) and found["id"].startswith("resp_")
    assert found["status"] in (
        "queued",
        "in_progress",
        "completed",
        "incomplete",
        "failed",
        "cancelled",
    )
    assert isinstance(found["output"], list)


async def create(client: Client, **body: Any) -> Any:
    return await client.post("/v1/responses", json={"model": MODEL, "input": "Hi", **body})


async def test_a_response_object_with_text_and_usage(
    anonymous: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo"]))
    found = await json_of(await create(anonymous), 200)
    check_response(found)
    assert found["status"] == "completed"
    [item] = found["output"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert [p["type"] for p in item["content"]] == ["output_text"]
    assert item["content"][0]["text"] == "Hello"
    usage = found["usage"]
    assert {"input_tokens", "output_tokens", "total_tokens"} <= set(usage)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # Without an account a response is not stored, whatever the body says.
    assert found["store"] is False
    again = await json_of(await anonymous.get(f"/v1/responses/{found['id']}"), 200)
    assert again["id"] == found["id"] and again["output"] == found["output"]


async def test_a_stream_of_named_numbered_events_with_one_final(
    anonymous: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo"]), stream_error_reply(500, "Broke", ("Par",)))
    for final in ("response.completed", "response.failed"):
        response = await create(anonymous, stream=True)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_of(await response.read())
        numbers = [e["sequence_number"] for e in events]
        assert numbers == list(range(numbers[0], numbers[0] + len(events)))
        assert events[0]["type"] == "response.created"
        assert events[1]["type"] == "response.in_progress"
        assert events[0]["response"]["id"].startswith("resp_")
        assert [e["type"] for e in events if e["type"] in FINAL] == [final]
        assert events[-1]["type"] == final
        kinds = {e["type"] for e in events}
        for kind in (
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
        ):
            assert kind in kinds, (final, kind)


async def test_background_resumed_after_a_sequence_number(
    anonymous: Client, fake_openrouter: FakeOpenRouter
) -> None:
    gate = asyncio.Event()
    fake_openrouter.script(gated(gate))
    created = await json_of(await create(anonymous, background=True), 200)
    check_response(created)
    assert created["background"] is True
    assert created["status"] in ("queued", "in_progress")
    rid = created["id"]

    async def said_one() -> bool:
        found = await json_of(await anonymous.get(f"/v1/responses/{rid}"), 200)
        return bool(found["output"]) and found["status"] == "in_progress"

    await wait_until(said_one, "the running response showed its first text")
    gate.set()
    whole = sse_of(await (await anonymous.get(f"/v1/responses/{rid}?stream=true")).read())
    assert [e["sequence_number"] for e in whole] == list(range(1, len(whole) + 1))
    assert whole[-1]["type"] == "response.completed"
    for after in (0, 3, len(whole)):
        resumed = await anonymous.get(
            f"/v1/responses/{rid}", params={"stream": "true", "starting_after": str(after)}
        )
        assert resumed.status == 200
        assert sse_of(await resumed.read()) == whole[after:]
    for bad in ("abc", "-1", "1.5"):
        refused = await anonymous.get(
            f"/v1/responses/{rid}", params={"stream": "true", "starting_after": bad}
        )
        error = await openai_error(refused, 400)
        assert "starting_after" in error["message"]


async def test_cancel_delete_and_input_items(
    anonymous: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Par")), "hang"]))
    created = await json_of(await create(anonymous, background=True), 200)
    rid = created["id"]
    await asyncio.wait_for(fake_openrouter.started.wait(), 5)
    cancelled = await json_of(await anonymous.post(f"/v1/responses/{rid}/cancel"), 200)
    check_response(cancelled)
    assert cancelled["status"] == "cancelled" and cancelled["id"] == rid
    assert (await json_of(await anonymous.get(f"/v1/responses/{rid}"), 200))["status"] == (
        "cancelled"
    )
    replay = sse_of(await (await anonymous.get(f"/v1/responses/{rid}?stream=true")).read())
    assert [e["type"] for e in replay if e["type"] in FINAL] == [replay[-1]["type"]]
    items = await json_of(await anonymous.get(f"/v1/responses/{rid}/input_items"), 200)
    assert items["object"] == "list" and isinstance(items["data"], list)
    assert [i["type"] for i in items["data"]] == ["message"]
    deleted = await json_of(await anonymous.delete(f"/v1/responses/{rid}"), 200)
    assert deleted == {"id": rid, "object": "response", "deleted": True}
    for method, path in (
        ("GET", f"/v1/responses/{rid}"),
        ("DELETE", f"/v1/responses/{rid}"),
        ("POST", f"/v1/responses/{rid}/cancel"),
        ("GET", f"/v1/responses/{rid}/input_items"),
    ):
        await openai_error(await anonymous.request(method, path), 404)


async def test_store_and_previous_response_id_need_an_account(
    anonymous: Client, ann: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["First"]), sse_reply(["Second"]))
    refused = await create(anonymous, previous_response_id="resp_" + "0" * 48)
    error = await openai_error(refused, 400)
    assert "previous_response_id" in error["message"]
    assert error["type"] == "invalid_request_error"
    stored = await json_of(await create(ann, input="Q1"), 200)
    assert stored["store"] is True
    follow = await json_of(await create(ann, input="Q2", previous_response_id=stored["id"]), 200)
    assert follow["previous_response_id"] == stored["id"]
    # Both turns are one conversation of the account's history.
    listed = await json_of(await ann.get("/api/conversations"), 200)
    assert len(listed["data"]) == 1
    opened = await json_of(await ann.get(f"/api/conversations/{listed['data'][0]['id']}"), 200)
    said = [(m["role"], m["content"]) for m in opened["messages"]]
    assert said == [("user", "Q1"), ("assistant", "First"), ("user", "Q2"), ("assistant", "Second")]
    unknown = await create(ann, previous_response_id="resp_" + "0" * 48)
    assert "previous_response_id" in (await openai_error(unknown, 404))["message"]
    not_stored = await json_of(await create(ann, store=False), 200)
    assert not_stored["store"] is False


async def test_another_accounts_response_is_the_same_404_as_an_unknown_one(
    ann: Client, bob: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Ann's"]))
    rid = (await json_of(await create(ann), 200))["id"]
    unknown = "resp_" + "1" * 48
    for method, path in (
        ("GET", "/v1/responses/{}"),
        ("GET", "/v1/responses/{}?stream=true"),
        ("POST", "/v1/responses/{}/cancel"),
        ("DELETE", "/v1/responses/{}"),
        ("GET", "/v1/responses/{}/input_items"),
    ):
        theirs = await openai_error(await bob.request(method, path.format(rid)), 404)
        nobodys = await openai_error(await bob.request(method, path.format(unknown)), 404)
        assert theirs["message"].replace(rid, "X") == nobodys["message"].replace(unknown, "X")
        assert (theirs["type"], theirs["code"]) == (nobodys["type"], nobodys["code"])
    continued = await create(bob, previous_response_id=rid)
    assert "previous_response_id" in (await openai_error(continued, 404))["message"]
    assert len(fake_openrouter.requests) == 1
    # Ann's own is still there, untouched by Bob's DELETE.
    assert (await json_of(await ann.get(f"/v1/responses/{rid}"), 200))["output"]


async def test_errors_in_openais_shape(anonymous: Client, fake_openrouter: FakeOpenRouter) -> None:
    for body, field in (
        ({"input": "Hi"}, "model"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": "Hi", "temperature": 3}, "temperature"),
        ({"model": MODEL, "input": 5}, "input"),
    ):
        response = await anonymous.post("/v1/responses", json=body)
        error = await openai_error(response, 400)
        assert field in error["message"] and error["type"] == "invalid_request_error"
    not_json = await anonymous.post(
        "/v1/responses", data=b"{", headers={"Content-Type": "application/json"}
    )
    await openai_error(not_json, 400)
    fake_openrouter.script(error_reply(429, "Slow down", {"Retry-After": "7"}))
    limited = await create(anonymous)
    error = await openai_error(limited, 429)
    assert error["message"] == "Slow down" and error["type"] == "rate_limit_error"
    assert limited.headers["Retry-After"] == "7"
    await openai_error(await anonymous.get("/v1/responses/not-a-response-id"), 404)


@pytest.mark.parametrize("redis", [False, True], ids=["memory", "redis"])
async def test_an_upstream_errors_code_is_the_same_on_both_v1_routes(
    serve: Serve, fake_openrouter: FakeOpenRouter, redis_url: str, redis: bool
) -> None:
    """Errors in OpenAI's shape, as on /v1/chat/completions: a response's error read back
    from its run's log (through Redis too) keeps upstream's own code."""
    server = await serve(redis_url=redis_url if redis else None)
    async with TestClient(server) as client:
        bodies = (
            (
                "/v1/chat/completions",
                {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
            ),
            ("/v1/responses", {"model": MODEL, "input": "Hi"}),
        )
        codes: dict[str, list[tuple[int, str | None]]] = {}
        for path, body in bodies:
            fake_openrouter.script(
                stream_error_reply("context_length_exceeded", "Too long"),
                error_reply(429, "Slow down"),
            )
            for _ in range(2):
                response = await client.post(path, json=body)
                error = await openai_error(response, 0)
                codes.setdefault(path, []).append((response.status, error["code"]))
    assert codes["/v1/responses"] == codes["/v1/chat/completions"]
    assert codes["/v1/responses"][0] == (400, "context_length_exceeded")
