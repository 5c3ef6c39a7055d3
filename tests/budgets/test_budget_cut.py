"""A metered chat whose upstream ignores the `max_tokens` it was sent is cut by chatrelay at
what its reservation affords (SPEC "Budgets": a chat cut by the budget ends with
`finish_reason: "length"`, the budget is never passed), on every transport and both
engines: the client gets exactly `max_tokens` x 4 characters of text and reasoning (the
measure settlement uses), the end of a chat that ran out of tokens (the openai SDK reads
it too), and upstream's connection is closed; the spend settled is the reservation, never
above the budget. An upstream that keeps to `max_tokens`, and a chat that is not metered,
are left alone."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.budget_helpers import budget, sign_up
from tests.clients import chat_frame, parse_sse, until_end
from tests.conftest import USER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, Step, chunk, event
from tests.integration.openai_sdk import messages, sdk_for

MINI = "openai/gpt-4o-mini"
# gpt-4o-mini in the fake's /models, per token in nano-dollars; every chat here has the
# prompt "Be brief." and "Hello": 14 characters, 4 tokens.
PROMPT_NANOS, COMPLETION_NANOS, PROMPT_TOKENS = 150, 600, 4
# A budget that affords exactly 300 answer tokens after the prompt's: 1,200 characters.
AFFORDED = 300
BUDGET_NANOS = PROMPT_TOKENS * PROMPT_NANOS + AFFORDED * COMPLETION_NANOS
LIMIT_CHARS = AFFORDED * 4
# What a runaway upstream streams: reasoning, then far more answer than was asked for, in
# pieces of 7 characters (the limit falls inside one), each numbered so order is checked.
REASONING = [f"R{i:05d}|" for i in range(10)]
ANSWER = [f"{i:06d}|" for i in range(600)]
TRANSPORTS = ("sse", "ws", "v1-stream", "v1-json", "responses")


def runaway() -> Reply:
    """An upstream that ignores max_tokens: 4,270 characters and no end in sight."""
    steps: list[Step] = [COMMENT]
    steps += [event(chunk(reasoning=piece)) for piece in REASONING]
    steps += [event(chunk(piece)) for piece in ANSWER]
    steps.append("hang")
    return Reply(steps=steps)


def v1_messages() -> list[dict[str, str]]:
    return chat_body()["messages"]  # type: ignore[no-any-return]


async def chat_on(client: Client, transport: str) -> tuple[str, str, str | None]:
    """One chat on `transport`: the reasoning and the answer the client received, and how
    it says the chat ended (a finish reason, or the Responses API's incomplete reason)."""
    if transport == "ws":
        async with client.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(chat_frame("c1"))
            frames = await until_end(ws, "c1")
        assert frames[-1]["type"] == "done", frames[-1]
        return (
            "".join(f["content"] for f in frames if f["type"] == "reasoning"),
            "".join(f["content"] for f in frames if f["type"] == "delta"),
            frames[-1]["finish_reason"],
        )
    if transport == "sse":
        response = await client.post(
            "/api/chat/openrouter", json=chat_body(), headers={"Accept": "text/event-stream"}
        )
        assert response.status == 200
        events = parse_sse(await response.text())
        assert events[-1][0] == "done", events[-1]
        return (
            "".join(data["content"] for name, data in events if name == "reasoning"),
            "".join(data["content"] for name, data in events if name == "delta"),
            events[-1][1]["finish_reason"],
        )
    if transport == "responses":
        return await response_on(client)
    stream = transport == "v1-stream"
    ask = {"model": MINI, "messages": v1_messages(), "stream": stream}
    response = await client.post("/v1/chat/completions", json=ask)
    assert response.status == 200, await response.text()
    if not stream:
        [choice] = (await response.json())["choices"]
        message = choice["message"]
        return message.get("reasoning") or "", message["content"], choice["finish_reason"]
    lines = (await response.read()).split(b"\n\n")
    assert lines[-2] == b"data: [DONE]"
    chunks = [orjson.loads(line.removeprefix(b"data: ")) for line in lines[:-2]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert all(reason is None for reason in finishes[:-1])
    return (
        "".join(d.get("reasoning") or "" for d in deltas),
        "".join(d.get("content") or "" for d in deltas),
        finishes[-1],
    )


async def response_on(client: Client) -> tuple[str, str, str | None]:
    ask = {"model": MINI, "instructions": "Be brief.", "input": "Hello", "stream": True}
    response = await client.post("/v1/responses", json=ask)
    assert response.status == 200, await response.text()
    events = [data for _, data in parse_sse(await response.text())]
    last = events[-1]
    assert last["type"] == "response.incomplete", last["type"]
    reason = last["response"]["incomplete_details"]["reason"]

    def joined(kind: str) -> str:
        return "".join(e["delta"] for e in events if e["type"] == kind)

    return joined("response.reasoning_text.delta"), joined("response.output_text.delta"), reason


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_upstream_that_ignores_max_tokens_is_cut_at_what_the_budget_affords(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str, transport: str
) -> None:
    client = await make_client(
        database_url=database_url, default_budget_usd=BUDGET_NANOS / 1e9, upstream_timeout_s=5.0
    )
    await sign_up(client)
    fake_openrouter.script(runaway())
    reasoning, answer, finish = await chat_on(client, transport)
    [sent] = fake_openrouter.requests
    assert sent.body["max_tokens"] == AFFORDED
    # Exactly what the budget affords, the first of upstream's text in its order.
    upstream = "".join(REASONING) + "".join(ANSWER)
    assert len(reasoning) + len(answer) == LIMIT_CHARS
    assert reasoning == "".join(REASONING) and reasoning + answer == upstream[:LIMIT_CHARS]
    expected = "max_output_tokens" if transport == "responses" else "length"
    assert finish == expected
    # Upstream would stream on: chatrelay closed its connection.
    await sent.wait_dropped_by_relay(5.0)
    shown = await budget(client)
    assert shown["reserved_usd"] == 0
    # Settled at the estimate (no usage came): the reservation, exactly, and so the budget.
    assert shown["spent_usd"] <= shown["limit_usd"]
    assert shown["spent_usd"] == pytest.approx(BUDGET_NANOS / 1e9)


def keeping_to(chars: int, finish_reason: str, cost: float) -> Reply:
    """An upstream that keeps to max_tokens: `chars` characters, then its own end."""
    pieces = ["abcd"] * (chars // 4)
    usage = {"prompt_tokens": 4, "completion_tokens": chars // 4, "cost": cost}
    steps: list[Step] = [COMMENT, *[event(chunk(piece)) for piece in pieces]]
    steps += [event(chunk(finish_reason=finish_reason, usage=usage)), event("[DONE]")]
    return Reply(steps=steps)


@pytest.mark.parametrize("transport", ["ws", "v1-stream"])
async def test_an_upstream_that_keeps_to_max_tokens_ends_the_chat_itself(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str, transport: str
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=BUDGET_NANOS / 1e9)
    await sign_up(client)
    # The whole allowance, to the character, and upstream's own end and cost.
    fake_openrouter.script(keeping_to(LIMIT_CHARS, "stop", 0.0001))
    reasoning, answer, finish = await chat_on(client, transport)
    assert (reasoning, answer, finish) == ("", "abcd" * AFFORDED, "stop")
    [sent] = fake_openrouter.requests
    await asyncio.wait_for(sent.ended.wait(), 5.0)
    assert not sent.disconnected  # upstream ran to its own end
    shown = await budget(client)
    assert shown["spent_usd"] == pytest.approx(0.0001) and shown["reserved_usd"] == 0


async def test_a_chat_that_is_not_metered_is_never_cut(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(database_url=database_url, default_budget_usd=BUDGET_NANOS / 1e9)
    await sign_up(client)
    # The user's own key: nothing held against the budget, so nothing cut, even past the
    # max_tokens the chat names.
    saved = await client.put("/api/profile", json={"openrouter_api_key": USER_KEY})
    assert saved.status == 200
    fake_openrouter.script(keeping_to(2 * LIMIT_CHARS, "stop", 0.0002))
    frames: list[dict[str, Any]]
    async with client.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1", max_tokens=AFFORDED))
        frames = await until_end(ws, "c1")
    answer = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert answer == "abcd" * 2 * AFFORDED and frames[-1]["finish_reason"] == "stop"
    [sent] = fake_openrouter.requests
    assert sent.body["max_tokens"] == AFFORDED
    await asyncio.wait_for(sent.ended.wait(), 5.0)
    assert not sent.disconnected


async def test_the_openai_sdk_sees_a_cut_stream_end_with_length(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(
        database_url=database_url, default_budget_usd=BUDGET_NANOS / 1e9, upstream_timeout_s=5.0
    )
    await sign_up(client)
    made = await client.post("/api/tokens", json={"name": "sdk"})
    assert made.status == 201
    fake_openrouter.script(runaway())
    async with sdk_for(client, api_key=(await made.json())["token"]) as sdk:
        stream = await sdk.chat.completions.create(
            model=MINI,
            messages=messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer == "".join(ANSWER)[: LIMIT_CHARS - len("".join(REASONING))]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    await fake_openrouter.requests[0].wait_dropped_by_relay(5.0)
    shown = await budget(client)
    assert shown["spent_usd"] <= shown["limit_usd"] and shown["reserved_usd"] == 0
