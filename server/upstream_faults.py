"""What upstream's failures become: error answers, `Retry-After`, and broken transports.

A message made here never carries upstream's URL or raw bytes from its answer: aiohttp's
own exception texts hold both, so each kind of failure gets a fixed sentence instead.
"""

from __future__ import annotations

import email.utils
import math
import os
import time

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from .errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

# A longer wait than a day is no hint a client can act on.
MAX_RETRY_AFTER_S = 24 * 3600


def parse_retry_after(value: str | None) -> int | None:
    """Seconds from a `Retry-After` header (a number or an HTTP date), within a day."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return round(min(max(seconds, 0.0), MAX_RETRY_AFTER_S))


def error_from_response(status: int, body: bytes, headers: CIMultiDictProxy[str]) -> UpstreamError:
    """Turn OpenRouter's `{"error": {"message", "code"}}` answer into an UpstreamError."""
    if 300 <= status <= 399:
        # A redirect would send the user's messages (and our key) to a host nobody chose.
        return UpstreamError("OpenRouter answered with a redirect, which chatrelay does not follow")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    error: object = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        readable = isinstance(error, str) or (
            isinstance(error, dict) and isinstance(error.get("message"), str)
        )
        if not readable:
            error = parsed.get("message") if isinstance(parsed.get("message"), str) else None
    return UpstreamError.from_body(
        error,
        status=status if 400 <= status <= 599 else 502,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        default_message=f"OpenRouter answered with status {status}",
    )


def transport_error(exc: aiohttp.ClientError, silence_message: str) -> UpstreamError:
    """An aiohttp failure as a user may read it: its kind, never its text."""
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return UpstreamTimeout(silence_message)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("OpenRouter closed the stream before it finished")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamError("OpenRouter sent an answer that is not valid HTTP")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamUnreachable("Could not reach OpenRouter: the server closed the connection")
    if isinstance(exc, aiohttp.ClientSSLError):
        return UpstreamUnreachable("Could not reach OpenRouter: its TLS certificate was refused")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UpstreamUnreachable("Could not reach OpenRouter: its host name did not resolve")
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno:
        # The errno's own words: asyncio's text names the address ("Connect call failed
        # ('10.0.0.5', 443)").
        return UpstreamUnreachable(f"Could not reach OpenRouter: {os.strerror(exc.errno)}")
    return UpstreamUnreachable(f"Could not reach OpenRouter: {type(exc).__name__}")
