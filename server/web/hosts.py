"""DNS rebinding: a loopback-bound server answers only the Host names it knows, else 421.

A web page on any site can point its own name at 127.0.0.1 and then talk to a local server
as "same origin": its Host and Origin both say the attacker's name, so the Origin check
passes and the page spends the server key (issue 21.5). A local server therefore answers
only loopback names (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]`, any port) and the
names it was told about (ALLOWED_HOSTS, the hosts of ALLOWED_ORIGINS and APP_URL), before
any route, WebSocket, /v1 or static file. `ALLOWED_HOSTS=*` turns the check off.

"Loopback-bound" is the configured HOST being loopback and the connection arriving on a
loopback address: a server that gunicorn bound to 0.0.0.0 while HOST kept its default is
reached on its public address by a router, and that is not this check's business.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from server.config import Settings, is_loopback, settings_key

ANY_HOST = "*"
MISDIRECTED_MESSAGE = (
    "This server answers only localhost and the names in ALLOWED_HOSTS "
    "(a local server refuses other names against DNS rebinding)"
)
V1_PREFIX = "/v1/"

known_hosts_key = web.AppKey("known_hosts", frozenset)
"""The host names a loopback-bound server answers besides loopback ones; empty otherwise."""


def host_name(value: str) -> str:
    """A Host header's name: lower case, port and a trailing dot dropped, IPv6 in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.partition("]")[0] + "]"
    name, colon, port = value.rpartition(":")
    if colon and (port.isdigit() or not port):
        value = name
    return value.rstrip(".")


def url_host(url: str) -> str | None:
    try:
        host = urlsplit(url.strip() if "//" in url else f"//{url.strip()}").hostname
    except ValueError:
        return None
    if not host:
        return None
    return f"[{host}]" if ":" in host else host.rstrip(".")


def known_hosts(settings: Settings) -> frozenset[str]:
    """ALLOWED_HOSTS and the hosts of ALLOWED_ORIGINS and APP_URL, as host_name() gives them."""
    names: set[str] = {host_name(h) for h in settings.allowed_hosts if h.strip()}
    urls: Iterable[str] = (*settings.allowed_origins, settings.app_url or "")
    names.update(host for url in urls if url and (host := url_host(url)) is not None)
    return frozenset(names)


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True  # browsers resolve these to loopback themselves: no DNS to rebind
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def arrived_on_loopback(request: web.Request) -> bool:
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(local, tuple) and local:
        return is_loopback(str(local[0]))
    return True  # a unix socket (a path) is reachable from this machine only


def misdirected(request: web.Request) -> web.Response:
    body: dict[str, object]
    if request.path.startswith(V1_PREFIX):
        body = {
            "error": {
                "message": MISDIRECTED_MESSAGE,
                "type": "invalid_request_error",
                "param": None,
                "code": "misdirected_request",
            }
        }
    else:
        body = {"message": MISDIRECTED_MESSAGE}
    return web.Response(body=orjson.dumps(body), status=421, content_type="application/json")


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """421 for a Host a loopback-bound server was not told about, before anything else."""
    known = request.app[known_hosts_key]
    if ANY_HOST in known:
        return await handler(request)
    # A request without Host (HTTP/1.0) comes from no browser: nothing to rebind.
    host = request.headers.get("Host")
    if host is None or not is_loopback(request.app[settings_key].host):
        return await handler(request)
    name = host_name(host)
    if is_loopback_name(name) or name in known or not arrived_on_loopback(request):
        return await handler(request)
    return misdirected(request)


def setup_hosts(app: web.Application) -> None:
    app[known_hosts_key] = known_hosts(app[settings_key])
