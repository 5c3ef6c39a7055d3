"""Cross-origin front ends (ALLOWED_ORIGINS): they can read a 429's wait and the chat id,
and load the models list; any other origin gets no grant."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDictProxy

from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter, error_reply
from tests.security.conftest import ACCESS_TOKEN

FRIEND = "https://friend.example"
EVIL = "https://evil.example"
CHAT = "/api/chat/openrouter"
BEARER = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


def exposed(headers: CIMultiDictProxy[str]) -> set[str]:
    value = headers.get("Access-Control-Expose-Headers", "")
    return {name.strip().lower() for name in value.split(",") if name.strip()}


async def test_a_cross_origin_page_can_read_retry_after_and_the_chat_id(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}))
    fake_openrouter.script(error_reply(429, "Slow down", headers={"Retry-After": "9"}))
    headers = {"Origin": FRIEND}
    async with client.post(CHAT, data=orjson.dumps(chat_body()), headers=headers) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "9")
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
        assert {"retry-after", "x-chat-id"} <= exposed(response.headers)
    async with client.post(CHAT, data=orjson.dumps(chat_body("ok")), headers=headers) as response:
        assert (response.status, await response.text()) == (200, "ok")
        assert {"retry-after", "x-chat-id"} <= exposed(response.headers)


async def test_the_models_list_answers_an_allowed_origin_with_cors(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}), access_token=ACCESS_TOKEN)
    preflight = {
        "Origin": FRIEND,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with client.options("/api/models", headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
        assert "GET" in response.headers["Access-Control-Allow-Methods"]
        assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    async with client.get("/api/models", headers={"Origin": FRIEND, **BEARER}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        models = (await response.json())["data"]
    assert models[0]["pricing"] == {
        "prompt": "0.00000015",
        "completion": "0.0000006",
        "request": "0",
    }


@pytest.mark.parametrize(("origin", "method"), [(EVIL, "GET"), (FRIEND, "POST")])
async def test_the_models_list_grants_nothing_else(
    make_client: MakeClient, origin: str, method: str
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}))
    preflight = {"Origin": origin, "Access-Control-Request-Method": method}
    async with client.options("/api/models", headers=preflight) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with client.get("/api/models", headers={"Origin": EVIL}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert not exposed(response.headers)


async def test_a_cross_origin_page_can_resume_and_stop_the_chat_whose_id_it_read(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(allowed_origins=frozenset({FRIEND}))
    async with client.post(CHAT, json=chat_body("a b c"), headers={"Origin": FRIEND}) as response:
        chat_id = response.headers["X-Chat-Id"]
        await response.read()
    events = f"/api/chats/{chat_id}/events"
    # An EventSource reconnecting sends Last-Event-ID, which is not a safelisted header.
    preflight = {
        "Origin": FRIEND,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    async with client.options(events, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
        assert "last-event-id" in response.headers["Access-Control-Allow-Headers"].lower()
    resume = {"Origin": FRIEND, "Last-Event-ID": "1"}
    async with client.get(events, headers=resume) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
        assert "event: done" in await response.text()
    stop = {"Origin": FRIEND, "Access-Control-Request-Method": "DELETE"}
    async with client.options(f"/api/chats/{chat_id}", headers=stop) as response:
        assert response.status == 204
        assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
    async with client.delete(f"/api/chats/{chat_id}", headers={"Origin": FRIEND}) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == FRIEND
    async with client.options(events, headers={**preflight, "Origin": EVIL}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
