"""Access per SPEC: ACCESS_TOKEN (Bearer or login session), Origin checks, CORS, public pages."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from server.config import normalize_origin
from tests.conftest import SESSION_SECRET, Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter
from tests.security.conftest import ACCESS_TOKEN

CHAT = "/api/chat/openrouter"
WS = "/api/chat/ws"
EVIL = "https://evil.example"
FRIEND = "https://friend.example"
REQUIRED = {"message": "Access token required"}
BEARER = {"Authorization": f"Bearer {ACCESS_TOKEN}"}

# Every guarded route with a body that would succeed once access is granted.
API_CALLS: list[tuple[str, str, object]] = [
    ("GET", "/api/profile", None),
    ("PUT", "/api/profile", {"openrouter_api_key": "sk-or-v1-whatever-000000"}),
    ("DELETE", "/api/profile", None),
    ("GET", "/api/models", None),
    ("POST", CHAT, chat_body()),
]


def own_origin(client: Client) -> str:
    return str(client.make_url("/")).rstrip("/")


async def call(
    client: Client, method: str, path: str, body: object = None, **kwargs: Any
) -> tuple[int, bytes]:
    data = None if body is None else orjson.dumps(body)
    async with client.request(method, path, data=data, **kwargs) as response:
        return response.status, await response.read()


@pytest.fixture
async def guarded(make_client: MakeClient) -> Client:
    return await make_client(access_token=ACCESS_TOKEN)


# --- ACCESS_TOKEN -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
async def test_api_without_token_is_401(
    guarded: Client, method: str, path: str, body: object
) -> None:
    status, answer = await call(guarded, method, path, body)
    assert status == 401
    assert orjson.loads(answer) == REQUIRED


async def test_metrics_without_token_is_401(guarded: Client) -> None:
    status, answer = await call(guarded, "GET", "/metrics")
    assert (status, orjson.loads(answer)) == (401, REQUIRED)


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
async def test_api_with_bearer_token_passes(
    guarded: Client, method: str, path: str, body: object
) -> None:
    status, _ = await call(guarded, method, path, body, headers=BEARER)
    assert status == 200


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {ACCESS_TOKEN}x",
        f"Bearer {ACCESS_TOKEN[:-1]}",
        f"Basic {ACCESS_TOKEN}",
        ACCESS_TOKEN,
        "Bearer ",
        "Bearer",
    ],
)
async def test_wrong_bearer_is_401(guarded: Client, authorization: str) -> None:
    status, answer = await call(
        guarded, "GET", "/api/profile", headers={"Authorization": authorization}
    )
    assert (status, orjson.loads(answer)) == (401, REQUIRED)


async def test_websocket_handshake_without_token_is_refused_with_401(
    guarded: Client, fake_openrouter: FakeOpenRouter
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.ws_connect(WS)
    assert refused.value.status == 401
    async with guarded.ws_connect(WS, headers=BEARER) as ws:
        await ws.send_str(orjson.dumps({"id": "a", **chat_body("hi there")}).decode())
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["type"] == "delta":
            frames.append(orjson.loads((await ws.receive(timeout=3)).data))
    assert frames[-1]["type"] == "done"
    assert "".join(f["content"] for f in frames[:-1]) == "hi there"


@pytest.mark.parametrize("path", ["/", "/static/index.html", "/healthz"])
async def test_page_static_and_health_stay_public(guarded: Client, path: str) -> None:
    status, _ = await call(guarded, "GET", path)
    assert status == 200


async def test_login_is_204_and_the_session_then_passes_everywhere(guarded: Client) -> None:
    assert (await call(guarded, "POST", "/api/login", {"token": ACCESS_TOKEN}))[0] == 204
    for method, path, body in API_CALLS:
        assert (await call(guarded, method, path, body))[0] == 200, path
    async with guarded.ws_connect(WS) as ws:
        assert not ws.closed


@pytest.mark.parametrize(
    "body",
    [{"token": "nope"}, {"token": ACCESS_TOKEN.upper()}, {"token": 1}, {}, [], b"not json", b""],
)
async def test_login_with_anything_but_the_token_is_401(guarded: Client, body: object) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with guarded.post("/api/login", data=data) as response:
        assert response.status == 401
        assert isinstance((await response.json())["message"], str)
        assert "Set-Cookie" not in response.headers
    assert (await call(guarded, "GET", "/api/profile"))[0] == 401


async def test_login_keeps_the_saved_key_and_a_new_token_logs_out(
    make_client: MakeClient,
) -> None:
    first = await make_client(access_token=ACCESS_TOKEN)
    await call(
        first,
        "PUT",
        "/api/profile",
        {"openrouter_api_key": "sk-or-v1-mine-00001234"},
        headers=BEARER,
    )
    await call(first, "POST", "/api/login", {"token": ACCESS_TOKEN})
    status, answer = await call(first, "GET", "/api/profile")
    assert status == 200 and orjson.loads(answer)["source"] == "session"
    # Same SESSION_SECRET, other ACCESS_TOKEN: the old login must not count.
    second = await make_client(
        access_token="another-token-0123456789", session_secret=SESSION_SECRET
    )
    second.session.cookie_jar.update_cookies(
        {c.key: c.value for c in first.session.cookie_jar}, second.make_url("/")
    )
    assert (await call(second, "GET", "/api/profile"))[0] == 401


# --- Origin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [c for c in API_CALLS if c[0] != "GET"] + [("POST", "/api/login", {"token": ACCESS_TOKEN})],
)
async def test_state_changing_request_from_another_origin_is_403(
    client: Client, fake_openrouter: FakeOpenRouter, method: str, path: str, body: object
) -> None:
    status, answer = await call(client, method, path, body, headers={"Origin": EVIL})
    assert status == 403
    assert isinstance(orjson.loads(answer)["message"], str)
    assert fake_openrouter.requests == []


async def test_drive_by_text_plain_post_spends_nothing(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # What Chromium sends for a cross-site no-cors fetch: no cookies, yet the server key needs none.
    headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    status, _ = await call(client, "POST", CHAT, chat_body(), headers=headers)
    assert status == 403
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    "origin", ["null", "http://127.0.0.1", "https://127.0.0.1.evil.example", "file://"]
)
async def test_websocket_from_another_origin_is_403(client: Client, origin: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS, headers={"Origin": origin})
    assert refused.value.status == 403


async def test_no_origin_but_cross_site_fetch_metadata_is_403(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    status, _ = await call(
        client, "POST", CHAT, chat_body(), headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.value.status == 403
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("fetch_site", [None, "same-origin", "none"])
async def test_no_origin_is_not_a_browser_request_and_passes(
    client: Client, fetch_site: str | None
) -> None:
    headers = {} if fetch_site is None else {"Sec-Fetch-Site": fetch_site}
    status, answer = await call(client, "POST", CHAT, chat_body("a b"), headers=headers)
    assert (status, answer) == (200, b"a b")


async def test_own_origin_passes_in_any_spelling(client: Client) -> None:
    own = own_origin(client)
    for origin in (own, own.upper(), own + "/"):
        status, _ = await call(client, "POST", CHAT, chat_body(), headers={"Origin": origin})
        assert status == 200, origin
        async with client.ws_connect(WS, headers={"Origin": origin}) as ws:
            assert not ws.closed


async def test_https_on_our_own_host_is_our_origin(client: Client) -> None:
    # What a browser sends when a TLS router sits in front and BEHIND_PROXY is not set.
    https_self = own_origin(client).replace("http://", "https://")
    assert (await call(client, "POST", CHAT, chat_body(), headers={"Origin": https_self}))[0] == 200
    other_port = https_self.rsplit(":", 1)[0] + ":1"
    assert (await call(client, "POST", CHAT, chat_body(), headers={"Origin": other_port}))[0] == 403


async def test_allowed_origin_passes_other_origins_do_not(make_client: MakeClient) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND, "http://localhost:3000"}))
    for origin in (FRIEND, "https://FRIEND.example:443", "http://localhost:3000"):
        assert (await call(client, "POST", CHAT, chat_body(), headers={"Origin": origin}))[0] == 200
        async with client.ws_connect(WS, headers={"Origin": origin}) as ws:
            assert not ws.closed
    for origin in ("http://friend.example", "https://friend.example:8443", "http://localhost:3001"):
        assert (await call(client, "POST", CHAT, chat_body(), headers={"Origin": origin}))[0] == 403


async def test_forwarded_host_does_not_make_a_foreign_origin_own(client: Client) -> None:
    headers = {"Origin": EVIL, "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    assert (await call(client, "POST", CHAT, chat_body(), headers=headers))[0] == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS, headers=headers)
    assert refused.value.status == 403


async def test_reading_from_another_origin_is_not_blocked_by_the_origin_check(
    client: Client,
) -> None:
    # GET changes nothing and CORS keeps its answer from the foreign page's script.
    assert (await call(client, "GET", "/api/profile", headers={"Origin": EVIL}))[0] == 200


async def test_cross_site_check_comes_before_the_token(guarded: Client) -> None:
    headers = {"Origin": EVIL, **BEARER}
    assert (await call(guarded, "POST", CHAT, chat_body(), headers=headers))[0] == 403


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("HTTPS://Example.COM:443/", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", "null"),
        ("http://bad:port", "http://bad:port"),
    ],
)
def test_origins_are_compared_normalized(origin: str, normal: str) -> None:
    assert normalize_origin(origin) == normal


# --- CORS ---------------------------------------------------------------------------------


def preflight_headers(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, authorization",
    }


async def test_preflight_from_an_allowed_origin(make_client: MakeClient) -> None:
    # ACCESS_TOKEN set: preflights carry no credentials and must still be answered.
    client = await make_client(allowed_origins=frozenset({FRIEND}), access_token=ACCESS_TOKEN)
    async with client.options(CHAT, headers=preflight_headers(FRIEND)) as response:
        assert response.status == 204
        headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == FRIEND
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "authorization"} <= allowed
    assert "Origin" in headers.getall("Vary")


@pytest.mark.parametrize(("origin", "method"), [(EVIL, "POST"), (FRIEND, "DELETE")])
async def test_preflight_for_anything_else_gets_no_cors_grant(
    make_client: MakeClient, origin: str, method: str
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}))
    async with client.options(CHAT, headers=preflight_headers(origin, method)) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_allowed_origin_may_read_the_stream_and_its_errors(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}), openrouter_api_key=None)
    async with client.post(CHAT, data=orjson.dumps(chat_body()), headers={"Origin": FRIEND}) as r:
        assert r.status == 401  # no key anywhere: the page must be able to read why
        assert r.headers["Access-Control-Allow-Origin"] == FRIEND
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
    await call(client, "PUT", "/api/profile", {"openrouter_api_key": "sk-or-v1-mine-00001234"})
    async with client.post(
        CHAT, data=orjson.dumps(chat_body("x y")), headers={"Origin": FRIEND}
    ) as r:
        assert (r.status, await r.text()) == (200, "x y")
        assert r.headers["Access-Control-Allow-Origin"] == FRIEND
        assert "Origin" in r.headers.getall("Vary")


async def test_same_origin_and_foreign_answers_carry_no_cors_grant(client: Client) -> None:
    async with client.post(
        CHAT, data=orjson.dumps(chat_body()), headers={"Origin": own_origin(client)}
    ) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers
        assert "Origin" in r.headers.getall("Vary")
    async with client.post(CHAT, data=orjson.dumps(chat_body()), headers={"Origin": EVIL}) as r:
        assert r.status == 403
        assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer \xff\xfe", b"Origin: http://\xff.example"]
)
async def test_undecodable_header_bytes_are_refused_not_a_crash(
    guarded: Client, header: bytes
) -> None:
    assert guarded.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(
        b"PUT /api/profile HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + header
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] in (b"400", b"401", b"403")
