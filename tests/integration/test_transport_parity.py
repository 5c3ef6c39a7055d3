"""One scripted reply through both transports: the same events, the same text."""

from __future__ import annotations

import orjson

from tests.clients import chat_frame, parse_sse, until_end
from tests.conftest import Client, chat_body
from tests.fake_openrouter import FakeOpenRouter, chunk, event, sse_reply


def scripted() -> list[object]:
    reply = sse_reply(["Só", " ", "🙂", " fin"], delay_s=0.02)
    reply.steps.insert(1, event(chunk(reasoning="plan")))
    reply.steps.insert(2, 0.02)
    return [reply]


async def test_sse_and_websocket_carry_the_same_events(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(*scripted(), *scripted(), *scripted())  # type: ignore[arg-type]
    response = await client.post(
        "/api/chat/openrouter",
        data=orjson.dumps(chat_body()),
        headers={"Accept": "text/event-stream"},
    )
    over_sse = [(kind, data) for kind, data in parse_sse(await response.text())]
    # SSE carries each event's seq as its `id:` line, WebSocket as a field.
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("p"))
        over_ws = [
            (f.pop("type"), {k: v for k, v in f.items() if k != "id"})
            for f in await until_end(ws, "p")
        ]
    plain = await (await client.post("/api/chat/openrouter", data=orjson.dumps(chat_body()))).text()
    assert over_sse == over_ws
    assert over_sse[0] == ("reasoning", {"seq": 1, "content": "plan"})
    assert plain == "".join(d["content"] for kind, d in over_ws if kind == "delta") == "Só 🙂 fin"
