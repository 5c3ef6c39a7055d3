"""A hostile upstream echoing the key in ways a byte search misses: written with `\\u`
escapes, cut across two pieces of text, or in `finish_reason` and `usage`. No transport, no
replay of the chat's log and no /v1 chunk may carry it (issue 21.7)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.clients import parse_sse, text_of, until_end
from tests.conftest import SERVER_KEY, Client, chat_body
from tests.fake_openrouter import USAGE, FakeOpenRouter, Reply, chunk, event

CHAT = "/api/chat/openrouter"
V1 = "/v1/chat/completions"
V1_BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})


def escaped(text: str) -> str:
    """`text` as JSON string content, every character a `\\u` escape."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def raw_event(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def escaped_key_reply() -> Reply:
    """The key in the text, spelled entirely in escapes, between words."""
    body = (
        orjson.dumps(chunk("KEYHERE"))
        .decode()
        .replace("KEYHERE", f"my key is {escaped(SERVER_KEY)}!")
    )
    end = orjson.dumps(chunk(finish_reason="stop", usage=USAGE))
    return Reply(steps=[raw_event(body), event(orjson.loads(end)), event("[DONE]")])


def split_key_reply() -> Reply:
    """The key cut across two deltas (and two reads), each half harmless alone."""
    half = len(SERVER_KEY) // 2
    return Reply(
        steps=[
            event(chunk(f"key: {SERVER_KEY[:half]}")),
            event(chunk(f"{SERVER_KEY[half:]} done")),
            event(chunk(finish_reason="stop", usage=USAGE)),
            event("[DONE]"),
        ]
    )


def echoing_fields_reply() -> Reply:
    """The key in escapes in finish_reason and in a usage field."""
    end = orjson.dumps(chunk("ok", finish_reason="FR", usage={**USAGE, "note": "NOTE"})).decode()
    end = end.replace('"FR"', f'"{escaped(SERVER_KEY)}"').replace(
        '"NOTE"', f'"{escaped(SERVER_KEY)}"'
    )
    return Reply(steps=[raw_event(end), event("[DONE]")])


def decoded_strings(value: Any) -> str:
    """Every string of a JSON value, joined: what a client sees once it parses it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(decoded_strings(v) for v in [*value.keys(), *value.values()])
    if isinstance(value, list):
        return " ".join(decoded_strings(v) for v in value)
    return str(value)


def v1_seen(body: bytes) -> str:
    """A /v1 answer as its client reads it: each data line (or the one JSON) decoded."""
    if body.startswith(b"{"):
        return decoded_strings(orjson.loads(body))
    lines = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    chunks = [orjson.loads(line) for line in lines if line != b"[DONE]"]
    # What the SDKs join: each delta's text.
    joined = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    return joined + " " + " ".join(decoded_strings(c) for c in chunks)


async def every_transport(client: Client, fake: FakeOpenRouter, make: Any) -> list[str]:
    """What each transport shows of one scripted answer, the chat log's replay included."""
    seen: list[str] = []
    fake.script(make())
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        seen.append(await response.text())
    fake.script(make())
    body = {**chat_body(), "resumable": True}
    headers = {"Accept": "text/event-stream"}
    async with client.post(CHAT, data=orjson.dumps(body), headers=headers) as response:
        chat_id = response.headers["X-Chat-Id"]
        seen.append(await response.text())
    async with client.get(f"/api/chats/{chat_id}/events?after=0") as replay:
        seen.append(" ".join(decoded_strings(d) for _, d in parse_sse(await replay.text())))
    fake.script(make())
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(orjson.dumps({"id": "w", **chat_body()}).decode())
        frames = await until_end(ws, "w")
        seen.append(decoded_strings(frames) + text_of(frames))
    for stream in (True, False):
        fake.script(make())
        v1 = orjson.dumps({**orjson.loads(V1_BODY), "stream": stream})
        async with client.post(V1, data=v1) as response:
            seen.append(v1_seen(await response.read()))
    return seen


@pytest.mark.parametrize("make", [escaped_key_reply, split_key_reply, echoing_fields_reply])
async def test_no_transport_shows_a_key_upstream_echoed_in_disguise(
    client: Client, fake_openrouter: FakeOpenRouter, make: Any
) -> None:
    seen = await every_transport(client, fake_openrouter, make)
    assert len(seen) == 6
    for shown in seen:
        assert SERVER_KEY not in shown, shown[:300]
    # The text around the key still arrives.
    if make is not echoing_fields_reply:
        assert all("[redacted]" in shown for shown in seen), seen
