"""The profile routes, the saved key used by both transports, models and health."""

from __future__ import annotations

import orjson

from tests.clients import chat_frame, until_end
from tests.conftest import SERVER_KEY, USER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import MODELS, PRICING, FakeOpenRouter


async def test_health(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert fake_openrouter.requests == [] and fake_openrouter.models_calls == 0


async def test_profile_falls_back_to_the_server_key(client: Client) -> None:
    response = await client.get("/api/profile")
    assert await response.json() == {
        "openrouter_api_key_set": True,
        "source": "server",
        "hint": "…" + SERVER_KEY[-4:],
    }


async def test_no_key_anywhere(make_client: MakeClient) -> None:
    client = await make_client(openrouter_api_key=None)
    response = await client.get("/api/profile")
    assert await response.json() == {"openrouter_api_key_set": False, "source": None, "hint": None}


async def test_saved_key_is_used_by_both_transports_and_never_shown(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    response = await client.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    assert response.status == 200
    assert await response.json() == {
        "openrouter_api_key_set": True,
        "source": "session",
        "hint": "…" + USER_KEY[-4:],
    }
    cookie = response.headers["Set-Cookie"]
    assert USER_KEY not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    await (await client.post("/api/chat/openrouter", data=orjson.dumps(chat_body()))).read()
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("w"))
        await until_end(ws, "w")
    assert [r.headers["Authorization"] for r in fake_openrouter.requests] == [
        f"Bearer {USER_KEY}"
    ] * 2


async def test_delete_and_empty_put_clear_the_saved_key(client: Client) -> None:
    await client.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    response = await client.delete("/api/profile")
    assert (await response.json())["source"] == "server"
    await client.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    response = await client.put("/api/profile", json={"openrouter_api_key": ""})
    assert (await response.json())["source"] == "server"


async def test_a_key_saved_by_one_user_is_not_seen_by_another(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    alice = await make_client(openrouter_api_key=None)
    await alice.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    bob = await make_client(openrouter_api_key=None)
    assert (await (await bob.get("/api/profile")).json())["openrouter_api_key_set"] is False
    response = await bob.post("/api/chat/openrouter", data=orjson.dumps(chat_body()))
    assert response.status == 401


async def test_bad_profile_bodies_are_400(client: Client) -> None:
    for body, message in [
        (b"nope", "The request body is not valid JSON"),
        (b"[]", "The request body must be a JSON object"),
        (b'{"openrouter_api_key": 5}', "openrouter_api_key must be a string"),
        (b'{"openrouter_api_key": "sk or"}', "openrouter_api_key must be at most"),
        (b'{"openrouter_api_key": "sk\\nX-Evil: 1"}', "openrouter_api_key must be at most"),
    ]:
        response = await client.put("/api/profile", data=body)
        assert response.status == 400, body
        assert (await response.json())["message"].startswith(message)


async def test_models_are_reduced_and_cached(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    for _ in range(3):
        response = await client.get("/api/models")
        assert response.status == 200
        assert await response.json() == {
            "data": [
                {
                    **{k: m[k] for k in ("id", "name", "context_length")},
                    "pricing": PRICING[str(m["id"])],
                }
                for m in MODELS
            ]
        }
    assert fake_openrouter.models_calls == 1


async def test_models_error_is_reported(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, unused_tcp_port: int
) -> None:
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{unused_tcp_port}/v1")
    response = await client.get("/api/models")
    assert response.status == 502
    assert (await response.json())["message"].startswith("Could not reach OpenRouter: ")


async def test_unknown_api_route_is_json_404(client: Client) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert "message" in await response.json()


async def test_hint_is_the_last_four_characters_of_any_key(client: Client) -> None:
    response = await client.put("/api/profile", json={"openrouter_api_key": "short-k1"})
    assert (await response.json())["hint"] == "…t-k1"
