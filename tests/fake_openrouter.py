"""A real local OpenRouter stand-in: an aiohttp app that speaks its SSE, faults included.

Tests queue a `Reply` per chat; each is a list of steps written to the wire as they come:
bytes, a pause, a hang (a model thinking forever) or a drop (TCP closed mid-body).

Besides OpenRouter's own shape it speaks the other OpenAI-compatible servers' wire formats
(README, "Upstream servers"): `line_end="\r"` or CRLF lines, a surrogate pair cut across
two chunks (`split_surrogate_reply`), `reasoning_content` deltas, usage only when
`stream_options.include_usage` asks (`openai_style_reply`), OpenAI's string error codes,
one JSON `chat.completion` for a server that ignores `stream: true` (`completion_reply`),
and a gzip-compressed body (`gzip_reply`).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

# An asyncio.Event step holds the stream until the test sets it: a pause that ends when the
# test says so, not after a time a loaded machine may overrun.
Step = bytes | float | asyncio.Event | Literal["hang", "drop"]

MODELS = [
    {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        # OpenRouter's: the longest answer the model's top provider gives.
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    },
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
# Upstream's prices per token, as OpenRouter lists them (strings); a model without any.
PRICING: dict[str, dict[str, str] | None] = {
    "openai/gpt-4o-mini": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0"},
    "anthropic/claude-3.5-sonnet": {"prompt": "0.000003", "completion": "0.000015"},
    "meta-llama/llama-3-8b-instruct:free": None,
}


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    reasoning_content: str | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk the way OpenRouter shapes it (`reasoning_content`: the
    way DeepSeek, vLLM and LiteLLM name the reasoning)."""
    delta: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning"] = reasoning
    if reasoning_content is not None:
        delta["reasoning_content"] = reasoning_content
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


def event(data: dict[str, Any] | str, *, crlf: bool = False, line_end: str = "\n") -> bytes:
    """One SSE event; `line_end` may be CRLF (like crlf=True) or a lone CR."""
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    end = "\r\n" if crlf else line_end
    return f"data: {payload}{end}{end}".encode()


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": 0.0001}
COMMENT = b": OPENROUTER PROCESSING\n\n"


@dataclass
class Reply:
    status: int = 200
    steps: list[Step] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # Written before the last step only when the request asked with
    # `stream_options.include_usage`, as OpenAI, vLLM and LiteLLM do.
    usage_steps_if_asked: list[Step] = field(default_factory=list)


def sse_reply(
    tokens: list[str],
    *,
    delay_s: float = 0.0,
    crlf: bool = False,
    line_end: str = "\n",
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
) -> Reply:
    """A healthy stream: a comment, one event per token, the usage chunk, then [DONE]."""
    end = "\r\n" if crlf else line_end
    steps: list[Step] = [COMMENT.replace(b"\n", end.encode())]
    for token in tokens:
        if delay_s:
            steps.append(delay_s)
        steps.append(event(chunk(token), line_end=end))
    steps.append(event(chunk(finish_reason=finish_reason), line_end=end))
    steps.append(event(chunk(finish_reason=finish_reason, usage=usage or USAGE), line_end=end))
    steps.append(event("[DONE]", line_end=end))
    return Reply(steps=steps)


def openai_style_reply(tokens: list[str], usage: dict[str, Any] | None = None) -> Reply:
    """vLLM, LiteLLM, llmock: `data:` without a space, no comments, and usage only when
    asked with `stream_options.include_usage`, in a last chunk whose `choices` is empty."""

    def bare(data: dict[str, Any] | str) -> bytes:
        payload = data if isinstance(data, str) else orjson.dumps(data).decode()
        return f"data:{payload}\n\n".encode()

    steps: list[Step] = [bare(chunk(token)) for token in tokens]
    steps.append(bare(chunk(finish_reason="stop")))
    steps.append(bare("[DONE]"))
    last_chunk = {**chunk(), "choices": [], "usage": usage or USAGE}
    return Reply(steps=steps, usage_steps_if_asked=[bare(last_chunk)])


def tool_call_reply() -> Reply:
    """A model calling get_weather, its arguments streamed in pieces, as OpenAI sends it."""
    calls = [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": ' "Paris"}'}},
    ]
    steps: list[Any] = []
    for call in calls:
        body = chunk()
        body["choices"][0]["delta"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        steps.append(event(body))
    steps.append(event(chunk(finish_reason="tool_calls")))
    steps.append(event(chunk(finish_reason="tool_calls", usage=USAGE)))
    steps.append(event("[DONE]"))
    return Reply(steps=steps)


def tool_calls_reply(*calls: tuple[str, str, str], text: str = "") -> Reply:
    """A model calling tools in parallel, each (id, name, arguments) with its arguments in two
    pieces, after some text when given."""
    steps: list[Step] = [event(chunk(text))] if text else []
    for index, (call_id, name, arguments) in enumerate(calls):
        half = len(arguments) // 2
        pieces = [
            {"index": index, "id": call_id, "type": "function", "function": {"name": name}},
            {"index": index, "function": {"arguments": arguments[:half]}},
            {"index": index, "function": {"arguments": arguments[half:]}},
        ]
        for piece in pieces:
            body = chunk()
            body["choices"][0]["delta"] = {"content": None, "tool_calls": [piece]}
            steps.append(event(body))
    steps.append(event(chunk(finish_reason="tool_calls", usage=USAGE)))
    steps.append(event("[DONE]"))
    return Reply(steps=steps)


def split_surrogate_reply(before: str, pair: str, after: str, *, cut: bool = True) -> Reply:
    """A JavaScript server's stream: the UTF-16 halves of `pair` (one astral character) in
    two chunks, each a lone `\\uXXXX` escape; `cut=False` sends only the first half."""
    high, low = (f"\\u{unit:04x}" for unit in _utf16_units(pair))
    template = orjson.dumps(chunk("@@")).decode()
    halves = [template.replace("@@", high)] + ([template.replace("@@", low)] if cut else [])
    steps: list[Step] = [event(chunk(before))]
    steps += [event(half) for half in halves]
    steps += [event(chunk(after)), event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]
    return Reply(steps=steps)


def _utf16_units(character: str) -> tuple[int, int]:
    units = character.encode("utf-16-be")
    return int.from_bytes(units[:2], "big"), int.from_bytes(units[2:4], "big")


def completion_reply(
    content: str, *, reasoning: str | None = None, usage: dict[str, Any] | None = None
) -> Reply:
    """A server that ignores `stream: true`: one JSON `chat.completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage or USAGE,
    }
    return Reply(steps=[orjson.dumps(body)], headers={"Content-Type": "application/json"})


def gzip_reply(body: bytes) -> Reply:
    """A server that compresses its stream although asked for `identity`."""
    return Reply(steps=[gzip.compress(body)], headers={"Content-Encoding": "gzip"})


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
        # Set to answer GET /models with that status and an error body (an upstream that
        # serves no model list, or is failing).
        self.models_status: int | None = None
        self.url = ""  # set once the server listens: http://127.0.0.1:PORT/api/v1
        self.started = asyncio.Event()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def app(self) -> web.Application:
        # Real upstreams take photos inlined as data URLs: far more than aiohttp's 1 MiB.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/v1/chat/completions", self.chat_completions)
        app.router.add_get("/api/v1/models", self.models)
        return app

    async def models(self, request: web.Request) -> web.Response:
        self.models_calls += 1
        if self.models_status is not None:
            error = {"error": {"message": "No model list here", "code": self.models_status}}
            return web.json_response(error, status=self.models_status)
        models = [{**m, "pricing": PRICING[str(m["id"])], "created": 1_700_000_000} for m in MODELS]
        return web.json_response({"data": models})

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
            return await self.play(request, reply, body)
        except asyncio.CancelledError:
            recorded.disconnected = True
            raise
        finally:
            recorded.ended_at = time.monotonic()
            recorded.ended.set()

    async def play(
        self, request: web.Request, reply: Reply, recorded_body: object = None
    ) -> web.StreamResponse:
        if reply.status != 200:
            return web.Response(
                status=reply.status,
                body=b"".join(s for s in reply.steps if isinstance(s, bytes)),
                headers={"Content-Type": "application/json", **reply.headers},
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        steps = reply.steps
        options = recorded_body.get("stream_options") if isinstance(recorded_body, dict) else None
        if (
            reply.usage_steps_if_asked
            and isinstance(options, dict)
            and options.get("include_usage")
        ):
            steps = [*steps[:-1], *reply.usage_steps_if_asked, *steps[-1:]]
        for step in steps:
            if isinstance(step, bytes):
                await response.write(step)
            elif isinstance(step, float):
                await asyncio.sleep(step)
            elif isinstance(step, asyncio.Event):
                await step.wait()
            elif step == "hang":
                await asyncio.sleep(3600)
            elif step == "drop":
                assert request.transport is not None
                request.transport.abort()
                return response
        await response.write_eof()
        return response
