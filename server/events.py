"""The events of a chat, as the core yields them, a run logs them and the transports write them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal


@dataclass(frozen=True, slots=True)
class Delta:
    content: str
    kind: ClassVar[Literal["delta"]] = "delta"


@dataclass(frozen=True, slots=True)
class Reasoning:
    content: str
    kind: ClassVar[Literal["reasoning"]] = "reasoning"


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str | None
    usage: dict[str, Any] | None
    kind: ClassVar[Literal["done"]] = "done"


@dataclass(frozen=True, slots=True)
class Failed:
    """A chat's final error, as its log keeps it: what ChatError.to_dict() says."""

    status: int
    message: str
    retry_after: int | None = None
    kind: ClassVar[Literal["error"]] = "error"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


ChatEvent = Delta | Reasoning | Done


@dataclass(frozen=True, slots=True)
class Chunks:
    """Upstream's own `data:` payloads of one read, for /v1: neither `[DONE]` nor an error
    chunk, which the core reports as Done and ChatError. Not a ChatEvent: only
    `stream_chat(..., relay_chunks=True)` yields it, instead of Delta and Reasoning."""

    payloads: list[bytes]
    # Whether one of them carried usage: the client may not have asked for it.
    has_usage: bool
    kind: ClassVar[Literal["chunks"]] = "chunks"


# What a chat's log holds: its events, the last of them one Done or one Failed.
LogEvent = Delta | Reasoning | Done | Failed
Final = Done | Failed
Text = Delta | Reasoning


def merged(first_seq: int, events: Sequence[LogEvent]) -> list[tuple[int, LogEvent]]:
    """Each run of text of one kind as one event with the seq of its last piece: a client
    that saw seq N has every text up to N."""
    if len(events) == 1:
        return [(first_seq, events[0])]
    out: list[tuple[int, LogEvent]] = []
    parts: list[str] = []
    for seq, event in enumerate(events, first_seq):
        if isinstance(event, Delta | Reasoning):
            parts.append(event.content)
            following = events[seq - first_seq + 1] if seq - first_seq + 1 < len(events) else None
            if type(following) is not type(event):
                out.append((seq, type(event)("".join(parts))))
                parts = []
        else:
            out.append((seq, event))
    return out
