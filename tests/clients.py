"""What tests need to talk to chatrelay as its clients do: chat frames, WebSocket reads, SSE.

One home for these so every test file reads the wire the same way (SPEC's frames and
events), and no test module imports from another.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from tests.conftest import Client, MakeClient, chat_body

WS = aiohttp.ClientWebSocketResponse
Frame = dict[str, Any]
# Long enough for a loaded CI machine; a test that waits this long has failed anyway.
RECEIVE_TIMEOUT_S = 5.0


def chat_frame(chat_id: str | None = None, text: str = "Hello", **settings: Any) -> str:
    """A WebSocket chat frame as the page sends it; without `chat_id` the frame has no id."""
    frame: Frame = {"type": "chat", **chat_body(text, **settings)}
    if chat_id is not None:
        frame["id"] = chat_id
    return orjson.dumps(frame).decode()


async def receive_text(ws: WS, timeout_s: float = RECEIVE_TIMEOUT_S) -> str:
    """The next message's text; anything but a text frame (a close, binary) fails the test."""
    message = await asyncio.wait_for(ws.receive(), timeout=timeout_s)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    text: str = message.data
    return text


async def receive(ws: WS, timeout_s: float = RECEIVE_TIMEOUT_S) -> Frame:
    """The next frame, parsed."""
    frame: Frame = orjson.loads(await receive_text(ws, timeout_s))
    return frame


async def until_end(
    ws: WS,
    chat_id: str,
    *,
    timeout_s: float = RECEIVE_TIMEOUT_S,
    seen: list[str] | None = None,
) -> list[Frame]:
    """Frames of one chat up to its terminal frame; frames of other chats (and `sync`
    frames) are dropped.

    `seen` collects the raw text of every frame read, dropped ones included.
    """
    frames = []
    while True:
        text = await receive_text(ws, timeout_s)
        if seen is not None:
            seen.append(text)
        frame: Frame = orjson.loads(text)
        # A signed-in socket also hears `sync` frames, which have no id.
        if frame.get("id") != chat_id:
            continue
        frames.append(frame)
        if frame["type"] in ("done", "error"):
            return frames


async def ws_chat(
    ws: WS,
    chat_id: str,
    text: str = "Hello",
    *,
    timeout_s: float = RECEIVE_TIMEOUT_S,
    seen: list[str] | None = None,
) -> list[Frame]:
    """Send one chat on an open socket and read its frames up to done or error."""
    await ws.send_str(chat_frame(chat_id, text))
    return await until_end(ws, chat_id, timeout_s=timeout_s, seen=seen)


def text_of(frames: list[Frame]) -> str:
    """The answer the user sees: the deltas' content, in order."""
    return "".join(f["content"] for f in frames if f["type"] == "delta")


def parse_sse(text: str) -> list[tuple[str, Frame]]:
    """A whole SSE body from the relay as (event name, data) pairs, in order; an event's
    `id:` line (its seq) comes as the data's `seq`."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = orjson.loads(fields["data"])
        if "id" in fields:
            data = {"seq": int(fields["id"]), **data}
        events.append((fields["event"], data))
    return events


def resume_frame(chat_id: str, after: int) -> str:
    """The page's frame to follow a chat again from the last seq it has."""
    return orjson.dumps({"type": "resume", "id": chat_id, "after": after}).decode()


async def two_processes(
    make_client: MakeClient, redis_url: str, **overrides: object
) -> tuple[Client, Client]:
    """Two chatrelay processes behind one router: one browser, so one session cookie."""
    first = await make_client(redis_url=redis_url, **overrides)
    second = await make_client(redis_url=redis_url, **overrides)
    await first.get("/api/profile")  # the page's first call makes the session's owner
    second.session.cookie_jar.update_cookies(
        first.session.cookie_jar.filter_cookies(first.make_url("/"))
    )
    return first, second
