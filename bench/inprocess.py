"""chatrelay's own per-token work and its chat log's memory, in one process (issue 11).

    .venv/bin/python -m bench.inprocess [--chats 100] [--tokens 300] [--rounds 5]

No sockets, so a busy machine moves these far less than `python -m bench`:
- Python work per token: upstream's bytes fed one SSE event per read into a real aiohttp
  `StreamReader`, read (a) by the bare relay's loop (readline iteration, stdlib json, an
  async generator, as bench/bare_relay.py) and (b) through chatrelay's `Answer`,
  `stream_chat`, `Run`, the memory store and a live listener; both write into a list.
  Process CPU per token, min over rounds, on uvloop.
- The same on the WebSocket: (a) the bare relay's `ws_chat` loop (`send_str` of stdlib
  json) and (b) chatrelay's socket listener (`ChatSocket.relay` with its live frames), each
  writing through a real aiohttp `WebSocketResponse` and its frame writer into a transport
  that keeps what it is given (no kernel); every frame is parsed back and checked.
- The memory log: 500 chats of `--tokens` one-token reads (fresh strings, as upstream's
  are), tracemalloc's growth per chat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import aiohttp
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from bench.loops import run_fast
from bench.tokens import tail_events, token, token_events
from server.config import Settings, settings_key
from server.metrics import ChatObserver
from server.registry import Registry, registry_key
from server.relay.openrouter import Batches, stream_chat
from server.relay.redaction import KeyRedactor
from server.relay.runs import Run
from server.relay.upstream_answer import Answer, SilenceWatchdog
from server.store.events import Delta, LogEvent, chat_store_key
from server.store.memory import MemoryStore
from server.users.answers import AnswerWriter
from server.web.http_route import text_bytes
from server.web.profile import Profile
from server.web.ws_route import ChatSocket


class Transport:
    """What a StreamReader asks of its transport: nothing, here."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool:
        return False


def fed_reader(tokens: int) -> tuple[StreamReader, asyncio.Task[None]]:
    """A StreamReader and the task feeding it one SSE event per loop turn, then the end."""
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.transport = cast(asyncio.Transport, Transport())
    reader = StreamReader(protocol, 2**16, loop=loop)

    async def feed() -> None:
        events = token_events(1)
        for n in range(tokens):
            reader.feed_data(events[n % len(events)])
            await asyncio.sleep(0)
        reader.feed_data(tail_events(tokens))
        reader.feed_eof()

    return reader, asyncio.ensure_future(feed())


async def bare_deltas(content: StreamReader) -> AsyncIterator[str]:
    """bench/bare_relay.py's parser: readline iteration and stdlib json, per line."""
    async for line in content:
        if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
            choices = json.loads(line[6:])["choices"]
            if choices and choices[0]["delta"].get("content"):
                yield choices[0]["delta"]["content"]


async def bare_chat(tokens: int, sink: list[bytes]) -> None:
    content, feeding = fed_reader(tokens)

    async for text in bare_deltas(content):
        sink.append(text.encode())
    await feeding


class FedResponse:
    """The parts of a 200 answer that `Answer` reads."""

    content_type = "text/event-stream"
    headers: dict[str, str] = {}  # noqa: RUF012 - read only

    def __init__(self, content: StreamReader) -> None:
        self.content = content


class FedUpstream:
    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def open_chat(
        self, api_key: str, payload: dict[str, Any]
    ) -> AbstractAsyncContextManager[Batches]:
        return self._open(api_key)

    @asynccontextmanager
    async def _open(self, api_key: str) -> AsyncIterator[Batches]:
        content, feeding = fed_reader(self.tokens)
        watchdog = SilenceWatchdog(60, "silent")
        response = cast(aiohttp.ClientResponse, FedResponse(content))
        answer = Answer(
            response, watchdog, KeyRedactor(api_key), max_body_bytes=2**20, silence_message="-"
        )
        yield answer.batches()
        await feeding
        watchdog.close()


class FedRequest:
    model = "bench/model"

    def upstream_payload(self) -> dict[str, Any]:
        return {}


class NoLease:
    async def release(self) -> None: ...


class ListLive:
    """A live listener whose client keeps up: each read's text goes into a list."""

    def __init__(self, sink: list[bytes]) -> None:
        self.sink = sink

    def ready(self) -> bool:
        return True

    async def write(self, first_seq: int, events: Sequence[LogEvent]) -> None:
        if data := text_bytes(first_seq, events):
            self.sink.append(data)


class NoDatabase:
    """The history's answers without a database: what a chat that writes history adds per
    token is the AnswerWriter's `seen` (issue 23); its one write at the end is not timed."""

    async def write_end(self, *args: object) -> None: ...


async def chatrelay_chat(
    tokens: int,
    sink: list[bytes],
    n: int,
    store: MemoryStore,
    registry: Registry,
    history: bool = False,
) -> None:
    key = f"bench:{n}"
    observer = ChatObserver(str(n), "http", FedRequest.model, None)
    hooks = [AnswerWriter(cast(Any, NoDatabase()), "account", "c", f"m{n}")] if history else []
    run = Run(registry, observer, cast(Any, NoLease()), 600, hooks)
    chat_log = await store.create(key, run)
    run.start(chat_log, stream_chat(FedRequest(), "sk-bench", FedUpstream(tokens), observer))
    async for first_seq, events in store.read(key, 0, ListLive(sink)):
        if data := text_bytes(first_seq, events):
            sink.append(data)
    await run.wound_down()


class SinkTransport(asyncio.Transport):
    """A socket whose client keeps up: it keeps every write, never buffers, never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def texts(self) -> str:
        """The delta text of every server frame written (unmasked, one message each)."""
        data, at, out = b"".join(self.writes), 0, []
        data = data[data.index(b"\r\n\r\n") + 4 :] if data.startswith(b"HTTP/") else data
        while at < len(data):
            size, at = data[at + 1] & 0x7F, at + 2
            if size == 126:
                size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
            elif size == 127:
                size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
            frame = json.loads(data[at : at + size])
            at += size
            if frame["type"] == "delta":
                out.append(frame["content"])
        return "".join(out)


class SinkProtocol(BaseProtocol):
    """What a request and a prepared WebSocketResponse ask of the server's protocol."""

    ssl_context = None
    peername = None
    sockname = None

    def set_parser(self, parser: object, data_received_cb: object = None) -> None: ...

    def keep_alive(self, val: bool) -> None: ...


Socket = tuple[web.Request, web.WebSocketResponse, SinkTransport]
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


async def sink_socket(app: web.Application | None = None) -> Socket:
    """A real, prepared WebSocketResponse whose frames go into a SinkTransport."""
    transport = SinkTransport()
    protocol = SinkProtocol(asyncio.get_running_loop())
    protocol.transport = transport
    request = make_mocked_request(
        "GET", "/ws", WS_HEADERS, protocol=protocol, transport=transport, app=app
    )
    ws = web.WebSocketResponse(compress=False, writer_limit=64 * 1024)
    await ws.prepare(request)
    return request, ws, transport


async def bare_ws_chat(tokens: int, socket: Socket) -> SinkTransport:
    """bench/bare_relay.py's ws_chat on the fed reader: one send_str of json.dumps per token."""
    content, feeding = fed_reader(tokens)
    _, ws, transport = socket

    async for text in bare_deltas(content):
        await ws.send_str(json.dumps({"type": "delta", "id": "c1", "content": text}))
    await ws.send_str(json.dumps({"type": "done", "id": "c1", "finish_reason": "stop"}))
    await feeding
    return transport


def socket_app(store: MemoryStore, registry: Registry) -> web.Application:
    app = web.Application()
    app[settings_key] = Settings.from_env({})
    app[chat_store_key] = store
    app[registry_key] = registry
    return app


async def chatrelay_ws_chat(
    tokens: int, n: int, store: MemoryStore, registry: Registry, sink: Socket
) -> SinkTransport:
    """A chat started as the socket's start_chat does, followed by the socket's listener."""
    key = f"bench:{n}"
    request, ws, transport = sink
    socket = ChatSocket(request, ws, Profile(None, None), "bench")
    observer = ChatObserver(str(n), "ws", FedRequest.model, None)
    run = Run(registry, observer, cast(Any, NoLease()), 600)
    chat_log = await store.create(key, run)
    run.start(chat_log, stream_chat(FedRequest(), "sk-bench", FedUpstream(tokens), observer))
    socket.follow("c1", key, 0)
    await socket.following["c1"]
    await run.wound_down()
    return transport


async def ws_per_token(chats: int, tokens: int, rounds: int) -> dict[str, float]:
    """CPU µs per token of each WebSocket writer, min over rounds; every frame checked."""
    best = {"bare": float("inf"), "chatrelay": float("inf")}
    expected = "".join(token(n) for n in range(tokens))
    for _ in range(rounds):
        for name in ("bare", "chatrelay"):
            store, registry = MemoryStore(300, 600), Registry()
            app = socket_app(store, registry)
            # Made first (aiohttp's mocked request is slow to make): a handshake is not per token.
            sockets = [await sink_socket(app) for _ in range(chats)]
            started = time.process_time()
            if name == "bare":
                sinks = await asyncio.gather(*(bare_ws_chat(tokens, s) for s in sockets))
            else:
                sinks = await asyncio.gather(
                    *(
                        chatrelay_ws_chat(tokens, n, store, registry, socket)
                        for n, socket in enumerate(sockets)
                    )
                )
            spent = time.process_time() - started
            best[name] = min(best[name], spent / (chats * tokens) * 1e6)
            if any(sink.texts() != expected for sink in sinks):
                raise RuntimeError(f"{name} ws: a chat's text differs from upstream's")
    return best


async def per_token(chats: int, tokens: int, rounds: int) -> dict[str, float]:
    """CPU µs per token of each reader, min over rounds; every chat's text checked."""
    best = {"bare": float("inf"), "chatrelay": float("inf"), "history": float("inf")}
    expected = "".join(token(n) for n in range(tokens)).encode()
    for _ in range(rounds):
        for name in ("bare", "chatrelay", "history"):
            sinks: list[list[bytes]] = [[] for _ in range(chats)]
            store, registry = MemoryStore(300, 600), Registry()
            started = time.process_time()
            if name == "bare":
                await asyncio.gather(*(bare_chat(tokens, sink) for sink in sinks))
            else:
                await asyncio.gather(
                    *(
                        chatrelay_chat(tokens, sink, n, store, registry, name == "history")
                        for n, sink in enumerate(sinks)
                    )
                )
            spent = time.process_time() - started
            best[name] = min(best[name], spent / (chats * tokens) * 1e6)
            if any(b"".join(sink) != expected for sink in sinks):
                raise RuntimeError(f"{name}: a chat's text differs from upstream's")
    return best


class NoRun:
    def cancel(self) -> None: ...

    def abandon(self) -> None: ...


async def log_memory(tokens: int, chats: int = 500) -> float:
    store = MemoryStore(300, 600)
    writers = [await store.create(f"bench:{n}", NoRun()) for n in range(chats)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(tokens):
        for writer in writers:
            await writer.append([Delta((token(n) + "\0")[:-1])])
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / chats / 1024


async def measure(args: argparse.Namespace) -> None:
    logging.disable(logging.CRITICAL)
    best = await per_token(args.chats, args.tokens, args.rounds)
    print(
        f"Python work per token ({args.chats} chats x {args.tokens}, min of {args.rounds}): "
        f"bare relay {best['bare']:.2f} µs, chatrelay {best['chatrelay']:.2f} µs "
        f"({best['chatrelay'] / best['bare']:.2f}x); writing history "
        f"{best['history']:.2f} µs ({best['history'] / best['chatrelay']:.3f}x chatrelay)"
    )
    ws = await ws_per_token(args.chats, args.tokens, args.rounds)
    print(
        f"WebSocket work per token (same): bare relay {ws['bare']:.2f} µs, "
        f"chatrelay {ws['chatrelay']:.2f} µs ({ws['chatrelay'] / ws['bare']:.2f}x)"
    )
    kib = await log_memory(args.tokens)
    print(f"memory log: {kib:.1f} KiB per chat of {args.tokens} one-token reads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    run_fast(measure(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
