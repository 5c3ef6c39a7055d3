"""A body that cannot be read (broken compression or chunked framing) is the client's 400,
not a 500 with an ERROR traceback, and breaks nothing else."""

from __future__ import annotations

import logging

import orjson
import pytest

from tests.conftest import Client, chat_body


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_inflate_is_a_400(
    client: Client, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    headers = {"Content-Encoding": encoding}
    async with client.post(
        "/api/chat/openrouter", data=b"not compressed at all", headers=headers
    ) as response:
        assert response.status == 400
        message = (await response.json())["message"]
    assert message == f"The request body is malformed: Can not decode content-encoding: {encoding}"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with client.post("/api/chat/openrouter", data=orjson.dumps(chat_body())) as response:
        assert (response.status, await response.text()) == (200, "Hello")


async def test_a_number_too_large_for_a_double_is_a_400_naming_its_field(client: Client) -> None:
    # Valid JSON that orjson refuses (1e400 is past a double): the field's own check answers.
    body = orjson.dumps(chat_body()).replace(b'"temperature":0.7', b'"temperature":1e400')
    async with client.post("/api/chat/openrouter", data=body) as response:
        assert response.status == 400
        message = (await response.json())["message"]
    assert message == "chatSettings.temperature must be a number from 0 to 2"
    nan = body.replace(b"1e400", b"NaN")
    async with client.post("/api/chat/openrouter", data=nan) as response:
        assert (response.status, await response.json()) == (
            400,
            {"message": "The request body is not valid JSON"},
        )
