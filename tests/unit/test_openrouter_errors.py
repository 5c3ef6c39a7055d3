"""The upstream client's error paths, with aioresponses standing in for the network."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aioresponses import aioresponses

from server.config import Settings
from server.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from server.relay.upstream_client import OpenRouterClient
from server.relay.wire import Batch

BASE = "https://openrouter.test/api/v1"
CHAT_URL = f"{BASE}/chat/completions"
KEY = "sk-or-v1-aioresponses-key-7777"


class ResponseWithWriter(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds ClientResponse without aiohttp 3.14's `stream_writer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", Mock(output_size=0))
        super().__init__(*args, **kwargs)


@pytest.fixture
async def upstream() -> AsyncIterator[OpenRouterClient]:
    async with OpenRouterClient(Settings(openrouter_base_url=BASE)) as client:
        yield client


@dataclass(frozen=True, slots=True)
class Mocked:
    """aioresponses' routes, each answered with a response aiohttp 3.14 can read."""

    mock: aioresponses

    def post(self, url: str, **kwargs: Any) -> None:
        self.mock.post(url, response_class=ResponseWithWriter, **kwargs)

    def get(self, url: str, **kwargs: Any) -> None:
        self.mock.get(url, response_class=ResponseWithWriter, **kwargs)


@pytest.fixture
def mocked() -> Iterator[Mocked]:
    # aioresponses 0.7.9, the newest, builds ClientResponse without the `stream_writer`
    # aiohttp 3.14 requires (aioresponses#289): every response is built with one here.
    with aioresponses() as mock:
        yield Mocked(mock)


async def open_and_read(upstream: OpenRouterClient) -> list[Batch]:
    async with upstream.open_chat(KEY, {"model": "m"}) as batches:
        return [batch async for batch in batches]


async def test_error_body_gives_status_and_message(
    upstream: OpenRouterClient, mocked: Mocked
) -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits"}}
    mocked.post(CHAT_URL, status=402, payload=body)
    with pytest.raises(UpstreamError) as caught:
        await open_and_read(upstream)
    assert (caught.value.status, caught.value.message) == (402, "Insufficient credits")


async def test_429_keeps_retry_after(upstream: OpenRouterClient, mocked: Mocked) -> None:
    mocked.post(
        CHAT_URL,
        status=429,
        payload={"error": {"code": 429, "message": "Rate limit exceeded"}},
        headers={"Retry-After": "17"},
    )
    with pytest.raises(UpstreamError) as caught:
        await open_and_read(upstream)
    error = caught.value
    assert (error.status, error.message, error.retry_after) == (429, "Rate limit exceeded", 17)
    assert error.to_dict()["retry_after"] == 17


async def test_non_json_error_body_still_says_the_status(
    upstream: OpenRouterClient, mocked: Mocked
) -> None:
    mocked.post(CHAT_URL, status=503, body="<html>oops</html>")
    with pytest.raises(UpstreamError) as caught:
        await open_and_read(upstream)
    assert (caught.value.status, caught.value.message) == (
        503,
        "OpenRouter answered with status 503",
    )


async def test_echoed_key_is_redacted(upstream: OpenRouterClient, mocked: Mocked) -> None:
    body = {"error": {"code": 401, "message": f"Incorrect API key provided: {KEY}"}}
    mocked.post(CHAT_URL, status=401, payload=body)
    with pytest.raises(UpstreamError) as caught:
        await open_and_read(upstream)
    assert caught.value.status == 401
    assert KEY not in caught.value.message and "[redacted]" in caught.value.message


async def test_connection_refused_is_502(upstream: OpenRouterClient, mocked: Mocked) -> None:
    refused = aiohttp.ClientConnectorError(
        Mock(host="x", port=1, ssl=None), OSError(111, "Refused")
    )
    mocked.post(CHAT_URL, exception=refused)
    with pytest.raises(UpstreamUnreachable) as caught:
        await open_and_read(upstream)
    assert caught.value.status == 502
    assert caught.value.message == "Could not reach OpenRouter: Connection refused"


async def test_silence_is_504(upstream: OpenRouterClient, mocked: Mocked) -> None:
    mocked.post(CHAT_URL, exception=aiohttp.SocketTimeoutError("Timeout on reading data"))
    with pytest.raises(UpstreamTimeout) as caught:
        await open_and_read(upstream)
    assert caught.value.status == 504
    assert re.fullmatch(r"OpenRouter sent nothing for \d+ seconds", caught.value.message)


async def test_success_body_is_parsed(upstream: OpenRouterClient, mocked: Mocked) -> None:
    mocked.post(
        CHAT_URL,
        status=200,
        body=': OPENROUTER PROCESSING\n\ndata: {"x":1}\n\ndata: [DONE]\n\n',
    )
    (batch,) = await open_and_read(upstream)
    assert batch.payloads == [b'{"x":1}', b"[DONE]"]
    assert batch.finished and batch.events == []


async def test_key_echoed_in_an_error_inside_the_stream_is_redacted(
    upstream: OpenRouterClient, mocked: Mocked
) -> None:
    error = f'{{"error": {{"code": 401, "message": "bad key {KEY}"}}}}'
    mocked.post(CHAT_URL, status=200, body=f"data: {error}\n\n")
    with pytest.raises(UpstreamError) as caught:
        async with upstream.open_chat(KEY, {"model": "m"}) as batches:
            async for batch in batches:
                if batch.error is not None:
                    raise batch.error
    assert caught.value.status == 401
    assert KEY not in caught.value.message and "[redacted]" in caught.value.message


async def test_models_list_is_reduced(upstream: OpenRouterClient, mocked: Mocked) -> None:
    pricing = {"prompt": "0.000001", "completion": "0.000002"}
    models = [
        {"id": "a/b", "name": "A B", "context_length": 8, "pricing": pricing, "created": 1},
        {"id": "c/d", "pricing": "free", "top_provider": {"max_completion_tokens": None}},
        {"id": "e/f", "top_provider": {"context_length": 9, "max_completion_tokens": 4}},
        {"bad": 1},
    ]
    mocked.get(f"{BASE}/models", payload={"data": models})
    none = {"context_length": None, "pricing": None, "max_completion_tokens": None}
    none |= {"created": None}
    assert await upstream.list_models(None) == [
        {"id": "a/b", "name": "A B", "context_length": 8, "pricing": pricing}
        | {"max_completion_tokens": None, "created": 1},
        {"id": "c/d", "name": "c/d", **none},
        {"id": "e/f", "name": "e/f", **none, "max_completion_tokens": 4},
    ]


async def test_models_list_of_wrong_shape_is_502(
    upstream: OpenRouterClient, mocked: Mocked
) -> None:
    mocked.get(f"{BASE}/models", payload={"models": []})
    with pytest.raises(UpstreamError) as caught:
        await upstream.list_models(None)
    assert caught.value.status == 502
