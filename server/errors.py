"""The ChatError tree: every failure a user may see, with its status on both transports.

Also what upstream's failures become: its error answers, `Retry-After`, and broken
transports. A message made here never carries upstream's URL or raw bytes from its answer:
aiohttp's own exception texts hold both, so each kind of failure gets a fixed sentence.

It stays whole (over 300 lines): it is the one table of every status and message a user
may see, checked against SPEC's list of errors, upstream's failures beside what they become.
"""

from __future__ import annotations

import email.utils
import math
import os
import re
import time
from typing import Any, ClassVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

KEY_NOT_FOUND_MESSAGE = "OpenRouter API Key not found. Please set it in your profile settings."
# What upstream's string error code may look like to be passed on (an identifier, short).
ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A longer wait than a day is no hint a client can act on.
MAX_RETRY_AFTER_S = 24 * 3600


class ChatError(Exception):
    """Base of every error shown to a user; `message` is always safe to show."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    # The code a chat's log kept for it, when this error is read back from there.
    logged_code: str | None = None

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.http_status
        # Seconds after which trying again may work: `Retry-After` on HTTP, a frame field on WS.
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


class InternalError(ChatError):
    """Anything unexpected; the details go to the log only."""

    def __init__(self) -> None:
        super().__init__("An unexpected error occurred")


class BadRequest(ChatError):
    """The body or frame is not JSON, not an object, or a field is invalid."""

    http_status = 400
    code = "bad_request"


class PayloadTooLarge(ChatError):
    """A body over the size limit."""

    http_status = 413
    code = "payload_too_large"


class KeyNotFound(ChatError):
    """Neither the user's session nor the server holds an OpenRouter key."""

    http_status = 401
    code = "key_not_found"

    def __init__(self) -> None:
        super().__init__(KEY_NOT_FOUND_MESSAGE)


class AccessDenied(ChatError):
    """No valid access token (401), or a cross-site browser request (403)."""

    http_status = 401
    code = "access_denied"


class TooManyChats(ChatError):
    """A client went over a limit (sockets, chats at once, chats per minute); `retry_after`
    says in how many seconds to try again, when that is known."""

    http_status = 429
    code = "too_many_chats"


class BudgetExceeded(ChatError):
    """A metered chat of an account whose budget this period cannot afford even a short
    answer (SPEC "Budgets"); /v1 says `insufficient_quota`, as OpenAI does."""

    http_status = 402
    code = "insufficient_quota"


class ChatIdInUse(ChatError):
    """A chat frame reused the id of a chat that is still running on the socket."""

    http_status = 409
    code = "chat_id_in_use"


class ServerShuttingDown(ChatError):
    """A chat started during shutdown, or still running when the grace period ran out."""

    http_status = 503
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("The server is restarting; please try again in a moment")


class ChatStoreUnavailable(ChatError):
    """REDIS_URL is set and Redis cannot be reached: new chats cannot be recorded or counted."""

    http_status = 503
    code = "chat_store_unavailable"

    def __init__(self) -> None:
        super().__init__("Chat store unavailable")


class AccountStoreUnavailable(ChatError):
    """The database (DATABASE_URL) cannot be reached: what needs an account waits for it,
    anonymous chats go on."""

    http_status = 503
    code = "account_store_unavailable"

    def __init__(self) -> None:
        super().__init__("Account store unavailable")


class Forbidden(ChatError):
    """Signed in, but not allowed: a non-admin on /api/admin/*, a wrong current password,
    sign-up closed or without its invite, a disabled account."""

    http_status = 403
    code = "forbidden"


class NotFound(ChatError):
    """No such thing of the caller's: an unknown id and another account's answer alike."""

    http_status = 404
    code = "not_found"


class Conflict(ChatError):
    """The change would break a rule of the data: an email taken, the last admin removed."""

    http_status = 409
    code = "conflict"


# OpenAI's string error codes and types (LiteLLM, vLLM and Azure send them too), for an
# error whose `code` is not an HTTP status: what it would have been as an answer's status.
OPENAI_ERROR_STATUS = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "string_above_max_length": 400,
    "invalid_value": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "unsupported_country_region_territory": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "overloaded_error": 503,
}


def error_status(code: object, kind: object = None) -> int:
    """The HTTP status an error object's `code` (or else its `type`) stands for; else 502."""
    # Three ASCII digits: str.isdigit passes "²" (int() refuses it) and 5,000 digits (past
    # int()'s limit), and upstream's bytes must not make a chat a 500.
    if isinstance(code, str) and len(code) == 3 and code.isascii() and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    for name in (code, kind):
        if isinstance(name, str) and name in OPENAI_ERROR_STATUS:
            return OPENAI_ERROR_STATUS[name]
    return 502


class UpstreamError(ChatError):
    """OpenRouter answered with an error, before or inside its stream, or broke its protocol."""

    http_status = 502
    code = "upstream_error"
    # Upstream's own string code (OpenAI's `context_length_exceeded`, ...), which /v1 passes
    # on: SDK users branch on it.
    upstream_code: str | None = None

    @classmethod
    def from_body(
        cls,
        error: object,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        default_message: str = "OpenRouter reported an error",
    ) -> UpstreamError:
        """The one reading of OpenRouter's `error` object, from an error answer or a chunk.

        `status` is the answer's HTTP status; inside a stream (None) the error's `code` is
        the status when it is an HTTP error code or one of OpenAI's string codes, else 502.
        """
        message: object = None
        code: object = None
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
            if status is None:
                status = error_status(code, error.get("type"))
        elif isinstance(error, str):
            message = error
        # Anything else (a list, a number, true) has no words of its own: str() of it would be
        # Python's repr ("['bad', {'x': 1}]", "True"), so the default message says it.
        text = message if isinstance(message, str) and message else default_message
        made = cls(text, status=status or 502, retry_after=retry_after)
        if isinstance(code, str) and ERROR_CODE.fullmatch(code) and not code.isdigit():
            made.upstream_code = code
        return made


def code_of(error: ChatError) -> str:
    """The error's string code: upstream's own when it gave one (SDK users branch on
    `context_length_exceeded`), else the one its log kept, else chatrelay's."""
    if isinstance(error, UpstreamError) and error.upstream_code:
        return error.upstream_code
    return error.logged_code or error.code


class ServerBusy(ChatError):
    """A chat waited past UPSTREAM_TIMEOUT for a free upstream connection: this server is
    full, and upstream was never asked, so a 504 blaming it would be wrong."""

    http_status = 503
    code = "server_busy"

    def __init__(self) -> None:
        super().__init__("Too many chats at once on this server")


class UpstreamUnreachable(UpstreamError):
    """No connection to OpenRouter could be made."""

    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    """OpenRouter sent nothing, not even a comment, for `upstream_timeout_s` seconds."""

    http_status = 504
    code = "upstream_timeout"


class RequestTimeout(ChatError):
    """A request's headers and body did not arrive within the request time (SPEC: Limits)."""

    http_status = 408
    code = "request_timeout"


class ClientTooSlow(ChatError):
    """The client accepted no byte of the answer for `write_timeout_s`; it is dropped."""

    http_status = 408
    code = "client_too_slow"


class ChatTooLong(ChatError):
    """A chat ran past MAX_CHAT_DURATION_S (an upstream sending only comments, for one)."""

    http_status = 504
    code = "chat_too_long"


class ChatNotFound(ChatError):
    """No chat with that id to resume or stop: unknown, expired, or another session's."""

    http_status = 404
    code = "chat_not_found"

    def __init__(self, chat_id: str) -> None:
        super().__init__(f"No chat with id {chat_id} to resume")


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


class ResponseNotFound(ChatError):
    """No /v1 response with that id: unknown, expired, deleted, or another owner's."""

    http_status = 404
    code = "response_not_found"

    def __init__(self, response_id: str | None) -> None:
        named = f" with id '{response_id}'" if response_id else " with that id"
        super().__init__(f"No response found{named}")
