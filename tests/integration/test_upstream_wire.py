"""Every OpenAI-compatible wire format SPEC lists, through every transport, ends in exact text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.clients import chat_frame, parse_sse, until_end
from tests.conftest import Client, chat_body
from tests.fake_openrouter import (
    USAGE,
    FakeOpenRouter,
    Reply,
    chunk,
    completion_reply,
    event,
    gzip_reply,
    openai_style_reply,
    split_surrogate_reply,
    sse_reply,
    stream_error_reply,
)

ROUTE = "/api/chat/openrouter"


@dataclass
class ThreeWays:
    """One reply's chat as each transport delivered it."""

    plain: str
    sse: list[tuple[str, dict[str, Any]]]
    ws: list[dict[str, Any]]

    def texts(self, kind: str = "delta") -> tuple[str, str]:
        over_sse = "".join(data["content"] for name, data in self.sse if name == kind)
        over_ws = "".join(frame["content"] for frame in self.ws if frame["type"] == kind)
        return over_sse, over_ws


async def three_ways(client: Client, fake: FakeOpenRouter, reply: Callable[[], Reply]) -> ThreeWays:
    fake.script(reply(), reply(), reply())
    plain = await client.post(ROUTE, data=orjson.dumps(chat_body()))
    assert plain.status == 200
    headers = {"Accept": "text/event-stream"}
    sse = await client.post(ROUTE, data=orjson.dumps(chat_body()), headers=headers)
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("w"))
        frames = await until_end(ws, "w")
    # What upstream's wire gives, without the seq every event carries (tests/durable/).
    events = [(name, without_seq(data)) for name, data in parse_sse(await sse.text())]
    return ThreeWays(await plain.text(), events, [without_seq(frame) for frame in frames])


def without_seq(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "seq"}


async def test_a_surrogate_pair_cut_across_two_chunks_arrives_whole(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    got = await three_ways(
        client, fake_openrouter, lambda: split_surrogate_reply("Party ", "🎉", " time")
    )
    assert got.plain == "Party 🎉 time"
    assert got.texts() == ("Party 🎉 time", "Party 🎉 time")
    assert got.sse[-1] == ("done", {"finish_reason": "stop", "usage": USAGE})


async def test_a_half_pair_that_never_gets_its_other_half_is_a_replacement_character(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    got = await three_ways(
        client, fake_openrouter, lambda: split_surrogate_reply("a", "🎉", "b", cut=False)
    )
    assert got.plain == "a\ufffdb"
    assert got.ws[-1]["type"] == "done"


@pytest.mark.parametrize("line_end", ["\r", "\r\n", "\n"], ids=["cr", "crlf", "lf"])
async def test_any_line_end_the_standard_allows(
    client: Client, fake_openrouter: FakeOpenRouter, line_end: str
) -> None:
    tokens = ["One", " line", " end"]
    got = await three_ways(client, fake_openrouter, lambda: sse_reply(tokens, line_end=line_end))
    assert got.plain == "One line end"
    assert got.texts() == ("One line end", "One line end")
    assert got.ws[-1]["usage"] == USAGE


async def test_usage_from_a_server_that_sends_it_only_when_asked_the_openai_way(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    got = await three_ways(client, fake_openrouter, lambda: openai_style_reply(["A", "B"], usage))
    assert got.plain == "AB"
    assert got.sse[-1] == ("done", {"finish_reason": "stop", "usage": usage})
    assert (got.ws[-1]["type"], got.ws[-1]["usage"]) == ("done", usage)
    asked = fake_openrouter.requests[0].body
    assert asked["usage"] == {"include": True}
    assert asked["stream_options"] == {"include_usage": True}


async def test_reasoning_content_is_reasoning(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    def reply() -> Reply:
        answer = sse_reply(["42"])
        answer.steps[1:1] = [
            event(chunk(reasoning_content="Think")),
            event(chunk(reasoning_content="ing")),
        ]
        return answer

    got = await three_ways(client, fake_openrouter, reply)
    assert got.plain == "42"
    assert got.texts("reasoning") == ("Thinking", "Thinking")
    assert got.sse[0] == ("reasoning", {"content": "Thinking"})


async def test_a_server_that_ignores_stream_true_is_relayed(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    got = await three_ways(
        client, fake_openrouter, lambda: completion_reply("Whole answer", reasoning="Mulled")
    )
    assert got.plain == "Whole answer"
    assert got.sse == [
        ("reasoning", {"content": "Mulled"}),
        ("delta", {"content": "Whole answer"}),
        ("done", {"finish_reason": "stop", "usage": USAGE}),
    ]
    assert [f["type"] for f in got.ws] == ["reasoning", "delta", "done"]


async def test_a_gzip_compressed_stream_within_the_limit_is_read(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    body = b"".join(s for s in sse_reply(["Zip", "ped"]).steps if isinstance(s, bytes))
    got = await three_ways(client, fake_openrouter, lambda: gzip_reply(body))
    assert got.plain == "Zipped"
    assert fake_openrouter.requests[0].headers["Accept-Encoding"] == "identity"


OPENAI_CODES = [
    ("rate_limit_exceeded", 429),
    ("insufficient_quota", 429),
    ("context_length_exceeded", 400),
    ("invalid_api_key", 401),
    ("model_not_found", 404),
    ("server_error", 502),
]


@pytest.mark.parametrize(("code", "status"), OPENAI_CODES)
async def test_openai_string_error_codes_in_the_stream_get_their_status(
    client: Client, fake_openrouter: FakeOpenRouter, code: str, status: int
) -> None:
    fake_openrouter.script(stream_error_reply(code, f"upstream says {code}"))
    response = await client.post(ROUTE, data=orjson.dumps(chat_body()))
    assert response.status == status
    assert await response.json() == {"message": f"upstream says {code}"}
    fake_openrouter.script(stream_error_reply(code, "late", tokens=("Hi",)))
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("e"))
        frames = await until_end(ws, "e")
    assert [(f["type"], f.get("status")) for f in frames] == [("delta", None), ("error", status)]


async def test_an_error_with_only_openai_s_type_gets_its_status(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    error = {"message": "Slow down", "type": "rate_limit_error", "code": None}
    fake_openrouter.script(Reply(steps=[event({"error": error})]))
    response = await client.post(ROUTE, data=orjson.dumps(chat_body()))
    assert (response.status, (await response.json())["message"]) == (429, "Slow down")
