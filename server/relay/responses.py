"""A /v1/responses run's log, and the Responses API's typed events read back from it.

A response is a run (server/relay/runs.py) whose log keeps first the response's head (its
id, the request's echoed fields and its input items, a Raw event), then what upstream said:
its text as the chat routes log it (Delta and Reasoning, as the core decoded them and took
the key out of), and each chunk of a read that said more (tool calls, a refusal) whole, as
a Raw event read for those only. The route's key keeps these logs apart from the chat
routes'. Every reader translates the log from its start with `ResponseLog`, which is
deterministic, so each event gets the same `sequence_number` whoever reads it and whenever:
a client that saw N resumes from N (on any process, through Redis) without a gap or a
duplicate.

The events are OpenAI's: `response.created`, `response.in_progress`, then output items
(`message` with `output_text` or `refusal` parts, `reasoning` with `reasoning_text` parts,
`function_call` with streamed arguments), each opened and closed in order, and one of
`response.completed`, `response.incomplete` (a length cut, or a cancel) or `response.failed`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import orjson

from server.relay.responses_items import OutputItems, usage_of
from server.relay.wire import decode_lenient
from server.store.events import (
    ChatEvent,
    Chunks,
    Delta,
    Done,
    Failed,
    LogEvent,
    Raw,
    Reasoning,
)

Event = dict[str, Any]
RESPONSE_ID = re.compile(r"resp_[0-9a-f]{48}")
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_head(
    response_id: str,
    created_at: int,
    echo: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    background: bool,
    store: bool,
    previous_response_id: str | None,
    conversation_id: str | None = None,
) -> bytes:
    """The first entry of a response's log: all that a reader needs besides upstream."""
    base = response_id.removeprefix("resp_")
    listed = []
    for index, item in enumerate(items):
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
        listed.append(
            {"id": f"{prefix[item['type']]}_{base}i{index}", **item, "status": "completed"}
        )
    return orjson.dumps(
        {
            "id": response_id,
            "created_at": created_at,
            "background": background,
            "store": store,
            "previous_response_id": previous_response_id,
            "conversation": None if conversation_id is None else {"id": conversation_id},
            **echo,
            "input": listed,
        }
    )


# A chunk that says more than text, logged whole for its tool calls or refusal (a false
# match only costs a little: a JSON string escapes its quotes).
MORE_THAN_TEXT = (b'"tool_calls":[', b'"tool_calls": [', b'"refusal":"', b'"refusal": "')


async def logged(
    head: bytes, chunks: AsyncGenerator[list[Chunks | Done], None]
) -> AsyncGenerator[list[ChatEvent], None]:
    """What a response's run logs: its head, then each read's text as the core decoded it
    (the key taken out), and the chunks that say more than text, whole."""
    yield [Raw(head.decode())]
    async with aclosing(chunks):
        async for events in chunks:
            out: list[ChatEvent] = []
            for event in events:
                if not isinstance(event, Chunks):
                    out.append(event)
                    continue
                out += event.texts
                payloads = event.payloads
                if any(mark in p for p in payloads for mark in MORE_THAN_TEXT):
                    out += [Raw(p.decode("utf-8", "replace")) for p in payloads]
            if out:
                yield out
            del events, out


def tool_calls_of(outline: Sequence[LogEvent]) -> list[dict[str, Any]]:
    """The function calls of a response's log as chat completions say them (the `tool_calls`
    of its assistant message), read by the same translation as every reader's, so each id is
    the `call_id` the client saw. `outline`: the log with each run of text as one non-empty
    piece of it, which is all that decides the output items' places; [] for a chat's log."""
    if not outline or type(outline[0]) is not Raw:
        return []
    try:
        head = orjson.loads(outline[0].content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(head, dict) or not RESPONSE_ID.fullmatch(str(head.get("id"))):
        return []
    reading = ResponseLog()
    reading.take([event for event in outline if not isinstance(event, Done | Failed)])
    assert reading.items is not None
    return [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in reading.items.snapshot()
        if item["type"] == "function_call"
    ]


def log_as(
    head: bytes,
) -> Callable[[AsyncGenerator[list[Chunks | Done], None]], AsyncGenerator[list[ChatEvent], None]]:
    return lambda chunks: logged(head, chunks)


class ResponseLog:
    """One reader's translation of a response's log into events, and the response as it
    stands. Feed it the log's events in order, from the first."""

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None
        self.items: OutputItems | None = None
        self.sequence = 0
        self.status = "in_progress"
        self.payloads = 0  # upstream payloads read: none yet means nothing has started
        self.final: Done | Failed | None = None
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.incomplete: dict[str, Any] | None = None

    def take(self, logged: Sequence[LogEvent]) -> list[Event]:
        out: list[Event] = []
        items = self.items
        for event in logged:
            if type(event) is Delta and items is not None:  # the per-token path
                self.payloads += 1
                out += self._numbered(items.text("message", "output_text", event.content))
            elif type(event) is Reasoning and items is not None:
                self.payloads += 1
                out += self._numbered(items.text("reasoning", "reasoning_text", event.content))
            elif isinstance(event, Done | Failed):
                out += self._end(event)
            elif items is not None:
                self.payloads += 1
                out += self._feed(event.content)
            else:
                self.head = orjson.loads(event.content)
                items = self.items = OutputItems(self.head["id"].removeprefix("resp_"))
                out.append(self._event("response.created", response=self.response()))
                out.append(self._event("response.in_progress", response=self.response()))
        return out

    def _feed(self, payload: str) -> list[Event]:
        """A chunk logged whole: its tool calls and refusal (its text came as Delta and
        Reasoning, which the core decoded and took the key out of)."""
        items = self.items
        assert items is not None
        try:
            chunk, exact = orjson.loads(payload), True
        except orjson.JSONDecodeError:
            # A surrogate pair cut across two chunks (JavaScript servers): the stdlib reads
            # it, and the halves are joined across deltas. orjson's text never has one.
            chunk, exact = decode_lenient(payload.encode()), False
        try:
            delta = chunk["choices"][0]["delta"]
        except (KeyError, IndexError, TypeError):
            return []
        if not isinstance(delta, dict):
            return []
        out: list[Event] = []
        if isinstance(text := delta.get("refusal"), str) and text:
            out += items.text("message", "refusal", text, exact)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    out += items.tool_call(call)
        return self._numbered(out)

    def _end(self, final: Done | Failed) -> list[Event]:
        assert self.items is not None
        self.final = final
        if isinstance(final, Failed):
            self.status = "failed"
            code = {429: "rate_limit_exceeded", 400: "invalid_prompt"}.get(final.status)
            self.error = {"code": code or "server_error", "message": final.message}
            closing, kind = self.items.close_all("incomplete"), "response.failed"
        elif final.finish_reason == "cancelled":
            self.status = "cancelled"
            closing, kind = self.items.close_all("incomplete"), "response.incomplete"
        else:
            self.usage = usage_of(final.usage)
            reason = INCOMPLETE_REASONS.get(final.finish_reason or "")
            if reason is not None:
                self.status, self.incomplete = "incomplete", {"reason": reason}
                closing, kind = self.items.close_all("incomplete"), "response.incomplete"
            else:
                self.status = "completed"
                closing, kind = self.items.close_all("completed"), "response.completed"
        out = self._numbered(closing)
        out.append(self._event(kind, response=self.response()))
        return out

    def _numbered(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.sequence += 1
            event["sequence_number"] = self.sequence
        return events

    def _event(self, kind: str, **fields: Any) -> Event:
        self.sequence += 1
        return {"type": kind, "sequence_number": self.sequence, **fields}

    @property
    def started(self) -> bool:
        return self.head is not None

    @property
    def ended(self) -> bool:
        return self.final is not None

    def input_items(self) -> list[dict[str, Any]]:
        return list(self.head["input"]) if self.head is not None else []

    def response(self) -> dict[str, Any]:
        """The response object as it stands."""
        assert self.head is not None and self.items is not None
        head = {k: v for k, v in self.head.items() if k != "input"}
        return {
            **head,
            "object": "response",
            "status": self.status,
            "error": self.error,
            "incomplete_details": self.incomplete,
            "output": self.items.snapshot(),
            "usage": self.usage,
        }
