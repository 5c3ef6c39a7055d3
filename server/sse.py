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
        elif (
            # The per-token path: a read that is one whole `data: ...` event, nothing held.
            read.startswith(b"data: ")
            and read.endswith(b"\n\n")
            and read.count(b"\n") == 2
            and not self._pending
            and not self._data
            and len(read) <= MAX_EVENT_BYTES
        ):
            return [read[6:-2]]
        lines = (self._pending + read).split(b"\n")
        self._pending = lines.pop()
        payloads: list[bytes] = []
        data = self._data
        size = self._data_bytes
        for line in lines:
            if not line:
                if data:
                    payloads.append(b"\n".join(data))
                    data.clear()
                    size = 0
            elif line.startswith(b"data:"):
                # What follows `data:`, less the one space the standard allows after it.
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value) + 1
                data.append(value)
        # Checked once per read: an event can pass the cap by at most one read's bytes.
        self._data_bytes = size
        if len(self._pending) + size > MAX_EVENT_BYTES:
            raise _too_large()
        return payloads

    def close(self) -> list[bytes]:
        """At the end of the body: servers that omit the last blank line still meant it."""
        payloads = self.feed(b"\n\n") if self._pending or self._data else []
        self._after_cr = False
        return payloads


def _too_large() -> UpstreamError:
    return UpstreamError("OpenRouter sent an event larger than 1 MiB")
