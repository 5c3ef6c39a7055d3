"""`Accept` picks plain text or SSE as a media-type parse: case-insensitive, whole types
only, q-values respected; what states no preference gets plain text, as before."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import Client, chat_body

SSE = "text/event-stream"
PLAIN = "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/event-stream", SSE),
        ("TEXT/EVENT-STREAM", SSE),
        ("Text/Event-Stream; charset=utf-8", SSE),
        ("text/event-streamx", PLAIN),
        ("application/text/event-stream", PLAIN),
        ("text/event-stream;q=0, */*", PLAIN),
        ("text/plain;q=0.5, text/event-stream", SSE),
        ("text/event-stream;q=0.2, text/plain;q=0.9", PLAIN),
        ("application/json, text/event-stream;q=0.5", SSE),
        ("text/event-stream, */*;q=0.1", SSE),
        ("*/*", PLAIN),
        ("text/*", PLAIN),
        ("", PLAIN),
        ("not a media type", PLAIN),
    ],
)
async def test_accept_is_parsed_as_media_ranges(client: Client, accept: str, expected: str) -> None:
    headers = {"Accept": accept} if accept else {}
    async with client.post(
        "/api/chat/openrouter", data=orjson.dumps(chat_body()), headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == expected
        body = await response.text()
    assert "event: delta\n" in body if expected == SSE else body == "Hello"


async def test_accept_sent_as_two_headers_counts_as_one_list(client: Client) -> None:
    headers = [("Accept", "text/plain;q=0.1"), ("Accept", "text/event-stream")]
    async with client.post(
        "/api/chat/openrouter", data=orjson.dumps(chat_body()), headers=headers
    ) as response:
        assert response.headers["Content-Type"] == SSE
