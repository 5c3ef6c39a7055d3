"""Who is calling, and whether they may: the forwarded client, ACCESS_TOKEN, Origin and CORS.

Behind a router (BEHIND_PROXY=1) the client's scheme and address come from X-Forwarded-*;
/api/* then needs the ACCESS_TOKEN (Bearer header or logged-in session) or an account
(signed in, or a personal token), only an account with ACCOUNTS=required, and browsers on
other sites are refused unless ALLOWED_ORIGINS lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import get_session, new_session

from server.config import Settings, normalize_origin, settings_key
from server.errors import AccessDenied, BadRequest
from server.telemetry import client_address_key
from server.web.http_io import expect_within_limit, read_json
from server.web.identity import request_identity
from server.web.limits import check_login_rate
from server.web.profile import SESSION_KEY_FIELD, SESSION_OWNER_FIELD

ACCESS_FIELD = "access"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
PUBLIC_API_PATHS = frozenset({"/api/login"})
# Reachable whatever the access rule: what creates or opens an account (an account is
# someone the server admitted), and asking whether one is open.
ACCOUNT_DOORS = frozenset(
    {
        ("POST", "/api/accounts"),
        ("POST", "/api/session"),
        ("GET", "/api/session"),
        ("POST", "/api/account/reset"),
    }
)
WS_PATH = "/api/chat/ws"
# What is offered to other origins (ALLOWED_ORIGINS), and with which method: the chat route
# and the models list, what chatbot-ui-like front ends call, and what the X-Chat-Id they
# read is for: resuming the chat (GET /api/chats/{id}/events) and stopping it (DELETE).
CORS_PATHS = {"/api/chat/openrouter": "POST", "/api/models": "GET"}
CHATS_PREFIX = "/api/chats/"
# Last-Event-ID: an EventSource that reconnects sends it, and it is not a safelisted header.
CORS_HEADERS = "Content-Type, Authorization, Accept, Last-Event-ID"
# Without this a cross-origin page cannot read a 429's wait or the chat id to resume with.
CORS_EXPOSED_HEADERS = "Retry-After, X-Chat-Id"
CORS_MAX_AGE_S = 600
SCHEMES = frozenset({"http", "https"})


def last_entry(request: web.Request, header: str) -> str | None:
    """The right-most value of a comma-separated header: the one our router appended."""
    values = ",".join(request.headers.getall(header, ()))
    entry = values.rpartition(",")[2].strip()
    return entry or None


def forwarded_scheme(request: web.Request) -> str | None:
    scheme = (last_entry(request, "X-Forwarded-Proto") or "").lower()
    return scheme if scheme in SCHEMES else None


def forwarded_client(request: web.Request) -> str | None:
    # Entries left of the last one were written by the client itself and prove nothing.
    entry = last_entry(request, "X-Forwarded-For")
    if entry is None:
        return None
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


@web.middleware
async def proxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take scheme and client from the router's headers, only when told a router is there.

    X-Forwarded-Host is never trusted: origins compare against the Host the client sent.
    """
    if not request.app[settings_key].behind_proxy:
        return await handler(request)
    scheme, client = forwarded_scheme(request), forwarded_client(request)
    if scheme is None and client is None:
        return await handler(request)
    if client is None:
        return await handler(request.clone(scheme=scheme or request.scheme))
    request[client_address_key] = client
    return await handler(request.clone(scheme=scheme or request.scheme, remote=client))


def token_digest(token: str) -> str:
    """What a logged-in session holds: changing ACCESS_TOKEN logs every session out."""
    return hashlib.sha256(b"chatrelay-access:" + token.encode()).hexdigest()


def is_allowed_origin(origin: str, settings: Settings) -> bool:
    return normalize_origin(origin) in settings.allowed_origins


def is_cross_site(request: web.Request, settings: Settings) -> bool:
    # Browsers always send Origin on WebSocket handshakes and unsafe fetches; refusing other
    # sites blocks cross-site WebSocket hijacking and credit-spending drive-by POSTs. The own
    # origin is the request's scheme and Host, never X-Forwarded-Host, which anyone can send.
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site") == "cross-site"
    # https on our Host is ours too: only this host can serve it, and a TLS router in front
    # (without BEHIND_PROXY) makes the page https while the request reaches us as http.
    own = {normalize_origin(f"{s}://{request.host}") for s in (request.scheme, "https")}
    return normalize_origin(origin) not in own and not is_allowed_origin(origin, settings)


async def has_access(request: web.Request, settings: Settings) -> bool:
    """The ACCESS_TOKEN rule: no token set, the token presented, or a signed-in account."""
    return (
        settings.access_token is None
        or await holds_access_token(request, settings)
        or await request_identity(request) is not None
    )


async def holds_access_token(request: web.Request, settings: Settings) -> bool:
    """The request carries the ACCESS_TOKEN (Bearer) or its session logged in with it."""
    token = settings.access_token
    if token is None:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        # surrogateescape: a header with undecodable bytes is a wrong token, not a crash.
        presented.strip().encode("utf-8", "surrogateescape"),
        token.encode(),
    ):
        return True
    session = await get_session(request)
    saved = session.get(ACCESS_FIELD)
    return isinstance(saved, str) and hmac.compare_digest(saved, token_digest(token))


def needs_check(request: web.Request) -> bool:
    path = request.path
    return path.startswith(("/api/", "/v1/")) or path == "/metrics"


def cors_method(path: str) -> str | None:
    """The one method other origins may use on `path`, or None: not offered to them."""
    if path in CORS_PATHS:
        return CORS_PATHS[path]
    if not path.startswith(CHATS_PREFIX):
        return None
    chat_id, _, rest = path[len(CHATS_PREFIX) :].partition("/")
    if not chat_id:
        return None
    return {"": "DELETE", "events": "GET"}.get(rest)


def preflight(request: web.Request, settings: Settings, allowed: str) -> web.Response:
    """Answer a CORS preflight: only ALLOWED_ORIGINS may call here from another origin."""
    origin = request.headers.get("Origin", "")
    method = request.headers.get("Access-Control-Request-Method", "")
    if not is_allowed_origin(origin, settings) or method.upper() != allowed:
        raise AccessDenied("Cross-site requests are not allowed", status=403)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": f"{allowed}, OPTIONS",
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
            "Vary": "Origin",
        },
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if needs_check(request):
        settings = request.app[settings_key]
        allowed = cors_method(request.path)
        if (
            request.method == "OPTIONS"
            and allowed is not None
            and "Access-Control-Request-Method" in request.headers
        ):
            # Preflights carry neither cookies nor Authorization: answer before the token check.
            return preflight(request, settings, allowed)
        is_ws = request.path == WS_PATH
        if (request.method in STATE_CHANGING or is_ws) and is_cross_site(request, settings):
            raise AccessDenied("Cross-site requests are not allowed", status=403)
        if request.path in PUBLIC_API_PATHS or (request.method, request.path) in ACCOUNT_DOORS:
            pass
        elif settings.accounts == "required":
            # SPEC: only accounts and personal tokens pass; the ACCESS_TOKEN serves /metrics
            # (without one, /metrics is an account's like every other route).
            metrics_holder = request.path == "/metrics" and await holds_access_token(
                request, settings
            )
            if not metrics_holder and await request_identity(request) is None:
                raise AccessDenied("Sign in required")
        elif not await has_access(request, settings):
            raise AccessDenied("Access token required")
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Let an ALLOWED_ORIGINS page read these answers, streamed ones and errors too."""
    if cors_method(request.path) is None or request.method == "OPTIONS":
        return
    response.headers.add("Vary", "Origin")
    origin = request.headers.get("Origin")
    if origin is not None and is_allowed_origin(origin, request.app[settings_key]):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS


async def login(request: web.Request) -> web.Response:
    settings = request.app[settings_key]
    if settings.access_token is not None:
        await check_login_rate(request)  # before the body: a refused guess costs nothing
    try:
        data = await read_json(request)
    except BadRequest:
        data = None  # SPEC: anything but the right token is a 401
    presented = data.get("token") if isinstance(data, dict) else None
    if settings.access_token is None:
        return web.Response(status=204)
    if not isinstance(presented, str) or not hmac.compare_digest(
        presented.encode(), settings.access_token.encode()
    ):
        raise AccessDenied("Invalid access token")
    digest = token_digest(settings.access_token)
    old = await get_session(request)
    saved_key = old.get(SESSION_KEY_FIELD)
    # Signing in again keeps the session's chats its own (resume, stop); a session not
    # signed in yet had no chats, and its owner id must not ride on the new rights.
    owner = old.get(SESSION_OWNER_FIELD) if old.get(ACCESS_FIELD) == digest else None
    # A fresh session on login: a cookie planted before it cannot ride on the new rights.
    session = await new_session(request)
    if saved_key:
        session[SESSION_KEY_FIELD] = saved_key
    if owner:
        session[SESSION_OWNER_FIELD] = owner
    session[ACCESS_FIELD] = digest
    return web.Response(status=204)


def setup_access(app: web.Application) -> None:
    app.router.add_post("/api/login", login, expect_handler=expect_within_limit)
    app.on_response_prepare.append(add_cors_headers)
