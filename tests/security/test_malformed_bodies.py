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
