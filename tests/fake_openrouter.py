"""A real local OpenRouter stand-in: an aiohttp app that speaks its SSE, faults included.

Tests queue a `Reply` per chat; each is a list of steps written to the wire as they come:
bytes, a pause, a hang (a model thinking forever) or a drop (TCP closed mid-body).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

Step = bytes | float | Literal["hang", "drop"]

MODELS = [
    {"id": "openai/gpt-4o-mini", "name": "OpenAI: GPT-4o-mini", "context_length": 128000},
    {
        "id": "anthropic/claude-3.5-sonnet",
        "name": "Anthropic: Claude 3.5 Sonnet",
        "context_length": 200000,
    },
    {
        "id": "meta-llama/llama-3-8b-instruct:free",
        "name": "Meta: Llama 3 8B (free)",
        "context_length": 8192,
    },
]


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk the way OpenRouter shapes it."""
    delta: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning"] = reasoning
    body: dict[str, Any] = {
        "id": "gen-test",
        "provider": "OpenAI",
        "model": "openai/gpt-4o-mini",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
        body["choices"] = [{"index": 0, "delta": {}, "finish_reason": finish_reason}]
    if error is not None:
        body["error"] = error
        body["choices"][0]["finish_reason"] = "error"
    return body


def event(data: dict[str, Any] | str, *, crlf: bool = False) -> bytes:
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    text = f"data: {payload}\n\n"
    return (text.replace("\n", "\r\n") if crlf else text).encode()


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": 0.0001}
COMMENT = b": OPENROUTER PROCESSING\n\n"


@dataclass
class Reply:
    status: int = 200
    steps: list[Step] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def sse_reply(
    tokens: list[str],
    *,
    delay_s: float = 0.0,
    crlf: bool = False,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
) -> Reply:
    """A healthy stream: a comment, one event per token, the usage chunk, then [DONE]."""
    steps: list[Step] = [COMMENT.replace(b"\n", b"\r\n") if crlf else COMMENT]
    for token in tokens:
        if delay_s:
            steps.append(delay_s)
        steps.append(event(chunk(token), crlf=crlf))
    steps.append(event(chunk(finish_reason=finish_reason), crlf=crlf))
    steps.append(event(chunk(finish_reason=finish_reason, usage=usage or USAGE), crlf=crlf))
    steps.append(event("[DONE]", crlf=crlf))
    return Reply(steps=steps)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    return Reply(status=status, steps=[body], headers=headers or {})


def stream_error_reply(code: int | str, message: str, tokens: tuple[str, ...] = ()) -> Reply:
    """A 200 whose stream carries an error event (first and only, or after some tokens)."""
    steps: list[Step] = [COMMENT]
    steps += [event(chunk(token)) for token in tokens]
    steps.append(event(chunk("", error={"code": code, "message": message})))
    return Reply(steps=steps)


@dataclass
class Recorded:
    """What the fake saw of one chat request, and when its connection ended."""

    headers: dict[str, str]
    body: dict[str, Any]
    peer: tuple[str, int]
    arrived_at: float = field(default_factory=time.monotonic)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float | None = None
    disconnected: bool = False

    async def wait_dropped_by_relay(self, timeout_s: float = 1.0) -> None:
        """Wait until the relay closed this request's connection before the answer ended."""
        await asyncio.wait_for(self.ended.wait(), timeout=timeout_s)
        assert self.disconnected, "upstream ran to its end: the relay never closed it"


class FakeOpenRouter:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.models_calls = 0
        self.url = ""  # set once the server listens: http://127.0.0.1:PORT/api/v1
        self.started = asyncio.Event()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/chat/completions", self.chat_completions)
        app.router.add_get("/api/v1/models", self.models)
        return app

    async def models(self, request: web.Request) -> web.Response:
        self.models_calls += 1
        return web.json_response({"data": [{**m, "pricing": {"prompt": "0"}} for m in MODELS]})

    def default_reply(self, body: dict[str, Any]) -> Reply:
        """Echo the last user message word by word: handy for pages and parity checks."""
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else "parts"
        words = text.split(" ")
        return sse_reply([w if i == 0 else " " + w for i, w in enumerate(words)], delay_s=0.01)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        recorded = Recorded(headers=dict(request.headers), body=body, peer=peer)
        self.requests.append(recorded)
        self.started.set()
        reply = self.replies.popleft() if self.replies else self.default_reply(body)
        try:
            return await self.play(request, reply)
        except asyncio.CancelledError:
            recorded.disconnected = True
            raise
        finally:
            recorded.ended_at = time.monotonic()
            recorded.ended.set()

    async def play(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.status != 200:
            return web.Response(
                status=reply.status, body=b"".join(s for s in reply.steps if isinstance(s, bytes)),
                headers={"Content-Type": "application/json", **reply.headers},
            )  # fmt: skip
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        for step in reply.steps:
            if isinstance(step, bytes):
                await response.write(step)
            elif isinstance(step, float):
                await asyncio.sleep(step)
            elif step == "hang":
                await asyncio.sleep(3600)
            elif step == "drop":
                assert request.transport is not None
                request.transport.abort()
                return response
        await response.write_eof()
        return response
