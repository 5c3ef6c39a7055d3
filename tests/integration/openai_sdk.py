"""The real `openai` SDK pointed at chatrelay's /v1 over loopback, and raw /v1 helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import Client


@asynccontextmanager
async def sdk_for(
    server: Client | str, api_key: str = "sk-unused", **options: Any
) -> AsyncIterator[AsyncOpenAI]:
    """An AsyncOpenAI whose base_url is chatrelay's /v1 (a test client's, or a server URL's);
    no retries, so each call is one chat."""
    base = server if isinstance(server, str) else str(server.make_url(""))
    sdk = AsyncOpenAI(base_url=base.rstrip("/") + "/v1", api_key=api_key, max_retries=0, **options)
    async with sdk:
        yield sdk


def messages(text: str = "Hello") -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def completion_body(text: str = "Hello", **fields: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": messages(text), **fields}


def data_lines(body: bytes) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order."""
    return [line.removeprefix(b"data: ") for line in body.split(b"\n") if line.startswith(b"data:")]


def json_lines(body: bytes) -> list[Any]:
    return [orjson.loads(p) for p in data_lines(body) if p != b"[DONE]"]
