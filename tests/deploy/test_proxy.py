"""The proxy middleware: X-Forwarded-Proto/-For only with BEHIND_PROXY, right-most entry."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.config import Settings, settings_key
from server.telemetry import client_address_key
from server.web.access import proxy_middleware

ROUTER_HEADERS = {
    "Host": "chatrelay.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
    "X-Forwarded-Host": "evil.example",
}


async def seen_by_handler(headers: dict[str, str], *, behind_proxy: bool) -> web.BaseRequest:
    app = web.Application()
    app[settings_key] = Settings(behind_proxy=behind_proxy)
    request = make_mocked_request("GET", "/api/profile", headers=headers, app=app)
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return web.Response()

    await proxy_middleware(request, handler)
    return seen[0]


async def test_behind_proxy_takes_scheme_and_the_router_appended_client() -> None:
    request = await seen_by_handler(ROUTER_HEADERS, behind_proxy=True)
    assert request.scheme == "https"
    assert request.secure
    # The left entry is whatever the client claimed; the router appended the right one.
    assert request.remote == "198.51.100.7"
    assert request.host == "chatrelay.example"


async def test_without_behind_proxy_the_headers_are_ignored() -> None:
    request = await seen_by_handler(ROUTER_HEADERS, behind_proxy=False)
    plain = make_mocked_request("GET", "/api/profile", headers={"Host": "chatrelay.example"})
    assert request.scheme == "http"
    assert request.remote == plain.remote
    assert request.host == "chatrelay.example"


async def test_x_forwarded_host_is_never_trusted() -> None:
    request = await seen_by_handler({**ROUTER_HEADERS}, behind_proxy=True)
    assert request.host == "chatrelay.example"
    assert "evil.example" not in str(request.url)


async def test_repeated_headers_count_as_one_list() -> None:
    app = web.Application()
    app[settings_key] = Settings(behind_proxy=True)
    request = make_mocked_request(
        "GET",
        "/",
        headers=[("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2001:db8::1")],
        app=app,
    )
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return web.Response()

    await proxy_middleware(request, handler)
    assert seen[0].remote == "2001:db8::1"
    # The access log reads the original request, which the middleware does not replace.
    assert request[client_address_key] == "2001:db8::1"


async def test_malformed_values_are_ignored() -> None:
    request = await seen_by_handler(
        {"X-Forwarded-Proto": "gopher", "X-Forwarded-For": "1.2.3.4, not-an-ip"}, behind_proxy=True
    )
    plain = make_mocked_request("GET", "/")
    assert request.scheme == "http"
    assert request.remote == plain.remote


async def test_proto_alone_is_enough() -> None:
    request = await seen_by_handler({"X-Forwarded-Proto": "HTTPS"}, behind_proxy=True)
    assert request.scheme == "https"
