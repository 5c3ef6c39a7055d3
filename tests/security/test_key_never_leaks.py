"""A whole session, then every response, frame and log line is searched for the keys."""

from __future__ import annotations

import logging

import aiohttp
import orjson
import pytest

from tests.clients import ws_chat
from tests.conftest import SERVER_KEY, USER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import (
    FakeOpenRouter,
    Reply,
    error_reply,
    event,
    sse_reply,
    stream_error_reply,
)
from tests.security.conftest import ACCESS_TOKEN

SECRETS = {"user key": USER_KEY, "server key": SERVER_KEY, "access token": ACCESS_TOKEN}
CHAT = "/api/chat/openrouter"


class Transcript:
    """Everything the server said to the client, as text."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def http(self, response: aiohttp.ClientResponse) -> bytes:
        self.parts.append(f"{response.status} {response.reason}")
        self.parts += [f"{k}: {v}" for k, v in response.headers.items()]
        try:
            body = await response.read()
        except aiohttp.ClientPayloadError:
            body = b"(body cut: the failure after the 200)"
        self.parts.append(body.decode("utf-8", "replace"))
        return body


def echoing(key: str) -> list[Reply]:
    """Upstream failures whose messages carry the key they were sent, as some providers do."""
    return [
        error_reply(401, f"Incorrect API key provided: {key}"),
        stream_error_reply(403, f"Key {key} is disabled"),
        stream_error_reply(500, f"internal: {key}", tokens=("partial ",)),
        Reply(status=502, steps=[f"<html>bad gateway for {key}</html>".encode()]),
        Reply(steps=[event(f'{{"oops": "{key}"')]),
    ]


async def run_session(client: Client, fake: FakeOpenRouter, t: Transcript, key: str) -> None:
    for sse in (False, True):
        fake.script(sse_reply(["fine"]), *echoing(key))
        headers = {"Accept": "text/event-stream"} if sse else {}
        for _ in range(6):
            async with client.post(CHAT, data=orjson.dumps(chat_body()), headers=headers) as r:
                await t.http(r)
    fake.script(sse_reply(["fine"]), *echoing(key))
    async with client.ws_connect("/api/chat/ws") as ws:
        t.parts += [f"{k}: {v}" for k, v in ws._response.headers.items()]
        chats = [await ws_chat(ws, f"c{n}", "tell me", seen=t.parts) for n in range(6)]
        statuses = [frames[-1].get("status") for frames in chats]
    assert statuses == [None, 401, 403, 500, 502, 502]
    # The OpenAI-compatible route, its answer assembled and streamed.
    for stream in (False, True):
        fake.script(sse_reply(["fine"]), *echoing(key))
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        for _ in range(6):
            async with client.post("/v1/chat/completions", data=orjson.dumps(body)) as r:
                await t.http(r)
    async with client.get("/v1/models") as r:
        await t.http(r)
    async with client.get("/api/models") as r:
        await t.http(r)
    async with client.get("/api/profile") as r:
        await t.http(r)


async def test_no_key_or_token_in_any_response_frame_or_log_line(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    t = Transcript()
    client = await make_client(access_token=ACCESS_TOKEN)
    async with client.post("/api/login", data=orjson.dumps({"token": ACCESS_TOKEN})) as r:
        assert await t.http(r) == b""
    # First on the server's key, then on the user's own, then cleared again.
    await run_session(client, fake_openrouter, t, SERVER_KEY)
    async with client.put("/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY})) as r:
        assert orjson.loads(await t.http(r))["source"] == "session"
    await run_session(client, fake_openrouter, t, USER_KEY)
    async with client.delete("/api/profile") as r:
        assert orjson.loads(await t.http(r))["source"] == "server"
    bearer = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    async with client.get("/api/profile", headers=bearer) as r:
        await t.http(r)

    # The keys did travel: upstream saw both, so finding none below means something.
    used = {seen.headers.get("Authorization") for seen in fake_openrouter.requests}
    assert used == {f"Bearer {SERVER_KEY}", f"Bearer {USER_KEY}"}
    said = "\n".join(t.parts)
    assert "[redacted]" in said  # the echoing upstream messages reached the client, cleaned
    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert "chat end" in logged
    for name, secret in SECRETS.items():
        assert secret not in said, f"the {name} was sent to the client"
        assert secret not in logged, f"the {name} was logged"
        assert secret[-12:] not in said + logged, f"part of the {name} leaked"
