"""A chat.completion assembled from chunks, and OpenAI request bodies checked, without sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.errors import BadRequest
from server.relay.completion import CompletionBuilder
from server.relay.request import parse_completion_request


def choice_chunk(index: int, delta: dict[str, Any], **choice: Any) -> bytes:
    body = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [{"index": index, "delta": delta, **choice}],
    }
    return orjson.dumps(body)


def test_each_choice_gets_its_own_message() -> None:
    builder = CompletionBuilder()
    builder.feed(
        [
            choice_chunk(0, {"role": "assistant", "content": "A"}),
            choice_chunk(1, {"role": "assistant", "content": "B"}),
            choice_chunk(0, {"role": "assistant", "content": "a"}, finish_reason="stop"),
            choice_chunk(1, {"role": "assistant", "content": "b"}, finish_reason="length"),
        ]
    )
    completion = builder.completion()
    assert [c["message"]["content"] for c in completion["choices"]] == ["Aa", "Bb"]
    assert [c["message"]["role"] for c in completion["choices"]] == ["assistant", "assistant"]
    assert [c["finish_reason"] for c in completion["choices"]] == ["stop", "length"]
    assert completion["id"] == "gen-1" and completion["object"] == "chat.completion"


def test_reasoning_and_parallel_tool_calls_are_merged() -> None:
    builder = CompletionBuilder()
    builder.feed(
        [
            choice_chunk(0, {"reasoning": "Think"}),
            choice_chunk(0, {"reasoning": "ing."}),
            choice_chunk(
                0,
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{"},
                        },
                        {
                            "index": 1,
                            "id": "b",
                            "type": "function",
                            "function": {"name": "g", "arguments": ""},
                        },
                    ]
                },
            ),
            choice_chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            choice_chunk(0, {"tool_calls": [{"index": 1, "function": {"arguments": "[]"}}]}),
            orjson.dumps({"choices": [], "usage": {"total_tokens": 9}}),
        ]
    )
    completion = builder.completion()
    message = completion["choices"][0]["message"]
    assert message["reasoning"] == "Thinking."
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[]"}},
    ]
    assert completion["usage"] == {"total_tokens": 9}


def test_nulls_are_left_out_and_unknown_fields_pass() -> None:
    request = parse_completion_request(
        {
            "model": "m",
            "messages": [{"role": "developer", "content": "x"}],
            "stop": None,
            "transforms": ["middle-out"],
        }
    )
    payload = orjson.loads(orjson.dumps(request.upstream_payload()))
    assert "stop" not in payload and payload["transforms"] == ["middle-out"]
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    assert request.stream is False and request.wants_usage is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"temperature": True}, "temperature must be a number from 0 to 2"),
        ({"n": 0}, "n must be an integer from 1 to 128"),
        ({"stream": "yes"}, "stream must be a boolean"),
        ({"stop": ["a", 1]}, "stop must be a string or a list of strings"),
        ({"tools": [{"function": {}}]}, "tools[0] must be an object with a string type"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content must be"),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_completion_request(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
        )
    assert caught.value.message.startswith(message)
