"""GET /metrics and the per-chat log line: what happened, counted and structured."""

from __future__ import annotations

import logging

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, error_reply, event
from tests.waiting import wait_until

TOKEN = "metrics-access-token"
HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])


async def scrape(
    client: Client, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    assert response.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def chats(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], transport: str, outcome: str
) -> float:
    return samples[("chatrelay_chats_total", (("outcome", outcome), ("transport", transport)))]


async def test_metrics_count_chats_by_transport_and_outcome(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    before = await scrape(client)
    assert chats(before, "ws", "done") == 0
    response = await client.post("/api/chat/openrouter", json=chat_body("one two"))
    assert await response.text() == "one two"
    response = await client.post(
        "/api/chat/openrouter", json=chat_body("a b c"), headers={"Accept": "text/event-stream"}
    )
    assert b"event: done" in await response.read()
    fake_openrouter.script(error_reply(402, "Insufficient credits"))
    assert (await client.post("/api/chat/openrouter", json=chat_body())).status == 402

    fake_openrouter.script(HANG)
    ws = await client.ws_connect("/api/chat/ws")
    await ws.send_str(orjson.dumps({"id": "w", **chat_body()}).decode())
    assert orjson.loads((await ws.receive(timeout=5)).data)["content"] == "started"
    running = await scrape(client)
    assert running[("chatrelay_chats_running", ())] == 1
    assert running[("chatrelay_websockets_open", ())] == 1
    await ws.send_str(orjson.dumps({"type": "cancel", "id": "w"}).decode())
    assert orjson.loads((await ws.receive(timeout=5)).data)["finish_reason"] == "cancelled"
    await ws.close()

    async def socket_handler_ended() -> bool:
        return (await scrape(client))[("chatrelay_websockets_open", ())] == 0

    await wait_until(socket_handler_ended, "the closed socket is off the open sockets gauge")
    after = await scrape(client)
    assert chats(after, "http", "done") == 1
    assert chats(after, "sse", "done") == 1
    assert chats(after, "http", "error") == 1
    assert chats(after, "ws", "cancelled") == 1
    assert after[("chatrelay_chats_running", ())] == 0
    assert after[("chatrelay_websockets_open", ())] == 0
    # The fake's usage says 3 completion tokens for each finished chat.
    assert after[("chatrelay_tokens_relayed_total", (("transport", "http"),))] == 3
    assert after[("chatrelay_tokens_relayed_total", (("transport", "sse"),))] == 3
    assert after[("chatrelay_upstream_first_token_seconds_count", (("transport", "sse"),))] == 1
    assert after[("chatrelay_upstream_first_token_seconds_count", (("transport", "ws"),))] == 1


async def test_each_app_counts_its_own(make_client: MakeClient) -> None:
    first, second = await make_client(), await make_client()
    await (await first.post("/api/chat/openrouter", json=chat_body())).read()
    assert chats(await scrape(first), "http", "done") == 1
    assert chats(await scrape(second), "http", "done") == 0


async def test_metrics_follow_the_access_token(make_client: MakeClient) -> None:
    client = await make_client(access_token=TOKEN)
    refused = await client.get("/metrics")
    assert refused.status == 401
    assert await refused.json() == {"message": "Access token required"}
    await scrape(client, Authorization=f"Bearer {TOKEN}")


async def test_the_chat_line_carries_its_fields_as_data(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="server.chat"):
        await (await client.post("/api/chat/openrouter", json=chat_body("secret prompt"))).read()
    [line] = [r for r in caplog.records if r.name == "server.chat"]
    fields = vars(line)
    assert fields["transport"] == "http"
    assert fields["model"] == "openai/gpt-4o-mini"
    assert fields["status"] == 200
    assert fields["outcome"] == "done"
    assert fields["finish_reason"] == "stop"
    assert fields["tokens"] == 3
    assert isinstance(fields["ttft_ms"], int)
    assert isinstance(fields["duration_ms"], int)
    assert fields["cancelled"] is False
    assert "secret prompt" not in line.getMessage()
    assert line.getMessage().startswith("chat end id=")
