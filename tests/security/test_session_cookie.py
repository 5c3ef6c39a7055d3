"""The session cookie: encrypted, HttpOnly, SameSite=Lax, Secure over HTTPS, a max age."""

from __future__ import annotations

import base64
from http.cookies import SimpleCookie

import orjson
import pytest
from cryptography.fernet import Fernet

from tests.conftest import SESSION_SECRET, USER_KEY, Client, MakeClient
from tests.security.conftest import TEST_SCHEME

COOKIE = "chatrelay_session"


async def save_key(client: Client, **headers: str) -> SimpleCookie:
    body = orjson.dumps({"openrouter_api_key": USER_KEY})
    async with client.put("/api/profile", data=body, headers=headers) as response:
        assert response.status == 200
        jar: SimpleCookie = SimpleCookie()
        for header in response.headers.getall("Set-Cookie"):
            jar.load(header)
        return jar


async def test_cookie_is_encrypted_httponly_lax_with_a_max_age(client: Client) -> None:
    morsel = (await save_key(client))[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert int(morsel["max-age"]) > 0
    assert not morsel["secure"]  # plain HTTP: a Secure cookie would never come back
    assert USER_KEY not in morsel.value
    assert base64.b64encode(USER_KEY.encode()).decode()[:20] not in morsel.value
    plain = Fernet(SESSION_SECRET.encode()).decrypt(morsel.value.encode())
    assert USER_KEY.encode() in plain  # it is there, only for whoever holds SESSION_SECRET


async def test_cookie_is_secure_when_the_request_came_over_https(
    make_peer_client: MakeClient,
) -> None:
    client = await make_peer_client()
    assert (await save_key(client, **{TEST_SCHEME: "https"}))[COOKIE]["secure"] is True


async def test_forwarded_proto_is_not_trusted_by_default(client: Client) -> None:
    morsel = (await save_key(client, **{"X-Forwarded-Proto": "https"}))[COOKIE]
    assert not morsel["secure"]


async def test_login_cookie_has_the_same_flags(make_peer_client: MakeClient) -> None:
    client = await make_peer_client(access_token="tok-0123456789abcdef")
    body = orjson.dumps({"token": "tok-0123456789abcdef"})
    async with client.post("/api/login", data=body, headers={TEST_SCHEME: "https"}) as r:
        assert r.status == 204
        jar: SimpleCookie = SimpleCookie(r.headers["Set-Cookie"])
    morsel = jar[COOKIE]
    assert (morsel["httponly"], morsel["samesite"], morsel["secure"]) == (True, "Lax", True)


@pytest.mark.parametrize("value", ["garbage", "gAAAAA" + "A" * 80, ""])
async def test_a_tampered_cookie_is_an_empty_session_not_an_error(
    client: Client, value: str
) -> None:
    client.session.cookie_jar.update_cookies({COOKIE: value}, client.make_url("/"))
    async with client.get("/api/profile") as response:
        assert response.status == 200
        assert (await response.json())["source"] == "server"


async def test_a_cookie_made_with_another_secret_is_ignored(
    client: Client, make_client: MakeClient
) -> None:
    await save_key(client)
    cookie = {c.key: c.value for c in client.session.cookie_jar}
    other = await make_client(session_secret=Fernet.generate_key().decode())
    other.session.cookie_jar.update_cookies(cookie, other.make_url("/"))
    async with other.get("/api/profile") as response:
        assert (await response.json())["source"] == "server"


async def test_a_cookieless_socket_gets_the_session_cookie_with_the_same_flags(
    make_peer_client: MakeClient,
) -> None:
    """The handshake makes the session its chats are owned by (Durable chats: ownership)."""
    client = await make_peer_client()
    async with client.ws_connect("/api/chat/ws", headers={TEST_SCHEME: "https"}):
        pass
    [morsel] = [m for m in client.session.cookie_jar if m.key == COOKIE]
    assert (morsel["httponly"], morsel["samesite"], morsel["secure"]) == (True, "Lax", True)
    assert int(morsel["max-age"]) > 0
    plain = Fernet(SESSION_SECRET.encode()).decrypt(morsel.value.encode())
    assert b"chat_owner" in plain
