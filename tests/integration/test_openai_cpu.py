"""/v1's non-streaming answer costs about what the same answer streamed costs: the
completion is assembled in time linear in the answer (issue 21.9: a 300k-token answer took
10.5 s of CPU against 2.6 s streamed)."""

from __future__ import annotations

import time

import orjson

from tests.conftest import Client
from tests.fake_openrouter import USAGE, FakeOpenRouter, Reply, Step, chunk, event
from tests.integration.openai_sdk import completion_body

TOKENS = 300_000
TOKEN = "tok "
EVENTS_PER_WRITE = 1000


def long_reply() -> Reply:
    one = event(chunk(TOKEN))
    steps: list[Step] = [one * EVENTS_PER_WRITE for _ in range(TOKENS // EVENTS_PER_WRITE)]
    steps.append(event(chunk(finish_reason="stop", usage=USAGE)) + event("[DONE]"))
    return Reply(steps=steps)


async def cpu_of_answer(client: Client, stream: bool) -> tuple[float, bytes]:
    """CPU seconds of the whole process (relay, fake upstream and client) for one answer."""
    body = orjson.dumps(completion_body(stream=stream))
    started = time.process_time()
    async with client.post("/v1/chat/completions", data=body) as response:
        assert response.status == 200
        answer = await response.read()
    return time.process_time() - started, answer


async def test_a_long_answer_costs_about_the_same_streamed_or_not(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(long_reply(), long_reply())
    streamed_s, _ = await cpu_of_answer(client, stream=True)
    whole_s, answer = await cpu_of_answer(client, stream=False)
    completion = orjson.loads(answer)
    assert completion["choices"][0]["message"]["content"] == TOKEN * TOKENS
    assert completion["choices"][0]["finish_reason"] == "stop"
    # Linear, not a multiple: generous for a busy machine (the quadratic join was 4x).
    assert whole_s < 1.5 * streamed_s + 0.5, f"{whole_s:.2f} s against {streamed_s:.2f} s"
