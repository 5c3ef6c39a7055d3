"""Behind a router (BEHIND_PROXY=1): the client's scheme and address from X-Forwarded-*."""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler

from .config import settings_key

SCHEMES = frozenset({"http", "https"})

client_address_key = web.RequestKey("client_address", str)
"""The forwarded client address, kept on the original request for the access log."""


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
