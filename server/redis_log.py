"""A chat's events as Redis Stream entries: one entry per upstream read, its id the seq of
its last event, so a listener reads on from the last seq it has with XREAD."""

from __future__ import annotations

from typing import Any

import orjson

from .events import Delta, Done, Failed, LogEvent, Reasoning

PREFIX = "chatrelay:chat:"
# Entries a stream keeps (one per upstream read, or a bounded re-sync batch): a chat keeps
# its text within it; a listener asking from before the oldest entry kept gets 404.
STREAM_MAXLEN = 50_000


def log_key(key: str) -> str:
    return PREFIX + "{" + key + "}:log"


def run_key(key: str) -> str:
    """Set while the chat runs, by the process that runs it, renewed while it lives."""
    return PREFIX + "{" + key + "}:run"


def listeners_key(key: str) -> str:
    """Listeners on other processes: members scored by when their presence lapses (ms)."""
    return PREFIX + "{" + key + "}:listeners"


CANCEL_CHANNEL = "chatrelay:cancel"


def encode_events(events: list[LogEvent]) -> bytes:
    rows: list[list[Any]] = []
    for event in events:
        if isinstance(event, Delta):
            rows.append(["d", event.content])
        elif isinstance(event, Reasoning):
            rows.append(["r", event.content])
        elif isinstance(event, Done):
            rows.append(["done", event.finish_reason, event.usage])
        else:
            rows.append(["error", event.status, event.message, event.retry_after])
    return orjson.dumps(rows)


def decode_events(data: bytes) -> list[LogEvent]:
    events: list[LogEvent] = []
    for row in orjson.loads(data):
        kind = row[0]
        if kind == "d":
            events.append(Delta(row[1]))
        elif kind == "r":
            events.append(Reasoning(row[1]))
        elif kind == "done":
            events.append(Done(row[1], row[2]))
        else:
            events.append(Failed(row[1], row[2], row[3]))
    return events


def entry(first_seq: int, events: list[LogEvent]) -> dict[Any, Any]:
    return {"f": first_seq, "e": encode_events(events)}


def read_entry(fields: dict[bytes, bytes]) -> tuple[int, list[LogEvent]]:
    return int(fields[b"f"]), decode_events(fields[b"e"])


def entry_seq(entry_id: object) -> int:
    """The seq of an entry's last event: its id is `<seq>-1`."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.partition("-")[0])
