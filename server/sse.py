"""OpenRouter's Server-Sent Events split into `data:` payloads, a network read at a time."""

from __future__ import annotations

from .errors import UpstreamError

# SPEC "Limits": one event over this ends the chat. A hostile upstream that never sends the
# blank line (or never ends a line) would otherwise grow one event without limit.
MAX_EVENT_BYTES = 1024 * 1024


class SSEDecoder:
    """Feed it each read; it returns the `data:` payloads of the events that read completed.

    Lines are split on bytes, so a UTF-8 character cut between reads is joined before it
    is decoded; comments such as `: OPENROUTER PROCESSING` and other fields are skipped;
    LF, CRLF and a lone CR all end a line, as the standard allows; several `data:` lines
    of one event are joined by `\\n`. Plain methods, not an async generator: one less
    generator step per read on the per-token path.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []
        self._data_bytes = 0
        # The last read ended in CR: an LF starting the next one is the rest of a CRLF.
        self._after_cr = False

    def feed(self, read: bytes) -> list[bytes]:
        if self._after_cr:
            self._after_cr = False
            read = read.removeprefix(b"\n")
        if b"\r" in read:
            self._after_cr = read.endswith(b"\r")
            read = read.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._pending + read).split(b"\n")
        self._pending = lines.pop()
        payloads: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    payloads.append(b"\n".join(data))
                    data.clear()
                    self._data_bytes = 0
            elif line.startswith(b"data:"):
                self._add_data(line)
        if len(self._pending) + self._data_bytes > MAX_EVENT_BYTES:
            raise _too_large()
        return payloads

    def close(self) -> list[bytes]:
        """At the end of the body: servers that omit the last blank line still meant it."""
        line = self._pending
        self._pending = b""
        if line.startswith(b"data:"):
            self._add_data(line)
        payloads = [b"\n".join(self._data)] if self._data else []
        self._data = []
        self._data_bytes = 0
        return payloads

    def _add_data(self, line: bytes) -> None:
        # What follows `data:`, less the one space the standard allows after the colon.
        value = line[6:] if line.startswith(b"data: ") else line[5:]
        self._data_bytes += len(value) + 1
        if self._data_bytes > MAX_EVENT_BYTES:
            raise _too_large()
        self._data.append(value)


def _too_large() -> UpstreamError:
    return UpstreamError("OpenRouter sent an event larger than 1 MiB")
