"""/v1/responses for an account, with the real openai SDK on a personal token: a stored
response is a turn of a conversation in the account's history (what a script said is on
the page), `previous_response_id` continues it, and nobody else's can be continued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI, NotFoundError

from tests.account_clients import Browser, bearer
from tests.conftest import Client
from tests.fake_openrouter import FakeOpenRouter, sse_reply
from tests.integration.openai_sdk import sdk_for

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
async def browser(client: Client) -> AsyncIterator[Browser]:
    browser = Browser.of(client)
    await browser.sign_up("ada@example.com")
    yield browser
    await browser.close()


async def conversations(client: Client, token: str) -> list[dict[str, Any]]:
    response = await client.get("/api/conversations", headers=bearer(token))
    assert response.status == 200
    listed: list[dict[str, Any]] = (await response.json())["data"]
    return listed


async def chain(sdk: AsyncOpenAI, questions: list[str]) -> list[Any]:
    answers: list[Any] = []
    for question in questions:
        previous = answers[-1].id if answers else None
        answers.append(
            await sdk.responses.create(model=MODEL, input=question, previous_response_id=previous)
        )
    return answers


async def test_a_chain_of_three_turns_is_one_conversation(
    client: Client, fake_openrouter: FakeOpenRouter, browser: Browser
) -> None:
    fake_openrouter.script(sse_reply(["A1"]), sse_reply(["A2"]), sse_reply(["A3"]))
    token = (await browser.make_token())["token"]
    async with sdk_for(client, api_key=token) as sdk:
        first, second, third = await chain(sdk, ["Q1", "Q2", "Q3"])
        again = await sdk.responses.retrieve(third.id)
    assert first.to_dict()["store"] is True and second.previous_response_id == first.id
    assert first.conversation is not None
    assert third.conversation is not None and third.conversation.id == first.conversation.id
    assert again.output_text == "A3"
    # Each turn sent the earlier ones upstream.
    assert fake_openrouter.requests[2].body["messages"] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
        {"role": "user", "content": "Q3"},
    ]
    listed = await conversations(client, token)
    assert [c["id"] for c in listed] == [first.conversation.id]
    assert listed[0]["title"] == "Q1"
    opened = await client.get(f"/api/conversations/{first.conversation.id}", headers=bearer(token))
    kept = (await opened.json())["messages"]
    by_id = {m["id"]: m for m in kept}
    last = next(m for m in kept if m["chat_id"] == third.id)
    path = []
    while last is not None:
        path.append((last["role"], last["content"], last["status"]))
        last = by_id.get(last["parent_id"])
    assert [p[:2] for p in path[::-1]] == [
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2"),
        ("assistant", "A2"),
        ("user", "Q3"),
        ("assistant", "A3"),
    ]
    assert {p[2] for p in path if p[0] == "assistant"} == {"done"}


async def test_store_false_keeps_nothing_in_the_history(
    client: Client, fake_openrouter: FakeOpenRouter, browser: Browser
) -> None:
    fake_openrouter.script(sse_reply(["Not kept"]))
    token = (await browser.make_token())["token"]
    async with sdk_for(client, api_key=token) as sdk:
        response = await sdk.responses.create(model=MODEL, input="Secret", store=False)
    assert response.to_dict()["store"] is False and response.output_text == "Not kept"
    assert await conversations(client, token) == []


async def test_nobody_else_continues_an_accounts_response(
    client: Client, fake_openrouter: FakeOpenRouter, browser: Browser
) -> None:
    fake_openrouter.script(sse_reply(["Mine"]))
    token = (await browser.make_token())["token"]
    other = Browser.of(client)
    try:
        await other.sign_up("bob@example.com", invite=await browser.invite())
        other_token = (await other.make_token())["token"]
    finally:
        await other.close()
    async with sdk_for(client, api_key=token) as sdk:
        mine = await sdk.responses.create(model=MODEL, input="Q")
    async with sdk_for(client, api_key=other_token) as stranger:
        with pytest.raises(NotFoundError) as raised:
            await stranger.responses.create(model=MODEL, input="Q2", previous_response_id=mine.id)
        with pytest.raises(NotFoundError):
            await stranger.responses.retrieve(mine.id)
    assert "previous_response_id" in raised.value.message
    assert len(fake_openrouter.requests) == 1


async def test_a_deleted_stored_response_is_gone_its_turn_stays(
    client: Client, fake_openrouter: FakeOpenRouter, browser: Browser
) -> None:
    fake_openrouter.script(sse_reply(["Kept"]))
    token = (await browser.make_token())["token"]
    async with sdk_for(client, api_key=token) as sdk:
        response = await sdk.responses.create(model=MODEL, input="Q")
        await sdk.responses.delete(response.id)
        with pytest.raises(NotFoundError):
            await sdk.responses.retrieve(response.id)
    # The page's history is the account's: the turn stays there.
    assert len(await conversations(client, token)) == 1
