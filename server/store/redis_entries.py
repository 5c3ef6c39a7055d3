"""A chat's log in Redis, as data: its keys (the Stream, the run marker, the listeners) and
its entries: one per flush of the chat's new events, the entry's id the seq of its last
event, so a listener reads on from the last seq it has with XREAD.

What writes them is redis_log.py; what follows them from another process, redis_follow.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.store.events import Delta, Done, Failed, LogEvent, Raw, Reasoning

PREFIX = "chatrelay:chat:"


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
        elif isinstance(event, Raw):
            rows.append(["x", event.content])
        elif isinstance(event, Done):
            rows.append(["done", event.finish_reason, event.usage])
        else:
            rows.append(["error", event.status, event.message, event.retry_after, event.code])
    return orjson.dumps(rows)


def decode_events(data: bytes) -> list[LogEvent]:
    events: list[LogEvent] = []
    for row in orjson.loads(data):
        kind = row[0]
        if kind == "d":
            events.append(Delta(row[1]))
        elif kind == "r":
            events.append(Reasoning(row[1]))
        elif kind == "x":
            events.append(Raw(row[1]))
        elif kind == "done":
            events.append(Done(row[1], row[2]))
        else:
            # A row written before codes were kept has four fields.
            events.append(Failed(row[1], row[2], row[3], row[4] if len(row) > 4 else None))
    return events


def entry(first_seq: int, events: list[LogEvent]) -> dict[Any, Any]:
    return {"f": first_seq, "e": encode_events(events)}


def read_entry(fields: dict[bytes, bytes]) -> tuple[int, list[LogEvent]]:
    return int(fields[b"f"]), decode_events(fields[b"e"])


def entry_seq(entry_id: object) -> int:
    """The seq of an entry's last event: its id is `<seq>-1`."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.partition("-")[0])
