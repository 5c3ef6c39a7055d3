"""The verifying load generator: one function per transport, each checks every byte of text.

Every stream returns a StreamResult with when it started, when each piece of text
arrived and whether the text was exactly the fake's; aborting and slow-reading variants
return when the client left and how much it read.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from bench.tokens import PROCESSING_EVENT, StreamSpec, expected_body

Target = Literal[
    "direct", "bare", "bare-ws", "http", "sse", "ws", "v1", "v1r", "http-redis", "ws-redis"
]
# chatrelay with REDIS_URL (`python -m bench --redis`): the same transport, chats in Redis.
REDIS_TARGETS: dict[Target, Target] = {"http-redis": "http", "ws-redis": "ws"}


def transport(target: Target) -> Target:
    """What the client speaks to a target: a Redis target's transport is its plain one's."""
    return REDIS_TARGETS.get(target, target)


MESSAGES = [{"role": "user", "content": "Benchmark me."}]


@dataclass(frozen=True, slots=True)
class Endpoints:
    fake: str
    bare: str
    chatrelay: str


@dataclass(slots=True)
class StreamResult:
    spec: StreamSpec
    started: float
    arrivals: list[float] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    done: bool = False
    error: str | None = None
    left_at: float | None = None

    def text(self) -> str:
        return "".join(self.parts)

    def check(self) -> None:
        """Set `error` unless the stream ended well with exactly the expected text."""
        if self.error is not None:
            return
        text, expected = self.text(), self.spec.text()
        if text != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(text, expected, strict=False)) if a != b),
                min(len(text), len(expected)),
            )
            self.error = f"text differs at char {at} (got {len(text)}, want {len(expected)})"
        elif not self.done:
            self.error = "stream ended without its end marker"


def chat_body(spec: StreamSpec, chat_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"chatSettings": {"model": spec.model()}, "messages": MESSAGES}
    if chat_id is not None:
        body["type"], body["id"] = "chat", chat_id
    return body


class EventSplitter:
    """Split a byte stream into SSE events (blank-line separated); yields each event's lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[list[bytes]]:
        events = (self.pending + data).split(b"\n\n")
        self.pending = events.pop()
        return [event.split(b"\n") for event in events]


def openrouter_parser(result: StreamResult) -> Callable[[bytes], bool]:
    """Direct to the fake: its body is pre-encoded, so compare bytes instead of parsing JSON,
    which keeps the limit's client cheap (the load core is shared with the fake)."""
    chunks: list[bytes] = []
    received = 0

    def feed(data: bytes) -> bool:
        nonlocal received
        if not data:
            body, expected = b"".join(chunks), expected_body(result.spec)
            result.done = body == expected
            # Equal bytes mean the expected text; unequal, the check below reports a mismatch.
            result.parts = [result.spec.text() if result.done else body.decode(errors="replace")]
            return False
        chunks.append(data)
        received += len(data)
        return received > len(PROCESSING_EVENT)

    return feed


def chatrelay_sse_parser(result: StreamResult) -> Callable[[bytes], bool]:
    splitter = EventSplitter()

    def feed(data: bytes) -> bool:
        got = False
        for lines in splitter.feed(data):
            # event:, then chatrelay's id: (the seq), then data:
            name = lines[0].removeprefix(b"event: ")
            payload = orjson.loads(lines[-1].removeprefix(b"data: "))
            if name == b"delta":
                result.parts.append(payload["content"])
                got = True
            elif name == b"done":
                result.done = True
            elif name == b"error":
                result.error = f"error event {payload}"
        return got

    return feed


def openai_parser(result: StreamResult) -> Callable[[bytes], bool]:
    """/v1: upstream's chunks as `data:` events, `data: [DONE]` at the end."""
    splitter = EventSplitter()

    def feed(data: bytes) -> bool:
        got = False
        for lines in splitter.feed(data):
            payload = lines[0].removeprefix(b"data: ")
            if payload == b"[DONE]":
                result.done = True
                continue
            chunk = orjson.loads(payload)
            if "error" in chunk:
                result.error = f"error event {chunk}"
                continue
            choices = chunk.get("choices")
            content = choices[0].get("delta", {}).get("content") if choices else None
            if content:
                result.parts.append(content)
                got = True
        return got

    return feed


def responses_parser(result: StreamResult) -> Callable[[bytes], bool]:
    """/v1/responses: OpenAI's typed events, `event:` then `data:`; the text is in
    `response.output_text.delta`, and `response.completed` ends it."""
    splitter = EventSplitter()

    def feed(data: bytes) -> bool:
        got = False
        for lines in splitter.feed(data):
            name = lines[0].removeprefix(b"event: ")
            if name == b"response.output_text.delta":
                result.parts.append(orjson.loads(lines[1].removeprefix(b"data: "))["delta"])
                got = True
            elif name == b"response.completed":
                result.done = True
            elif name in (b"response.failed", b"response.incomplete"):
                result.error = f"{name.decode()} event"
        return got

    return feed


def plain_parser(result: StreamResult) -> Callable[[bytes], bool]:
    chunks: list[bytes] = []

    def feed(data: bytes) -> bool:
        if data:
            chunks.append(data)
        else:
            # Decoded once at the end: a read may end inside a multi-byte character.
            result.parts = [b"".join(chunks).decode()]
        return bool(data)

    return feed


def http_request(
    target: Target, ends: Endpoints, spec: StreamSpec
) -> tuple[str, bytes, dict[str, str]]:
    target = transport(target)
    if target == "direct":
        payload = {
            "model": spec.model(),
            "messages": MESSAGES,
            "stream": True,
            "usage": {"include": True},
        }
        return f"{ends.fake}/api/v1/chat/completions", orjson.dumps(payload), {}
    if target == "v1":
        payload = {"model": spec.model(), "messages": MESSAGES, "stream": True}
        return f"{ends.chatrelay}/v1/chat/completions", orjson.dumps(payload), {}
    if target == "v1r":
        payload = {"model": spec.model(), "input": MESSAGES, "stream": True}
        return f"{ends.chatrelay}/v1/responses", orjson.dumps(payload), {}
    body = orjson.dumps(chat_body(spec))
    if target == "bare":
        return f"{ends.bare}/relay", body, {}
    accept = {"Accept": "text/event-stream"} if target == "sse" else {}
    return f"{ends.chatrelay}/api/chat/openrouter", body, accept


class Leave(Exception):
    """The client decided to go away mid-stream."""


async def http_stream(
    session: aiohttp.ClientSession,
    target: Target,
    ends: Endpoints,
    spec: StreamSpec,
    *,
    leave_after_arrivals: int | None = None,
    leave_after_s: float | None = None,
    read_rate: float | None = None,
    slow_for_s: float = 0.0,
) -> StreamResult:
    """POST one chat and read it all; `leave_after_*` leaves early; `read_rate` (bytes per
    second) reads slowly for `slow_for_s`, then the rest at full speed."""
    result = StreamResult(spec, time.monotonic())
    reading = asyncio.create_task(
        _read_http(session, target, ends, result, leave_after_arrivals, read_rate, slow_for_s)
    )
    _, pending = await asyncio.wait({reading}, timeout=leave_after_s)
    if pending:
        result.left_at = time.monotonic()
        reading.cancel()
    try:
        await reading
    except asyncio.CancelledError:
        if result.left_at is None:
            raise
    return result


async def _read_http(
    session: aiohttp.ClientSession,
    target: Target,
    ends: Endpoints,
    result: StreamResult,
    leave_after_arrivals: int | None,
    read_rate: float | None,
    slow_for_s: float,
) -> None:
    url, body, headers = http_request(target, ends, result.spec)
    parsers = {
        "direct": openrouter_parser,
        "sse": chatrelay_sse_parser,
        "v1": openai_parser,
        "v1r": responses_parser,
    }
    parser = parsers.get(transport(target), plain_parser)
    feed = parser(result)
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                result.error = f"status {response.status}: {(await response.text())[:200]}"
                return
            slow_until = result.started + slow_for_s
            while True:
                data = await (
                    response.content.read(1024) if read_rate else response.content.readany()
                )
                if not data:
                    break
                if feed(data):
                    result.arrivals.append(time.monotonic())
                if leave_after_arrivals and len(result.arrivals) >= leave_after_arrivals:
                    result.left_at = time.monotonic()
                    # Leaving the `async with` mid-body closes the connection, as a tab would.
                    raise Leave
                if read_rate and time.monotonic() < slow_until:
                    await asyncio.sleep(len(data) / read_rate)
            feed(b"")
            if transport(target) in ("bare", "http"):
                result.done = True  # the terminating chunk came, or aiohttp would have raised
    except Leave:
        return
    except (aiohttp.ClientError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.check()


async def ws_socket(
    session: aiohttp.ClientSession,
    url: str,
    specs: list[StreamSpec],
    *,
    leave_after_arrivals: int | None = None,
    leave_after_s: float | None = None,
    read_rate: float | None = None,
    slow_for_s: float = 0.0,
) -> list[StreamResult]:
    """Run `specs` as concurrent chats on one WebSocket; each result is checked on its own."""
    started = time.monotonic()
    results = {f"c{i}": StreamResult(spec, started) for i, spec in enumerate(specs)}
    try:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            for chat_id, result in results.items():
                await ws.send_str(orjson.dumps(chat_body(result.spec, chat_id)).decode())
            open_chats = set(results)
            arrivals = 0
            slow_until = started + slow_for_s
            deadline = None if leave_after_s is None else started + leave_after_s
            while open_chats:
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                try:
                    message = await ws.receive(timeout)
                except TimeoutError:
                    return await _leave(ws, results)
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise aiohttp.ClientError(f"socket ended: {message.type.name}")
                arrivals += _take_frame(results, open_chats, orjson.loads(message.data))
                if leave_after_arrivals and arrivals >= leave_after_arrivals:
                    return await _leave(ws, results)
                if read_rate and time.monotonic() < slow_until:
                    await asyncio.sleep(len(message.data) / read_rate)
    except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        for result in results.values():
            result.error = result.error or f"{type(exc).__name__}: {exc}"
    for result in results.values():
        result.check()
    return list(results.values())


def _take_frame(results: dict[str, StreamResult], open_chats: set[str], frame: Any) -> int:
    """Apply one server frame to its chat; 1 when it carried text."""
    result = results[frame["id"]]
    if frame["type"] == "delta":
        result.parts.append(frame["content"])
        result.arrivals.append(time.monotonic())
        return 1
    if frame["type"] == "done":
        result.done = True
    else:
        result.error = f"frame {frame}"
    open_chats.discard(frame["id"])
    return 0


async def _leave(
    ws: aiohttp.ClientWebSocketResponse, results: dict[str, StreamResult]
) -> list[StreamResult]:
    left_at = time.monotonic()
    for result in results.values():
        result.left_at = left_at
    # A closed socket no longer stops chatrelay's chats (they wait to be resumed): Stop is a
    # cancel frame, as the page sends it. The bare relay ignores it and stops at the close.
    for chat_id in results:
        await ws.send_str(orjson.dumps({"type": "cancel", "id": chat_id}).decode())
    await ws.close()
    return list(results.values())


async def idle_socket(
    session: aiohttp.ClientSession, url: str, hold: asyncio.Event, opened: Callable[[], None]
) -> str | None:
    """Open a WebSocket, call `opened`, keep it until `hold` is set; None when all went well."""
    try:
        async with session.ws_connect(url, heartbeat=None) as ws:
            opened()
            await hold.wait()
            await ws.close()
    except aiohttp.ClientError as exc:
        opened()
        return f"{type(exc).__name__}: {exc}"
    return None


def small_buffer_socket(addr: Any) -> socket.socket:
    """A client socket with a small receive buffer, so a slow reader's kernel holds little."""
    family, kind, proto, _, _ = addr
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    return sock


def new_session(*, slow: bool = False) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0, socket_factory=small_buffer_socket if slow else None, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60),
        read_bufsize=4096 if slow else 2**16,
    )
