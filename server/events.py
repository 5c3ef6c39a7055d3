"""The events of a chat, as the core yields them and both transports write them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Delta:
    content: str
    kind: Literal["delta"] = "delta"


@dataclass(frozen=True, slots=True)
class Reasoning:
    content: str
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str | None
    usage: dict[str, Any] | None
    kind: Literal["done"] = "done"


ChatEvent = Delta | Reasoning | Done
