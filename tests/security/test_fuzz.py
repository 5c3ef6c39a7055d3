"""Property tests: whatever a client sends, the answer is a SPEC status or error frame.

Never a 500, never a stack trace, and the server (and the WebSocket) keeps serving after.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter, Reply, sse_reply
from tests.security.conftest import ACCESS_TOKEN

CHAT = "/api/chat/openrouter"
# Statuses SPEC allows when upstream is healthy and the server key is set.
CLIENT_STATUSES = {400, 401, 403, 409, 413, 429}

fuzz = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def nest(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


# Around orjson's limit of 254 levels: read fine, but too deep to be sent upstream again.
deeply_nested = st.integers(240, 300).map(nest)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | deeply_nested,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
content_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.text(max_size=8) | json_values}, optional={"text": json_values}
    ),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant", "tool", "bot", ""])
            | json_values,
            "content": st.text(max_size=40) | content_parts | json_values,
        }
    ),
    max_size=3,
)
chat_shaped = st.fixed_dictionaries(
    {
        "chatSettings": st.fixed_dictionaries(
            {"model": st.text(max_size=210) | json_values},
            optional={
                "temperature": st.floats(-1, 3) | json_values,
                "contextLength": json_values,
            },
        )
        | json_values,
        "messages": messages | json_values,
    }
)
# Mostly valid chats, so the streaming path is fuzzed too and not only the validator.
valid_chats = st.fixed_dictionaries(
    {
        "chatSettings": st.fixed_dictionaries(
            {"model": st.text(min_size=1, max_size=200).filter(str.strip)},
            optional={"temperature": st.floats(0, 2), "includeProfileContext": json_values},
        ),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "user", "assistant", "tool"]),
                    "content": st.text(max_size=40)
                    | st.lists(st.fixed_dictionaries({"type": st.text(max_size=8)}), max_size=2),
                }
            ),
            min_size=1,
            max_size=3,
        ),
    }
)
bodies = valid_chats | chat_shaped | json_values


@pytest.fixture
async def fuzz_client(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> Client:
    def quick(body: dict[str, Any]) -> Reply:
        return sse_reply(["o", "k"])

    monkeypatch.setattr(fake_openrouter, "default_reply", quick)
    return await make_client(chats_per_minute=0)


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


async def assert_spec_answer(response: aiohttp.ClientResponse) -> None:
    body = await response.read()
    event(f"status {response.status}")
    assert b"Traceback" not in body
    if response.status == 200:
        assert response.headers["Content-Type"].startswith(("text/plain", "text/event-stream"))
        return
    assert response.status in CLIENT_STATUSES, (response.status, body)
    answer = orjson.loads(body)
    assert list(answer) == ["message"] and isinstance(answer["message"], str)


async def assert_still_serving(client: Client) -> None:
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert (response.status, await response.text()) == (200, "ok")


@fuzz
@given(body=bodies, sse=st.booleans())
async def test_any_json_body(
    fuzz_client: Client, caplog: pytest.LogCaptureFixture, body: object, sse: bool
) -> None:
    headers = {"Accept": "text/event-stream"} if sse else {}
    async with fuzz_client.post(CHAT, data=json.dumps(body).encode(), headers=headers) as response:
        await assert_spec_answer(response)
    assert_no_errors_logged(caplog)
    await assert_still_serving(fuzz_client)


@fuzz
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "multipart/form-data; boundary=x",
        ]
    ),
    # Bodies that claim a compression they do not have, or one aiohttp cannot undo.
    content_encoding=st.sampled_from(["", "gzip", "deflate", "br", "zstd"]),
)
async def test_any_bytes_body(
    fuzz_client: Client,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    content_encoding: str,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    async with fuzz_client.post(CHAT, data=body, headers=headers) as response:
        if response.headers.get("Content-Type", "").startswith("text/plain") and (
            response.status == 400
        ):
            # Refused by aiohttp's parser while the body came in with the headers: the
            # request never reached the app, so the answer is aiohttp's own text.
            assert content_encoding, await response.text()
            assert b"Traceback" not in await response.read()
        else:
            await assert_spec_answer(response)
    assert_no_errors_logged(caplog)
    await assert_still_serving(fuzz_client)


header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)


@fuzz
@given(
    origin=st.none() | header_values | st.sampled_from(["null", "http://[::1", "http://x:99999"]),
    fetch_site=st.none() | st.sampled_from(["cross-site", "same-site", "same-origin", "none"]),
    authorization=st.none() | header_values.map(lambda v: "Bearer " + v),
    cookie=st.none() | header_values.map(lambda v: "chatrelay_session=" + v),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    path=st.sampled_from(
        [CHAT, "/api/profile", "/api/login", "/api/models", "/api/nope", "/metrics"]
    ),
)
async def test_any_access_headers(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    origin: str | None,
    fetch_site: str | None,
    authorization: str | None,
    cookie: str | None,
    method: str,
    path: str,
) -> None:
    client = await make_client(access_token=ACCESS_TOKEN, chats_per_minute=0)
    headers = {
        name: value
        for name, value in [
            ("Origin", origin),
            ("Sec-Fetch-Site", fetch_site),
            ("Authorization", authorization),
            ("Cookie", cookie),
            ("Access-Control-Request-Method", "POST" if method == "OPTIONS" else None),
        ]
        if value is not None
    }
    async with client.request(method, path, data=b"{}", headers=headers) as response:
        body = await response.read()
        assert response.status < 500 and b"Traceback" not in body, (response.status, body)
        if response.status in (401, 403):
            assert isinstance(orjson.loads(body)["message"], str)
        if response.status == 401 and path != "/api/login":
            assert orjson.loads(body) == {"message": "Access token required"}
    assert_no_errors_logged(caplog)


# --- WebSocket ----------------------------------------------------------------------------

frame_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["chat", "cancel", "delta", "CHAT", ""]) | json_values,
        "id": st.text(max_size=70) | json_values,
        "chatSettings": (valid_chats | chat_shaped).map(lambda c: c["chatSettings"]),
        "messages": messages | json_values,
    },
)
ws_frames = st.one_of(
    frame_objects.map(lambda f: ("text", json.dumps(f))),
    json_values.map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=80).map(lambda t: ("text", t)),
    st.binary(max_size=80).map(lambda b: ("binary", b)),
)


def check_frame(frame: object) -> None:
    assert isinstance(frame, dict)
    kind = frame["type"]
    assert kind in ("delta", "reasoning", "done", "error"), frame
    if kind in ("delta", "reasoning"):
        assert isinstance(frame["id"], str) and isinstance(frame["content"], str)
    elif kind == "done":
        assert isinstance(frame["id"], str)
        assert frame["finish_reason"] is None or isinstance(frame["finish_reason"], str)
        assert frame["usage"] is None or isinstance(frame["usage"], dict)
    else:
        assert frame["id"] is None or isinstance(frame["id"], str)
        assert frame["status"] in CLIENT_STATUSES, frame
        assert isinstance(frame["message"], str) and frame["message"]
        assert "Traceback" not in frame["message"]


class Sentinels:
    count = 0


@fuzz
@given(sequence=st.lists(ws_frames, min_size=1, max_size=4))
async def test_any_websocket_frames(
    fuzz_client: Client,
    caplog: pytest.LogCaptureFixture,
    sequence: list[tuple[str, str | bytes]],
) -> None:
    async with fuzz_client.ws_connect("/api/chat/ws") as ws:
        for kind, data in sequence:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                assert kind == "text"
                await ws.send_str(data)
            # A frame whose one answer we know: once it is back, every earlier frame was read.
            Sentinels.count += 1
            sentinel = f"sentinel-{Sentinels.count}"
            await ws.send_str(orjson.dumps({"id": sentinel}).decode())
            while True:
                message = await ws.receive(timeout=5)
                assert message.type is aiohttp.WSMsgType.TEXT, message
                frame = orjson.loads(message.data)
                check_frame(frame)
                if frame["id"] == sentinel:
                    assert (frame["type"], frame["status"]) == ("error", 400)
                    break
        # The socket still runs a chat to its end.
        await ws.send_str(orjson.dumps({"id": "last-one", **chat_body()}).decode())
        text = ""
        while True:
            frame = orjson.loads((await ws.receive(timeout=5)).data)
            check_frame(frame)
            if frame["id"] != "last-one":
                continue
            if frame["type"] == "delta":
                text += frame["content"]
            elif frame["type"] in ("done", "error"):
                assert (frame["type"], text) == ("done", "ok")
                break
    assert_no_errors_logged(caplog)


@pytest.mark.parametrize("role", [["user"], {"a": 1}])
async def test_role_of_another_type_is_a_400_naming_it(fuzz_client: Client, role: object) -> None:
    body = {"chatSettings": {"model": "m"}, "messages": [{"role": role, "content": "hi"}]}
    async with fuzz_client.post(CHAT, data=orjson.dumps(body)) as response:
        assert response.status == 400
        assert "messages[0].role" in (await response.json())["message"]
    async with fuzz_client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(orjson.dumps({"id": "r", **body}).decode())
        frame = orjson.loads((await ws.receive(timeout=5)).data)
        assert (frame["id"], frame["status"]) == ("r", 400)
        assert "messages[0].role" in frame["message"]
