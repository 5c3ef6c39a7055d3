"""OpenRouter's options and big bodies over real sockets: checked, then sent upstream as given."""

from __future__ import annotations

import base64
import io
from typing import Any

import orjson

from tests.clients import chat_frame, receive, until_end
from tests.conftest import Client, chat_body
from tests.fake_openrouter import FakeOpenRouter

ROUTE = "/api/chat/openrouter"
OPTIONS: dict[str, Any] = {
    "max_tokens": 64,
    "top_p": 0.25,
    "reasoning": {"effort": "low"},
    "provider": {"only": ["openai"], "sort": "price"},
}


def photo_message(size_bytes: int) -> dict[str, object]:
    """What chatbot-ui sends for an attached photo: a data URL in an image_url part."""
    data = base64.b64encode(b"\xff\xd8" + b"\x00" * size_bytes).decode()
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this photo?"},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
        ],
    }


async def test_options_reach_upstream_from_both_transports(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await (await client.post(ROUTE, data=orjson.dumps(chat_body("Hi", **OPTIONS)))).read()
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("o", "Hi", **OPTIONS))
        await until_end(ws, "o")
    for seen in fake_openrouter.requests:
        assert {k: seen.body[k] for k in OPTIONS} == OPTIONS


async def test_a_bad_option_is_400_naming_it_on_both_transports(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    response = await client.post(ROUTE, data=orjson.dumps(chat_body(top_p=3)))
    assert response.status == 400
    assert await response.json() == {"message": "chatSettings.top_p must be a number from 0 to 1"}
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("b", max_tokens=0))
        frame = await receive(ws)
    assert (frame["type"], frame["id"], frame["status"]) == ("error", "b", 400)
    assert frame["message"] == "chatSettings.max_tokens must be an integer of at least 1"
    assert fake_openrouter.requests == []


async def test_a_photo_of_several_mebibytes_is_accepted_by_default(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    body = chat_body("ignored")
    body["messages"] = [photo_message(3 * 1024 * 1024)]
    encoded = orjson.dumps(body)
    assert len(encoded) > 4 * 1024 * 1024
    response = await client.post(ROUTE, data=io.BytesIO(encoded))
    assert response.status == 200, await response.text()
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(orjson.dumps({"id": "p", **body}).decode())
        assert (await until_end(ws, "p"))[-1]["type"] == "done"
    for seen in fake_openrouter.requests:
        assert seen.body["messages"] == body["messages"]
