"""OpenRouter's Server-Sent Events read into batches of `data:` payloads, one per network read."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from .errors import UpstreamError

# One SSE line may hold a large tool call; past this it is a broken upstream, not a reply.
MAX_LINE_BYTES = 8 * 1024 * 1024

PayloadBatches = AsyncIterator[list[bytes]]


async def sse_payload_batches(reads: AsyncIterable[bytes]) -> PayloadBatches:
    """Yield, per network read, the `data:` payloads of the events it completed.

    Lines are split on bytes, so a UTF-8 character cut between reads is joined before it
    is decoded; comments such as `: OPENROUTER PROCESSING` and other fields are skipped;
    CRLF and LF both end a line; several `data:` lines of one event are joined by `\\n`.
    """
    pending = b""
    data: list[bytes] = []
    async for read in reads:
        lines = (pending + read).split(b"\n")
        pending = lines.pop()
        if len(pending) > MAX_LINE_BYTES:
            raise UpstreamError("OpenRouter sent a line longer than 8 MiB")
        batch: list[bytes] = []
        for raw_line in lines:
            line = raw_line.removesuffix(b"\r")
            if not line:
                if data:
                    batch.append(b"\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        if batch:
            yield batch
    # Servers that end the body without the blank line after their last event still meant it.
    line = pending.removesuffix(b"\r")
    if line.startswith(b"data:"):
        value = line[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield [b"\n".join(data)]
