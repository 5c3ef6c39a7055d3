"""A response's log translated into events: the same events, with the same sequence numbers,
however the log is sliced into reads (a live listener, a replay, a resume on another
process), which is what lets `starting_after=N` resume without a gap or a duplicate."""

from __future__ import annotations

import random
from typing import Any

import orjson

from server.relay.responses import ResponseLog, response_head
from server.store.events import Delta, Done, Failed, LogEvent, Raw, Reasoning
from tests.integration.responses_events import check_events

RESPONSE_ID = "resp_" + "ab" * 24


def tool_chunk(index: int, call_id: str | None, arguments: str) -> Raw:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:  # a call's first piece names it
        call |= {"id": call_id, "type": "function"}
        call["function"]["name"] = "f"
    chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    return Raw(orjson.dumps(chunk).decode())


def a_log(final: Done | Failed) -> list[LogEvent]:
    head = response_head(
        RESPONSE_ID,
        1_700_000_000,
        {"model": "m", "tools": [], "tool_choice": "auto", "parallel_tool_calls": True},
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        background=True,
        store=False,
        previous_response_id=None,
    )
    return [
        Raw(head.decode()),
        Reasoning("Let me "),
        Reasoning("think."),
        Delta("Calling "),
        Delta("two tools"),
        tool_chunk(0, "call_a", '{"x":'),
        tool_chunk(1, "call_b", '{"y":'),
        tool_chunk(0, None, " 1}"),
        tool_chunk(1, None, " 2}"),
        final,
    ]


def translated(log: list[LogEvent], cuts: list[int]) -> list[dict[str, Any]]:
    reading = ResponseLog()
    events: list[dict[str, Any]] = []
    for start, end in zip([0, *cuts], [*cuts, len(log)], strict=True):
        events += reading.take(log[start:end])
    return events


def test_every_slicing_gives_the_same_events() -> None:
    log = a_log(Done("tool_calls", {"prompt_tokens": 5, "completion_tokens": 7}))
    whole = translated(log, [])
    check_events(whole)
    chooser = random.Random(7)
    for _ in range(50):
        cuts = sorted(chooser.sample(range(1, len(log)), chooser.randint(0, len(log) - 1)))
        assert translated(log, cuts) == whole, cuts
    final = whole[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"] + [
        "function_call"
    ] * 2
    assert [item["arguments"] for item in final["output"][2:]] == ['{"x": 1}', '{"y": 2}']
    assert final["usage"]["total_tokens"] == 12 and final["status"] == "completed"


def test_a_failure_closes_what_is_open_and_fails_the_response() -> None:
    events = translated(a_log(Failed(502, "Upstream fell over")), [3, 6])
    check_events(events)
    final = events[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["error"] == {"code": "server_error", "message": "Upstream fell over"}
    # What was done before stays completed; the calls still open end incomplete.
    statuses = [item["status"] for item in final["response"]["output"]]
    assert statuses == ["completed", "completed", "incomplete", "incomplete"]


def test_a_cancel_is_an_incomplete_cancelled_response() -> None:
    events = translated(a_log(Done("cancelled", None)), [])
    check_events(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "cancelled"
