"""POST /api/chat/openrouter over a real socket, against the real fake OpenRouter."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import aiohttp
import orjson
import pytest

from server.errors import KEY_NOT_FOUND_MESSAGE
from server.relay.upstream_client import OpenRouterClient
from tests.clients import parse_sse
from tests.conftest import SERVER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import (
    COMMENT,
    FakeOpenRouter,
    Reply,
    Step,
    chunk,
    error_reply,
    event,
    sse_reply,
    stream_error_reply,
)

ROUTE = "/api/chat/openrouter"


async def post(client: Client, body: object, **kwargs: Any) -> aiohttp.ClientResponse:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(ROUTE, data=data, **kwargs)


async def test_plain_text_stream_is_the_concatenated_deltas(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(sse_reply(["Hel", "lo", ", wörld ", "🌍"], delay_s=0.01))
    response = await post(client, chat_body())
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert await response.text() == "Hello, wörld 🌍"


async def test_upstream_gets_the_request_chatbot_ui_would_send(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    body = chat_body("Hi there")
    await (await post(client, body)).read()
    seen = fake_openrouter.requests[0]
    assert seen.headers["Authorization"] == f"Bearer {SERVER_KEY}"
    assert seen.headers["HTTP-Referer"] == "https://chatrelay.test"
    assert seen.headers["X-Title"] == "chatrelay"
    assert seen.body == {
        "model": "openai/gpt-4o-mini",
        "messages": body["messages"],
        "temperature": 0.7,
        "stream": True,
        "usage": {"include": True},
        "stream_options": {"include_usage": True},
    }


async def test_body_without_content_type_is_accepted(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # chatbot-ui's fetch posts a JSON string with no Content-Type header.
    response = await client.post(ROUTE, data=orjson.dumps(chat_body("no type")), headers={})
    assert response.status == 200
    assert await response.text() == "no type"


async def test_each_delta_is_flushed_as_it_arrives(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("first")), "hang"]))
    response = await post(client, chat_body())
    assert response.status == 200
    first = await asyncio.wait_for(response.content.readany(), timeout=2)
    assert first == b"first"
    assert not fake_openrouter.requests[0].ended.is_set()
    response.close()


async def test_sse_mode_sends_deltas_reasoning_and_done(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = sse_reply(["A", "B"], delay_s=0.01)
    reply.steps.insert(1, event(chunk(reasoning="hmm")))
    fake_openrouter.script(reply)
    response = await post(client, chat_body(), headers={"Accept": "text/event-stream"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(await response.text())
    assert events[0] == ("reasoning", {"seq": 1, "content": "hmm"})
    assert "".join(d["content"] for kind, d in events if kind == "delta") == "AB"
    # Every event carries its seq (`id:`), one more each, the final event included.
    assert [d["seq"] for _, d in events] == list(range(1, len(events) + 1))
    assert events[-1][0] == "done"
    assert events[-1][1]["finish_reason"] == "stop"
    assert events[-1][1]["usage"]["completion_tokens"] == 3
    assert [kind for kind, _ in events].count("done") == 1


# --- errors before streaming: a status and {"message"} --------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The request body is not valid JSON"),
        (b"[1, 2]", "The request body must be a JSON object"),
        (b'"text"', "The request body must be a JSON object"),
    ],
)
async def test_body_not_a_json_object_is_400(client: Client, body: bytes, message: str) -> None:
    response = await post(client, body)
    assert response.status == 400
    assert await response.json() == {"message": message}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": ""}, "chatSettings.model"),
        ({"temperature": 3}, "chatSettings.temperature"),
        ({"temperature": "hot"}, "chatSettings.temperature"),
    ],
)
async def test_invalid_field_is_400_naming_it(
    client: Client, fake_openrouter: FakeOpenRouter, overrides: dict[str, Any], field: str
) -> None:
    response = await post(client, chat_body(**overrides))
    assert response.status == 400
    assert (await response.json())["message"].startswith(field)
    assert fake_openrouter.requests == []


async def test_invalid_messages_are_400(client: Client) -> None:
    response = await post(client, {"chatSettings": {"model": "m"}, "messages": "hi"})
    assert response.status == 400
    assert await response.json() == {"message": "messages must be a non-empty list"}


async def test_body_over_max_body_bytes_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=1024 * 1024)
    body = orjson.dumps(chat_body("x" * (1024 * 1024 + 1)))
    response = await client.post(ROUTE, data=io.BytesIO(body))
    assert response.status == 413
    assert "larger than" in (await response.json())["message"]


async def test_missing_key_is_401_with_the_seed_message(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(openrouter_api_key=None)
    response = await post(client, chat_body())
    assert response.status == 401
    assert await response.json() == {"message": KEY_NOT_FOUND_MESSAGE}
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Invalid model"),
        (401, "No auth credentials found"),
        (402, "Insufficient credits"),
        (403, "Input flagged"),
        (500, "Internal error"),
        (503, "No provider available"),
    ],
)
async def test_upstream_error_status_and_message_pass_through(
    client: Client, fake_openrouter: FakeOpenRouter, status: int, message: str
) -> None:
    fake_openrouter.script(error_reply(status, message))
    response = await post(client, chat_body())
    assert response.status == status
    assert await response.json() == {"message": message}


async def test_upstream_429_passes_retry_after_on(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(error_reply(429, "Rate limit exceeded", {"Retry-After": "30"}))
    response = await post(client, chat_body())
    assert response.status == 429
    assert response.headers["Retry-After"] == "30"
    assert await response.json() == {"message": "Rate limit exceeded"}


async def test_unreachable_upstream_is_502(make_client: MakeClient, unused_tcp_port: int) -> None:
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{unused_tcp_port}/api/v1")
    response = await post(client, chat_body())
    assert response.status == 502
    message = (await response.json())["message"]
    assert message.startswith("Could not reach OpenRouter: ")
    assert SERVER_KEY not in message and "Traceback" not in message


async def test_silent_upstream_is_504(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(upstream_timeout_s=0.3)
    fake_openrouter.script(Reply(steps=["hang"]))
    response = await post(client, chat_body())
    assert response.status == 504
    assert (await response.json())["message"] == "OpenRouter sent nothing for 0.3 seconds"


async def test_comments_keep_a_thinking_model_alive(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # 1.5 s of comments against a 1 s silence limit, a comment every 0.5 s: the margin
    # holds on a loaded machine (0.2 s gaps against 0.3 s did not always).
    client = await make_client(upstream_timeout_s=1.0)
    steps: list[Any] = [COMMENT, 0.5, COMMENT, 0.5, COMMENT, 0.5, event(chunk("late"))]
    fake_openrouter.script(Reply(steps=[*steps, event("[DONE]")]))
    response = await post(client, chat_body())
    assert response.status == 200
    assert await response.text() == "late"


async def test_malformed_sse_is_502(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, b"data: {broken\n\n"]))
    response = await post(client, chat_body())
    assert response.status == 502
    assert await response.json() == {"message": "OpenRouter sent an event that is not valid JSON"}


async def test_error_as_first_and_only_event_gets_its_own_status(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply(429, "Rate limited by provider"))
    response = await post(client, chat_body())
    assert response.status == 429
    assert await response.json() == {"message": "Rate limited by provider"}


@pytest.mark.parametrize(
    "code",
    # "²" is a digit to str.isdigit but not to int(); 5,000 digits are past int()'s limit.
    ["server_error", "²", "9" * 5000, 200, 999],
    ids=["word", "superscript", "huge", "200", "999"],
)
async def test_error_event_with_a_non_http_code_is_502(
    client: Client, fake_openrouter: FakeOpenRouter, code: object
) -> None:
    fake_openrouter.script(stream_error_reply(code, "Provider disconnected unexpectedly"))  # type: ignore[arg-type]
    response = await post(client, chat_body())
    assert response.status == 502
    assert await response.json() == {"message": "Provider disconnected unexpectedly"}


async def test_unexpected_failure_is_500_with_details_only_in_the_log(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(OpenRouterClient, "open_chat", explode)
    response = await post(client, chat_body())
    assert response.status == 500
    assert await response.json() == {"message": "An unexpected error occurred"}
    assert "database on fire" in caplog.text


# --- errors after the 200 --------------------------------------------------------------------


async def test_error_mid_stream_breaks_the_plain_body(
    client: Client, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openrouter.script(stream_error_reply(502, "Provider disconnected", tokens=("Par", "tial")))
    response = await post(client, chat_body())
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert "Provider disconnected" in caplog.text


async def test_upstream_drop_mid_stream_breaks_the_plain_body(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("Par")), 0.05, "drop"]))
    response = await post(client, chat_body())
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


async def test_error_mid_stream_is_an_sse_error_event(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply(503, "Provider overloaded", tokens=("Par", "tial")))
    response = await post(client, chat_body(), headers={"Accept": "text/event-stream"})
    assert response.status == 200
    events = parse_sse(await response.text())
    assert "".join(d["content"] for kind, d in events if kind == "delta") == "Partial"
    seq = len(events)
    assert events[-1] == ("error", {"seq": seq, "status": 503, "message": "Provider overloaded"})
    assert [kind for kind, _ in events].count("error") == 1
    assert "done" not in [kind for kind, _ in events]


async def test_silent_model_gets_its_200_after_first_byte_timeout(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(first_byte_s=0.2, upstream_timeout_s=30.0)
    thinking_done = asyncio.Event()  # the model stays silent until the test has its 200
    steps: list[Step] = [COMMENT, thinking_done, event(chunk("thought")), event("[DONE]")]
    fake_openrouter.script(Reply(steps=steps))
    response = await asyncio.wait_for(post(client, chat_body()), timeout=10)
    assert response.status == 200
    thinking_done.set()
    assert await response.text() == "thought"


# --- the client leaves -----------------------------------------------------------------------


@pytest.mark.parametrize("first_token", [True, False], ids=["mid-stream", "while-silent"])
async def test_client_leaving_closes_upstream(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, first_token: bool
) -> None:
    client = await make_client(first_byte_s=0.05)
    steps: list[Any] = [COMMENT, event(chunk("one"))] if first_token else [COMMENT]
    fake_openrouter.script(Reply(steps=[*steps, "hang"]))
    response = await post(client, chat_body())
    assert response.status == 200
    if first_token:
        assert await response.content.readany() == b"one"
    await asyncio.wait_for(fake_openrouter.started.wait(), 1)
    response.close()
    seen = fake_openrouter.requests[0]
    await seen.wait_dropped_by_relay(1.0)


async def test_one_log_line_per_chat(
    client: Client, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await (await post(client, chat_body("private words"))).read()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat end")]
    assert len(lines) == 1
    assert "transport=http" in lines[0] and "status=200" in lines[0]
    assert "private words" not in caplog.text and SERVER_KEY not in caplog.text


async def test_finished_chats_reuse_the_upstream_connection_and_cancelled_ones_do_not(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # Reuse saves a TCP and TLS handshake to OpenRouter per chat; a connection whose answer
    # was cut short must be dropped so the provider stops generating.
    client = await make_client(first_byte_s=0.05)
    for _ in range(2):
        # The body's last chunk comes a moment after [DONE], as over a real network.
        reply = sse_reply(["again"])
        fake_openrouter.script(Reply(steps=[*reply.steps, 0.05]))
        assert await (await post(client, chat_body())).text() == "again"
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("one")), "hang"]))
    response = await post(client, chat_body())
    assert await response.content.readany() == b"one"
    response.close()
    await fake_openrouter.requests[2].wait_dropped_by_relay()
    assert await (await post(client, chat_body("fresh"))).text() == "fresh"
    first, second, cut, after = (r.peer for r in fake_openrouter.requests)
    assert first == second == cut
    assert after != cut


@pytest.mark.parametrize("accept", ["text/plain", "text/event-stream"])
async def test_the_body_ends_at_done_even_if_upstream_lingers(
    client: Client, fake_openrouter: FakeOpenRouter, accept: str
) -> None:
    # Some servers keep their body open a while after [DONE]; the client must not wait.
    reply = sse_reply(["quick"])
    fake_openrouter.script(Reply(steps=[*reply.steps, 3.0]))
    response = await post(client, chat_body(), headers={"Accept": accept})
    body = await asyncio.wait_for(response.read(), timeout=0.8)
    assert b"quick" in body
