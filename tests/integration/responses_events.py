"""A Responses stream checked as OpenAI publishes it: every event validated by the openai SDK's
own types (strictly: pydantic validation, not the SDK's lenient construct), and the order
its accumulator relies on: one `response.created` first, sequence numbers 1, 2, 3, …, output
items opened in index order and each closed once, content parts and deltas only while their
item is open, each `*.done` text equal to its deltas, and exactly one final event, last."""

from __future__ import annotations

from typing import Any

import orjson
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

EVENT = TypeAdapter[Any](ResponseStreamEvent)
FINAL = ("response.completed", "response.incomplete", "response.failed")
TEXT_DONE = {
    "response.output_text.done": ("response.output_text.delta", "text"),
    "response.refusal.done": ("response.refusal.delta", "refusal"),
    "response.reasoning_text.done": ("response.reasoning_text.delta", "text"),
    "response.function_call_arguments.done": (
        "response.function_call_arguments.delta",
        "arguments",
    ),
}


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a raw SSE body; each `event:` name is its data's `type`."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        data = orjson.loads(fields["data"])
        assert fields["event"] == data["type"]
        events.append(data)
    return events


def check_events(events: list[dict[str, Any]], first_sequence: int = 1) -> None:
    """Fail naming the first event that breaks OpenAI's schema or order."""
    for event in events:
        EVENT.validate_python(event)
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(first_sequence, first_sequence + len(events))), numbers
    if first_sequence == 1:
        assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    finals = [i for i, e in enumerate(events) if e["type"] in FINAL]
    assert finals == [len(events) - 1], f"final events at {finals} of {len(events)}"
    if first_sequence == 1:
        _check_items(events)


def _check_items(events: list[dict[str, Any]]) -> None:
    opened: dict[int, str] = {}
    closed: set[int] = set()
    parts: dict[tuple[int, int], str] = {}
    texts: dict[tuple[int, int, str], str] = {}
    for event in events:
        kind, index = event["type"], event.get("output_index")
        where = f"{kind} #{event['sequence_number']}"
        if kind == "response.output_item.added":
            assert index == len(opened), f"{where} opens item {index} out of order"
            opened[index] = event["item"]["id"]
            continue
        if index is None:
            continue
        assert index in opened and index not in closed, f"{where}: item {index} is not open"
        assert event.get("item_id", opened[index]) == opened[index], f"{where}: wrong item_id"
        content = event.get("content_index", 0)
        if kind == "response.output_item.done":
            assert not any(i == index for i, _ in parts), f"{where}: a part is still open"
            closed.add(index)
        elif kind == "response.content_part.added":
            parts[(index, content)] = event["part"]["type"]
        elif kind == "response.content_part.done":
            assert parts.pop((index, content), None) is not None, f"{where}: part not open"
        elif kind.endswith(".delta"):
            key = (index, content, kind)
            texts[key] = texts.get(key, "") + event["delta"]
        elif kind in TEXT_DONE:
            delta_kind, field = TEXT_DONE[kind]
            assert event[field] == texts.get((index, content, delta_kind), ""), where
    assert closed == set(opened), f"items left open: {set(opened) - closed}"
