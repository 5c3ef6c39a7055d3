"""JSON nested deeper than orjson can write again (254 levels) is a 400 that says so, on
every route that reads a body and on the WebSocket, never a 500."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import Client, chat_body

NESTED_TOO_DEEPLY = "nested too deeply: at most 254 levels of arrays and objects"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_chat(content_levels: int) -> str:
    """A chat body whose one message's content is nested `content_levels` deep."""
    return (
        '{"chatSettings": {"model": "m"}, "messages": [{"role": "user", "content": '
        + nested(content_levels)
        + "}]}"
    )


@pytest.mark.parametrize("levels", [253, 300, 1000])
async def test_deep_chat_body_is_a_400_naming_the_problem(client: Client, levels: int) -> None:
    async with client.post("/api/chat/openrouter", data=deep_chat(levels)) as response:
        assert response.status == 400
        assert (await response.json())["message"] == "The request body is " + NESTED_TOO_DEEPLY


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/profile"), ("POST", "/v1/chat/completions")],
)
async def test_deep_bodies_are_400s_on_every_route(client: Client, method: str, path: str) -> None:
    body = '{"token": ' + nested(260) + ', "model": "m", "messages": ' + nested(260) + "}"
    async with client.request(method, path, data=body) as response:
        assert response.status == 400, await response.text()
        assert NESTED_TOO_DEEPLY in await response.text()


async def test_nesting_that_can_be_sent_upstream_is_served(client: Client) -> None:
    # 250 levels of content sit 253 deep in the body: within orjson's limit.
    async with client.post("/api/chat/openrouter", data=deep_chat(250)) as response:
        assert response.status == 400  # the content is not a list of parts ...
        message = (await response.json())["message"]
        assert message == "messages[0].content[0] must be an object with a string type"


async def test_deep_frame_gets_an_error_frame_and_the_socket_goes_on(client: Client) -> None:
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(deep_chat(300))
        frame = orjson.loads((await ws.receive(timeout=5)).data)
        assert frame == {
            "type": "error",
            "id": None,
            "status": 400,
            "message": "The frame is " + NESTED_TOO_DEEPLY,
        }
        await ws.send_str(orjson.dumps({"id": "after", **chat_body()}).decode())
        text = ""
        while (frame := orjson.loads((await ws.receive(timeout=5)).data))["type"] == "delta":
            text += frame["content"]
        assert (frame["type"], frame["id"], text) == ("done", "after", "Hello")
