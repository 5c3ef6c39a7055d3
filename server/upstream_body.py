"""Upstream's body as bytes, compressed or not, never more than a cap.

We ask for `Accept-Encoding: identity` and aiohttp inflates nothing by itself: a 1 MB gzip
body can inflate to gigabytes in one call and freeze the event loop. A server that
compresses anyway is inflated here a bounded step at a time, up to MAX_BODY_BYTES in all.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import aiohttp

from .errors import UpstreamError

# Output of one inflate step: what the SSE decoder handles between two yields to the loop.
INFLATE_STEP_BYTES = 64 * 1024
# zlib's "gzip or zlib header, whichever it is".
GZIP_OR_ZLIB_WBITS = 32 + zlib.MAX_WBITS
INFLATED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class Inflater:
    """gzip or deflate, inflated `INFLATE_STEP_BYTES` at a time, at most `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self._inflate = zlib.decompressobj(GZIP_OR_ZLIB_WBITS)
        self._left = limit
        self._limit = limit

    def steps(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._inflate.decompress(data, INFLATE_STEP_BYTES)
            except zlib.error:
                raise UpstreamError("OpenRouter sent a compressed answer that is corrupt") from None
            data = self._inflate.unconsumed_tail
            self._left -= len(out)
            if self._left < 0:
                raise UpstreamError(
                    f"OpenRouter sent a compressed answer larger than {self._limit} bytes"
                )
            if out:
                yield out
            elif not data or self._inflate.eof:
                return


def inflater_for(response: aiohttp.ClientResponse, limit: int) -> Inflater | None:
    """None for an uncompressed body; UpstreamError for an encoding we do not read."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in INFLATED_ENCODINGS:
        return Inflater(limit)
    # Not the header's value in the message: it is upstream's raw bytes.
    raise UpstreamError("OpenRouter sent an answer compressed in a way chatrelay does not read")


async def read_capped(response: aiohttp.ClientResponse, limit: int, *, strict: bool) -> bytes:
    """The whole body, inflated, up to `limit` bytes: past it, the rest is cut off, or with
    `strict` the answer is refused (a body that must be whole to be read)."""
    inflater = inflater_for(response, limit if strict else limit + INFLATE_STEP_BYTES)
    body = bytearray()
    async for read in response.content.iter_any():
        for part in inflater.steps(read) if inflater else (read,):
            body += part
            if len(body) > limit:
                if strict:
                    raise UpstreamError(f"OpenRouter sent an answer larger than {limit} bytes")
                return bytes(body[:limit])
    return bytes(body)
