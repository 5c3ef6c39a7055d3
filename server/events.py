"""The events of a chat, as the core yields them and both transports write them."""

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
