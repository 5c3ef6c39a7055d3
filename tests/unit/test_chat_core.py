"""The chat core against a scripted upstream: events, merging, errors, validation, logging."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Any

import orjson
import pytest

from server.errors import BadRequest, UpstreamError
from server.metrics import ChatObserver
from server.relay.openrouter import Batches, stream_chat
from server.relay.request import parse_chat_request
from server.relay.wire import read_batch
from server.store.events import ChatEvent, Delta, Done, Reasoning
from tests.conftest import chat_body
from tests.fake_openrouter import USAGE, chunk

KEY = "sk-or-v1-core-test-key-5555"


class ScriptedUpstream:
    """Replays batches of payloads as if each were one network read, decoded as the real
    upstream client decodes them."""

    def __init__(self, *batches: list[bytes]) -> None:
        self.batches = batches
        self.payloads: list[dict[str, Any]] = []
        self.closed = False

    def open_chat(
        self, api_key: str, payload: dict[str, Any]
    ) -> AbstractAsyncContextManager[Batches]:
        self.payloads.append(orjson.loads(orjson.dumps(payload)))  # as it goes on the wire
        return self._open()

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Batches]:
        try:
            yield self._batches()
        finally:
            self.closed = True

    async def _batches(self) -> Batches:
        for payloads in self.batches:
            yield read_batch(payloads)


def data(**kwargs: Any) -> bytes:
    return orjson.dumps(chunk(**kwargs))


def observer() -> ChatObserver:
    return ChatObserver("c1", "test", "openai/gpt-4o-mini")


async def batches_of(
    upstream: ScriptedUpstream, seen: ChatObserver | None = None
) -> list[list[ChatEvent]]:
    request = parse_chat_request(chat_body())
    stream = stream_chat(request, KEY, upstream, seen or observer())
    return [events async for events in stream]


async def events_of(
    upstream: ScriptedUpstream, seen: ChatObserver | None = None
) -> list[ChatEvent]:
    return [event for events in await batches_of(upstream, seen) for event in events]


async def test_deltas_of_one_read_are_merged_and_reads_stay_apart() -> None:
    upstream = ScriptedUpstream(
        [data(content="Hel"), data(content="lo")],
        [data(content=" world"), data(finish_reason="stop")],
        [data(finish_reason="stop", usage=USAGE), b"[DONE]"],
    )
    assert await batches_of(upstream) == [
        [Delta("Hello")],
        [Delta(" world")],
        [Done("stop", USAGE)],
    ]
    assert upstream.closed


async def test_reasoning_and_text_keep_their_order() -> None:
    upstream = ScriptedUpstream(
        [data(reasoning="think"), data(reasoning="ing"), data(content="A"), data(reasoning="more")],
        [b"[DONE]"],
    )
    events = await events_of(upstream)
    assert events == [Reasoning("thinking"), Delta("A"), Reasoning("more"), Done(None, None)]


async def test_payload_asks_for_streaming_and_usage() -> None:
    upstream = ScriptedUpstream([b"[DONE]"])
    await events_of(upstream)
    assert upstream.payloads == [
        {
            "model": "openai/gpt-4o-mini",
            "messages": chat_body()["messages"],
            "stream": True,
            "usage": {"include": True},
            "stream_options": {"include_usage": True},
            "temperature": 0.7,
        }
    ]


async def test_payloads_after_done_are_not_read() -> None:
    upstream = ScriptedUpstream([data(content="x"), b"[DONE]", b"not json"])
    assert await events_of(upstream) == [Delta("x"), Done(None, None)]


async def test_finish_reason_without_done_marker_still_ends_well() -> None:
    upstream = ScriptedUpstream([data(content="x"), data(finish_reason="length")])
    assert await events_of(upstream) == [Delta("x"), Done("length", None)]


async def test_stream_that_just_stops_is_an_error() -> None:
    upstream = ScriptedUpstream([data(content="x")])
    with pytest.raises(UpstreamError, match="closed the stream before it finished") as caught:
        await events_of(upstream)
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("code", "status"), [(429, 429), ("503", 503), ("server_error", 502), (200, 502)]
)
async def test_error_chunk_status_comes_from_its_code(code: object, status: int) -> None:
    upstream = ScriptedUpstream(
        [data(content="", error={"code": code, "message": "Provider down"})]
    )
    with pytest.raises(UpstreamError) as caught:
        await events_of(upstream)
    assert (caught.value.status, caught.value.message) == (status, "Provider down")
    assert upstream.closed


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"'])
async def test_malformed_event_is_a_502(payload: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        await events_of(ScriptedUpstream([payload]))
    assert caught.value.status == 502
    assert "OpenRouter sent an event" in caught.value.message


async def test_closing_the_stream_early_closes_upstream() -> None:
    upstream = ScriptedUpstream([data(content="a")], [data(content="b")], [b"[DONE]"])
    request = parse_chat_request(chat_body())
    async with aclosing(stream_chat(request, KEY, upstream, observer())) as events:
        assert await anext(events) == [Delta("a")]
    assert upstream.closed


async def test_one_info_line_per_chat_without_key_or_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.chat")
    upstream = ScriptedUpstream([data(content="secret answer")], [data(usage=USAGE), b"[DONE]"])
    # The core fills the observer in; whoever ran the chat ends it (server/relay/runs.py).
    seen = observer()
    await events_of(upstream, seen)
    seen.ended(200, "done")
    lines = [r.getMessage() for r in caplog.records if r.name == "server.chat"]
    assert len(lines) == 1
    line = lines[0]
    for field in (
        "transport=test",
        "model=openai/gpt-4o-mini",
        "status=200",
        "tokens=3",
        "ttft_ms=",
    ):
        assert field in line
    assert "cancelled=False" in line
    assert KEY not in line and "secret answer" not in line and "Hello" not in line


VALID = chat_body()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body must be a JSON object"),
        ({"messages": VALID["messages"]}, "chatSettings must be an object"),
        ({**VALID, "chatSettings": {}}, "chatSettings.model"),
        ({**VALID, "chatSettings": {"model": ""}}, "chatSettings.model"),
        ({**VALID, "chatSettings": {"model": "   "}}, "chatSettings.model"),
        ({**VALID, "chatSettings": {"model": "m" * 201}}, "chatSettings.model"),
        ({**VALID, "chatSettings": {"model": 5}}, "chatSettings.model"),
        ({**VALID, "chatSettings": {"model": "m", "temperature": 2.5}}, "chatSettings.temperature"),
        (
            {**VALID, "chatSettings": {"model": "m", "temperature": -0.1}},
            "chatSettings.temperature",
        ),
        ({**VALID, "chatSettings": {"model": "m", "temperature": "1"}}, "chatSettings.temperature"),
        (
            {**VALID, "chatSettings": {"model": "m", "temperature": True}},
            "chatSettings.temperature",
        ),
        ({"chatSettings": {"model": "m"}}, "messages must be a non-empty list"),
        ({"chatSettings": {"model": "m"}, "messages": []}, "messages must be a non-empty list"),
        ({"chatSettings": {"model": "m"}, "messages": ["hi"]}, "messages[0] must be an object"),
        (
            {"chatSettings": {"model": "m"}, "messages": [{"role": "bot", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"chatSettings": {"model": "m"}, "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
        (
            {"chatSettings": {"model": "m"}, "messages": [{"role": "user", "content": [{"x": 1}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_bad_requests_name_the_field(body: object, field: str) -> None:
    with pytest.raises(BadRequest, match=field.replace("[", r"\[").replace("]", r"\]")) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400


def test_good_request_with_parts_and_extra_settings() -> None:
    body = {
        "chatSettings": {"model": "m", "temperature": 0, "includeProfileContext": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": "yo"},
            {"role": "tool", "content": "{}", "tool_call_id": "t1"},
        ],
    }
    request = parse_chat_request(body)
    assert request.temperature == 0
    sent = orjson.loads(orjson.dumps(request.upstream_payload()))
    assert sent["messages"] == body["messages"]
    assert "max_tokens" not in sent and "reasoning" not in sent


async def test_text_before_an_error_in_the_same_read_is_delivered() -> None:
    upstream = ScriptedUpstream([data(content="Par"), data(content="tial"), b"{broken"])
    request = parse_chat_request(chat_body())
    received: list[ChatEvent] = []
    with pytest.raises(UpstreamError):
        async for events in stream_chat(request, KEY, upstream, observer()):
            received += events
    assert received == [Delta("Partial")]
