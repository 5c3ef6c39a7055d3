"""HTTP in and out: bodies read (within the request time, request_clock.py) as JSON, and
the `{"message"}` error answers of /api.
"""

from __future__ import annotations

import asyncio
import json
import logging

import orjson
from aiohttp import web
from aiohttp.http import HttpProcessingError, HttpVersion11
from aiohttp.typedefs import Handler

from server.config import settings_key
from server.errors import BadRequest, ChatError, InternalError, PayloadTooLarge, RequestTimeout
from server.telemetry import first_line
from server.web.request_clock import (
    body_timed_out_key,
    broken_body_key,
    request_deadline_key,
    timeout_message,
)

log = logging.getLogger(__name__)

# orjson encodes at most this many levels of arrays and objects: anything deeper could be
# read but never sent upstream, so it is refused where it comes in.
MAX_JSON_DEPTH = 254


async def read_body(request: web.Request) -> bytearray:
    """The whole body, within the request time and the size limit."""
    settings = request.app[settings_key]
    try:
        async with asyncio.timeout_at(request.get(request_deadline_key)) as deadline:
            return await read_within(request, settings.max_body_bytes)
    except web.RequestPayloadError as exc:
        # Broken chunked framing or compression: the client's fault, not a 500.
        request[broken_body_key] = True
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else "broken framing"
        raise BadRequest(f"The request body is malformed: {first_line(reason)}") from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(too_large_message(settings.max_body_bytes)) from None
    except TimeoutError:
        if not deadline.expired():
            raise
        request[body_timed_out_key] = True
        raise RequestTimeout(timeout_message(settings.request_timeout_s)) from None


async def read_within(request: web.Request, limit: int) -> bytearray:
    """The body from the request's stream, refused past `limit` bytes. Not `request.read()`:
    aiohttp keeps what that reads on the request, a second copy of a body as big as 16 MiB
    for as long as the chat runs (SPEC "Limits": about its request's size)."""
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(limit, len(body))
    return body


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes"


async def expect_within_limit(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: a body announced over MAX_BODY_BYTES gets its 413 at once,
    before it is invited (aiohttp's own handler sends 100 Continue for any size, and a client
    told to go on sends its 100 GB to be thrown away). aiohttp runs it before the
    middlewares; every route that takes a body is added with it (`expect_handler=`)."""
    limit = request.app[settings_key].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        message = too_large_message(limit)
        body: dict[str, object] = {"message": message}
        if request.path.startswith("/v1/"):  # OpenAI's shape there, as every /v1 error
            error = {"message": message, "type": "invalid_request_error", "param": None}
            body = {"error": {**error, "code": PayloadTooLarge.code}}
        response = json_response(body, status=PayloadTooLarge.http_status)
        response.force_close()  # the body never comes: the connection cannot go on
        return response
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="Unknown Expect header")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the answer's own size starts after the interim one
    return None


def decode_json(data: bytes | bytearray | str, what: str) -> object:
    """`data` as JSON, or BadRequest saying why not; `what` names it ("The frame")."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if not str(error).startswith(OUT_OF_RANGE):
            raise BadRequest(f"{what} is not valid JSON") from None
        value = decode_out_of_range(data, what)
    # Cheap first: fewer brackets than the limit cannot nest past it.
    if isinstance(data, str):
        brackets = data.count("[") + data.count("{")
    else:
        brackets = data.count(b"[") + data.count(b"{")
    if brackets > MAX_JSON_DEPTH:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            raise BadRequest(
                f"{what} is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays "
                "and objects"
            ) from None
    return value


# orjson refuses a number too large for a double (`1e400`), which is valid JSON: the field
# that holds it then gets its own 400 naming it, as any other bad value does.
OUT_OF_RANGE = "number is infinity"


def _refuse_constant(name: str) -> object:
    raise ValueError(name)


def decode_out_of_range(data: bytes | bytearray | str, what: str) -> object:
    """`data` with its huge numbers as infinity (NaN and Infinity literals stay invalid)."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest(f"{what} is not valid JSON") from None


async def read_json(request: web.Request) -> object:
    """Decode the body as JSON whatever its Content-Type: chatbot-ui sends none."""
    return decode_json(await read_body(request), "The request body")


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(error: ChatError) -> web.Response:
    response = json_response({"message": error.message}, status=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api error leaves as `{"message"}` with its status; details stay in the log."""
    try:
        return await handler(request)
    except ChatError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        message = exc.text if exc.text and exc.status != 500 else exc.reason
        response = json_response({"message": message}, status=exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return error_response(InternalError())
