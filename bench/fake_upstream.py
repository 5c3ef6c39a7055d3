"""A fast fake OpenRouter: raw asyncio HTTP/1.1, pre-encoded SSE, pacing chosen per request.

It records, per stream id, when the connection of an unfinished stream was closed (for
client-leaves -> upstream-closed latency) and, for tracked streams, how many tokens the
kernel accepted. `GET /_bench/closed` and `GET /_bench/sent` hand them out and forget them.
Run alone: `python -m bench.fake_upstream --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import cast

import orjson

from bench.loops import run_fast
from bench.tokens import PROCESSING_CHUNK, StreamSpec, tail_chunks, token_chunks

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)
MAX_HEAD_BYTES = 64 * 1024
# The one model /models prices, so a signed-in chat on it is metered (Budgets); its stream's
# parameters come in the last message, since its name is fixed.
PRICED_MODEL = "bench-priced"
MODELS = orjson.dumps(
    {
        "data": [
            {
                "id": PRICED_MODEL,
                "pricing": {"prompt": "0.000001", "completion": "0.000002"},
                "context_length": 1_000_000,
                "top_provider": {"max_completion_tokens": 1_000_000},
            }
        ]
    }
)


class Records:
    """What the driver asks the fake after a scenario; monotonic clock, shared by all processes."""

    def __init__(self) -> None:
        self.closed: dict[str, float] = {}
        self.sent: dict[str, int] = {}


class FakeProtocol(asyncio.Protocol):
    def __init__(self, records: Records) -> None:
        self.records = records
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.stream: asyncio.Task[None] | None = None
        self.stream_sid: str | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they quack alike.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream_sid is not None:
            self.records.closed[self.stream_sid] = time.monotonic()
        if self.stream is not None:
            self.stream.cancel()

    # Backpressure: a relay that stops reading must make us stop writing, as a real server would.
    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, path, _ = head[0].split(" ", 2)
            self.handle(method, path, body)
        if len(self.buffer) > MAX_HEAD_BYTES and self.transport is not None:
            self.transport.close()

    def handle(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.endswith("/chat/completions"):
            request = orjson.loads(body)
            named = request["model"]
            if named == PRICED_MODEL:
                named = request["messages"][-1]["content"]
            spec = StreamSpec.from_model(named)
            self.stream_sid = spec.sid
            self.stream = asyncio.ensure_future(self.write_stream(spec))
        elif method == "GET" and path.endswith("/models"):
            # Only PRICED_MODEL has a price: a chat on any `bench/…` model is not metered.
            self.respond(MODELS)
        elif path == "/_bench/closed":
            self.respond(orjson.dumps(self.records.closed))
            self.records.closed = {}
        elif path == "/_bench/sent":
            self.respond(orjson.dumps(self.records.sent))
            self.records.sent = {}
        else:
            self.respond(b'{"error": {"message": "not found", "code": 404}}', b"404 Not Found")

    def respond(self, body: bytes, status: bytes = b"200 OK") -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (status, len(body), body)
        )

    async def write_stream(self, spec: StreamSpec) -> None:
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        chunks = token_chunks(spec.size)
        count = len(chunks)
        gap_s = spec.gap_ms / 1000
        transport.write(STREAM_HEAD + PROCESSING_CHUNK)
        if spec.ttft_ms:
            await asyncio.sleep(spec.ttft_ms / 1000)
        started = loop.time()
        sent = self.records.sent if spec.track else None
        for index in range(spec.n):
            if self.writable is not None:
                await self.writable
            transport.write(chunks[index % count])
            if sent is not None:
                sent[spec.sid] = index + 1
            if gap_s:
                # Absolute schedule: a late wake-up does not push every later token back.
                await asyncio.sleep(started + (index + 1) * gap_s - loop.time())
            else:
                # Unpaced still means one event per write, like a fast model, not one blob.
                await asyncio.sleep(0)
        transport.write(tail_chunks(spec.n))
        self.stream_sid = None
        self.stream = None


async def serve(host: str, port: int) -> None:
    records = Records()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeProtocol(records), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run_fast(serve(args.host, args.port))


if __name__ == "__main__":
    main()
