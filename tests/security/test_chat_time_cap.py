"""MAX_CHAT_DURATION_S: an upstream that sends only comment lines keeps its silence timer
happy forever; the cap ends the chat anyway (504), on every transport, and closes upstream."""

from __future__ import annotations

import orjson

from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event

CAP_S = 1.0
CAPPED = "The chat was stopped after 1 seconds, the longest a chat may run here"


def endless_comments() -> Reply:
    steps: list[Step] = []
    for _ in range(300):
        steps += [COMMENT, 0.1]
    return Reply(steps=steps)


async def test_websocket_chat_of_endless_comments_ends_at_the_cap(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(max_chat_duration_s=CAP_S, upstream_timeout_s=2.0)
    fake_openrouter.script(endless_comments())
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(orjson.dumps({"id": "forever", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=10)).data)
    assert (frame["type"], frame["id"], frame["status"]) == ("error", "forever", 504)
    assert frame["message"] == CAPPED
    await fake_openrouter.requests[0].wait_dropped_by_relay(1)


async def test_post_chats_of_endless_comments_end_at_the_cap(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(max_chat_duration_s=CAP_S, upstream_timeout_s=2.0)
    fake_openrouter.script(endless_comments(), endless_comments())
    body = orjson.dumps(chat_body())
    async with client.post("/api/chat/openrouter", data=body) as response:
        # No text came before the cap: the error is the answer's status.
        assert (response.status, await response.json()) == (504, {"message": CAPPED})
    headers = {"Accept": "text/event-stream"}
    async with client.post("/api/chat/openrouter", data=body, headers=headers) as response:
        assert response.status == 504
    for seen in fake_openrouter.requests:
        await seen.wait_dropped_by_relay(1)


async def test_the_cap_cuts_an_answer_that_is_still_flowing(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    steps: list[Step] = []
    for n in range(300):
        steps += [event(chunk(f"t{n} ")), 0.05]
    fake_openrouter.script(Reply(steps=steps))
    client = await make_client(max_chat_duration_s=CAP_S)
    headers = {"Accept": "text/event-stream"}
    async with client.post(
        "/api/chat/openrouter", data=orjson.dumps(chat_body()), headers=headers
    ) as response:
        assert response.status == 200
        body = await response.text()
    assert "event: delta" in body
    last = body.strip().split("\n\n")[-1]
    assert "event: error" in last and '"status":504' in last
    await fake_openrouter.requests[0].wait_dropped_by_relay(1)
