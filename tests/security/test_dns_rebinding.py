"""DNS rebinding: a loopback-bound server answers only loopback Host names and the ones it was
told about; any other Host gets 421 before any route (issue 21.5).

The attack on record: the default local set-up (loopback bind, server key, no ACCESS_TOKEN)
with the attacker's name as both Host and Origin; `/v1`, the POST and the WebSocket all
passed and spent the server key.
"""

from __future__ import annotations

import orjson
import pytest
from aiohttp import WSServerHandshakeError

from server.config import Settings
from server.web.hosts import known_hosts
from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter

ATTACKER = "rebind.attacker.example"
CHAT = "/api/chat/openrouter"


def as_site(name: str, port: int | None) -> dict[str, str]:
    """What a page on `name` that rebound its DNS to 127.0.0.1 sends."""
    host = f"{name}:{port}" if port else name
    return {"Host": host, "Origin": f"http://{host}"}


async def status_of(client: Client, method: str, path: str, headers: dict[str, str]) -> int:
    body = orjson.dumps(chat_body()) if method == "POST" else None
    async with client.request(method, path, data=body, headers=headers) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", CHAT),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/api/profile"),
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/healthz"),
        ("GET", "/no/such/route"),
    ],
)
async def test_another_host_is_421_on_every_route(
    client: Client, fake_openrouter: FakeOpenRouter, method: str, path: str
) -> None:
    assert await status_of(client, method, path, as_site(ATTACKER, client.port)) == 421
    assert fake_openrouter.requests == []


async def test_the_websocket_handshake_is_421_and_v1_says_so_in_openais_shape(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    with pytest.raises(WSServerHandshakeError) as caught:
        await client.ws_connect("/api/chat/ws", headers=as_site(ATTACKER, client.port))
    assert caught.value.status == 421
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    response = await client.post(
        "/v1/chat/completions", data=orjson.dumps(body), headers=as_site(ATTACKER, None)
    )
    assert response.status == 421
    error = (await response.json())["error"]
    assert "ALLOWED_HOSTS" in error["message"] and ATTACKER not in error["message"]
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    "name", ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "[::1]", "app.localhost"]
)
async def test_loopback_names_are_answered_with_any_port(client: Client, name: str) -> None:
    for port in (client.port, 80, None):
        async with client.post(
            CHAT, data=orjson.dumps(chat_body()), headers=as_site(name, port)
        ) as r:
            assert (r.status, await r.text()) == (200, "Hello")


async def test_names_it_was_told_about_are_answered(make_client: MakeClient) -> None:
    client = await make_client(
        allowed_hosts=frozenset({"chat.example.org", " Box.Lan "}),
        allowed_origins=frozenset({"https://front.example.com"}),
        app_url="https://relay.example.net/app",
    )
    for name in ("chat.example.org", "box.lan", "relay.example.net", "front.example.com"):
        async with client.get("/healthz", headers={"Host": f"{name}:8080"}) as response:
            assert response.status == 200, name
    async with client.get("/healthz", headers={"Host": ATTACKER}) as response:
        assert response.status == 421


async def test_allowed_hosts_star_and_a_public_bind_answer_any_name(
    make_client: MakeClient,
) -> None:
    for overrides in (
        {"allowed_hosts": frozenset({"*"})},
        {"host": "0.0.0.0", "open_access": True},
    ):
        client = await make_client(**overrides)
        async with client.get("/healthz", headers={"Host": ATTACKER}) as response:
            assert response.status == 200, overrides
        await client.close()


def test_allowed_hosts_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"ALLOWED_HOSTS": "a.example, B.example:8080,"})
    assert known_hosts(settings) == {"a.example", "b.example"}
