"""OpenRouter's Server-Sent Events split into `data:` payloads, a network read at a time."""

from __future__ import annotations

from .errors import UpstreamError

# One SSE line may hold a large tool call; past this it is a broken upstream, not a reply.
MAX_LINE_BYTES = 8 * 1024 * 1024


class SSEDecoder:
    """Feed it each read; it returns the `data:` payloads of the events that read completed.

    Lines are split on bytes, so a UTF-8 character cut between reads is joined before it
    is decoded; comments such as `: OPENROUTER PROCESSING` and other fields are skipped;
    CRLF and LF both end a line; several `data:` lines of one event are joined by `\\n`.
    Plain methods, not an async generator: one less generator step per read on the
    per-token path.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []

    def feed(self, read: bytes) -> list[bytes]:
        lines = (self._pending + read).split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE_BYTES:
            raise UpstreamError("OpenRouter sent a line longer than 8 MiB")
        payloads: list[bytes] = []
        data = self._data
        for raw_line in lines:
            line = raw_line.removesuffix(b"\r")
            if not line:
                if data:
                    payloads.append(b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                data.append(_field_value(line))
        return payloads

    def close(self) -> list[bytes]:
        """At the end of the body: servers that omit the last blank line still meant it."""
        line = self._pending.removesuffix(b"\r")
        self._pending = b""
        if line.startswith(b"data:"):
            self._data.append(_field_value(line))
        payloads = [b"\n".join(self._data)] if self._data else []
        self._data = []
        return payloads


def _field_value(line: bytes) -> bytes:
    """What follows `data:`, less the one space the standard allows after the colon."""
    value = line[5:]
    return value[1:] if value.startswith(b" ") else value
