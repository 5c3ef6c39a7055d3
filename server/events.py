"""The events of a chat, as the core yields them and the transports write them."""

from __future__ import annotations

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
