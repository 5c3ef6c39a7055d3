"""/v1's errors, access, keys and cancelling, as the real openai SDK meets them."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson
import pytest

from server.errors import KEY_NOT_FOUND_MESSAGE
from tests.conftest import SERVER_KEY, USER_KEY, Client, MakeClient
from tests.fake_openrouter import (
    COMMENT,
    FakeOpenRouter,
    Reply,
    chunk,
    error_reply,
    event,
    stream_error_reply,
)
from tests.integration.openai_sdk import completion_body, messages, sdk_for
from tests.waiting import wait_until

MODEL = "openai/gpt-4o-mini"
TOKEN = "access-token-for-v1-tests-0123456789"


def said(error: openai.APIError) -> str:
    """The server's own message: the SDK prefixes `message` with "Error code: N - "."""
    assert isinstance(error.body, dict)
    message = error.body["message"]
    assert isinstance(message, str)
    return message


async def ask(sdk: openai.AsyncOpenAI, *, stream: bool = False, **fields: Any) -> str:
    """One chat's text, streamed or not; `fields` go into the body as they are."""
    if not stream:
        completion = await sdk.chat.completions.create(
            model=MODEL, messages=messages(), extra_body=fields
        )
        return completion.choices[0].message.content or ""
    chunks = await sdk.chat.completions.create(
        model=MODEL, messages=messages(), stream=True, extra_body=fields
    )
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstream_429_is_a_rate_limit_error_with_retry_after(
    client: Client, fake_openrouter: FakeOpenRouter, stream: bool
) -> None:
    fake_openrouter.script(error_reply(429, "Slow down", headers={"Retry-After": "7"}))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, stream=stream)
    error = caught.value
    assert error.status_code == 429 and said(error) == "Slow down"
    assert error.response.headers["retry-after"] == "7"
    assert error.type == "rate_limit_error"


async def test_chats_per_minute_limit_is_a_rate_limit_error(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(chats_per_minute=1)
    async with sdk_for(client) as sdk:
        assert await ask(sdk) == "Hello"
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, stream=True)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert len(fake_openrouter.requests) == 1


async def test_chats_at_once_limit_is_a_rate_limit_error(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(max_chats_per_client=1, first_byte_s=0.05)
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("one")), "hang"]))
    async with sdk_for(client) as sdk:
        running = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk)
        assert said(caught.value).startswith("At most 1 chats may run at once")
        await running.close()
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)

        async def ended() -> bool:
            return "chatrelay_chats_running 0.0" in await (await client.get("/metrics")).text()

        await wait_until(ended, "the first chat ended")
        # Its slot came back with the chat's end.
        assert await ask(sdk) == "Hello"


async def test_missing_key_is_an_authentication_error(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # The Bearer is the access token, so it is no key; neither server nor session holds one.
    client = await make_client(openrouter_api_key=None, access_token=TOKEN)
    async with sdk_for(client, api_key=TOKEN) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ask(sdk)
    assert caught.value.body == {
        "message": KEY_NOT_FOUND_MESSAGE,
        "type": "authentication_error",
        "param": None,
        "code": "key_not_found",
    }
    assert fake_openrouter.requests == []


async def test_callers_bearer_is_their_upstream_key_when_the_server_has_none(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(openrouter_api_key=None)
    async with sdk_for(client, api_key=USER_KEY) as sdk:
        assert await ask(sdk, stream=True) == "Hello"
    assert fake_openrouter.requests[0].headers["Authorization"] == f"Bearer {USER_KEY}"


async def test_a_key_upstream_echoes_is_redacted(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(openrouter_api_key=None)
    fake_openrouter.script(error_reply(401, f"Key {USER_KEY} is not valid"))
    async with sdk_for(client, api_key=USER_KEY) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ask(sdk, stream=True)
    assert said(caught.value) == "Key [redacted] is not valid"
    assert USER_KEY not in caplog.text


async def test_server_key_is_used_over_a_placeholder_bearer(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # SPEC: the key used upstream is the profile's (session, else server); the SDKs need some
    # `api_key`, and scripts on the owner's machine send a placeholder (README: which key).
    async with sdk_for(client, api_key="sk-placeholder") as sdk:
        assert await ask(sdk) == "Hello"
    assert fake_openrouter.requests[0].headers["Authorization"] == f"Bearer {SERVER_KEY}"


async def test_a_personal_token_is_never_sent_upstream_as_a_key(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # An account's personal token opens the door (SPEC "Accounts"); it is nobody's upstream
    # key, and upstream must never see it.
    client = await make_client(openrouter_api_key=None)
    async with sdk_for(client, api_key="crt_personal-token-of-an-account") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ask(sdk)
    assert said(caught.value) == KEY_NOT_FOUND_MESSAGE
    assert fake_openrouter.requests == []


async def test_access_token_is_the_bearer_and_not_a_key(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(access_token=TOKEN)
    async with sdk_for(client, api_key=TOKEN) as sdk:
        assert await ask(sdk) == "Hello"
        assert MODEL in [m.id async for m in sdk.models.list()]
    assert fake_openrouter.requests[0].headers["Authorization"] == f"Bearer {SERVER_KEY}"
    async with sdk_for(client, api_key="wrong-token") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ask(sdk, stream=True)
        assert said(caught.value) == "Access token required"
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()
    assert len(fake_openrouter.requests) == 1


async def test_cross_site_browser_post_is_refused(client: Client) -> None:
    response = await client.post(
        "/v1/chat/completions",
        data=orjson.dumps(completion_body()),
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert (await response.json())["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"temperature": 5}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 10**9}, "n"),
        ({"n": 129}, "n"),
        ({"n": 0}, "n"),
        ({"top_p": 2}, "top_p"),
        ({"stop": 3}, "stop"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"stream_options": "yes"}, "stream_options"),
    ],
)
async def test_invalid_field_is_a_bad_request_naming_it(
    client: Client, fake_openrouter: FakeOpenRouter, fields: dict[str, Any], named: str
) -> None:
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(sdk, **fields)
    assert said(caught.value).startswith(f"{named} must be")
    assert caught.value.type == "invalid_request_error"
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The request body is not valid JSON"),
        (b"[]", "The request body must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model must be"),
        (b'{"model": "m", "messages": []}', "messages must be a non-empty list"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 1}]}', "messages[0].content"),
    ],
)
async def test_malformed_bodies_get_openais_400(client: Client, body: bytes, message: str) -> None:
    response = await client.post("/v1/chat/completions", data=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["message"].startswith(message) and error["type"] == "invalid_request_error"


async def test_body_over_the_limit_is_a_413_in_openais_shape(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(max_body_bytes=1000)
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=MODEL, messages=messages("x" * 2000))
    assert caught.value.status_code == 413
    assert said(caught.value) == "The request body is larger than 1000 bytes"
    assert fake_openrouter.requests == []


async def test_unknown_model_is_a_not_found_error(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(error_reply(404, "No endpoints found for nobody/model"))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await ask(sdk, stream=True)
        assert said(caught.value) == "No endpoints found for nobody/model"
        with pytest.raises(openai.NotFoundError):
            await sdk.embeddings.create(model="x", input="unknown route")


async def test_unreachable_upstream_is_a_502(make_client: MakeClient, unused_tcp_port: int) -> None:
    client = await make_client(openrouter_base_url=f"http://127.0.0.1:{unused_tcp_port}/api/v1")
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await ask(sdk)
    assert caught.value.status_code == 502
    assert said(caught.value).startswith("Could not reach OpenRouter")
    assert caught.value.type == "server_error"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_silent_upstream_is_a_504(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, stream: bool
) -> None:
    client = await make_client(upstream_timeout_s=0.3)
    fake_openrouter.script(Reply(steps=[COMMENT, "hang"]))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await ask(sdk, stream=stream)
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


async def test_error_as_the_streams_first_event_gets_its_status(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply(429, "Provider rate limited"))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, stream=True)
    assert said(caught.value) == "Provider rate limited"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstreams_own_string_code_reaches_the_sdk(
    client: Client, fake_openrouter: FakeOpenRouter, stream: bool
) -> None:
    # OpenAI's own error answer: SDK users branch on its `code` (LangChain trims the
    # history on `context_length_exceeded`).
    too_long = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    fake_openrouter.script(Reply(status=400, steps=[orjson.dumps(too_long)]))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(sdk, stream=stream)
    assert caught.value.code == "context_length_exceeded"
    assert said(caught.value) == "This model's maximum context length is 8192 tokens."


async def test_a_string_code_inside_the_stream_is_passed_on_with_its_status(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(stream_error_reply("insufficient_quota", "You exceeded your quota"))
    async with sdk_for(client) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, stream=True)
    assert caught.value.code == "insufficient_quota"


async def test_error_mid_stream_is_an_error_data_line_then_the_end(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = stream_error_reply(503, "Provider overloaded", tokens=("Par", "tial"))
    fake_openrouter.script(reply, reply)
    async with sdk_for(client) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        seen = ""
        with pytest.raises(openai.APIError) as caught:
            async for c in stream:
                seen += c.choices[0].delta.content or ""
    assert seen == "Partial"
    assert caught.value.message == "Provider overloaded"
    assert caught.value.body == {
        "message": "Provider overloaded",
        "type": "server_error",
        "param": None,
        "code": "upstream_error",
    }
    raw = await (
        await client.post("/v1/chat/completions", data=orjson.dumps(completion_body(stream=True)))
    ).read()
    assert raw.endswith(
        b'data: {"error":{"message":"Provider overloaded","type":"server_error",'
        b'"param":null,"code":"upstream_error"}}\n\n'
    )
    assert b"[DONE]" not in raw


# --- the client leaves -----------------------------------------------------------------------


@pytest.mark.parametrize("first_token", [True, False], ids=["mid-stream", "while-silent"])
async def test_stream_client_leaving_closes_upstream(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, first_token: bool
) -> None:
    client = await make_client(first_byte_s=0.05)
    steps: list[Any] = [COMMENT, event(chunk("one"))] if first_token else [COMMENT]
    fake_openrouter.script(Reply(steps=[*steps, "hang"]))
    async with sdk_for(client) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
        if first_token:
            first = await stream.__anext__()
            assert first.choices[0].delta.content == "one"
        await asyncio.wait_for(fake_openrouter.started.wait(), 1)
        await stream.close()
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)


async def test_non_streaming_client_leaving_closes_upstream(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Reply(steps=[COMMENT, event(chunk("thinking")), "hang"]))
    async with sdk_for(client) as sdk:
        request = asyncio.ensure_future(ask(sdk))
        await asyncio.wait_for(fake_openrouter.started.wait(), 1)
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await fake_openrouter.requests[0].wait_dropped_by_relay(1.0)
