"""UTF-16 surrogates in upstream's JSON: JavaScript servers may cut a pair across two chunks.

`"\\ud83c"` then `"\\udf89"` is valid JSON that orjson refuses (a lone surrogate is no
Unicode character); the stdlib decoder reads it, and the halves are joined here before the
text reaches any transport. Only payloads orjson refused come this way: the common chunk
pays nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .events import Delta, Reasoning

SURROGATE = re.compile("[\ud800-\udfff]")
HIGH_SURROGATES = ("\ud800", "\udbff")
# The delta fields whose text is mended across chunks; every other string is mended alone.
TEXT_FIELDS = ("content", "reasoning", "reasoning_content")


def may_hold_surrogates(payload: bytes) -> bool:
    return b"\\ud" in payload or b"\\uD" in payload


def decode_lenient(payload: bytes) -> Any:
    """Decode JSON that may hold lone surrogates; the delta's text keeps its halves (for
    `SurrogateMender`), every other string gets U+FFFD for a half. ValueError if not JSON."""
    try:
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            return chunk
        delta = _first_delta(chunk)
        texts = {k: v for k in TEXT_FIELDS if isinstance(v := delta.get(k), str)} if delta else {}
        chunk = _scrub(chunk)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if texts:
        _first_delta(chunk).update(texts)  # type: ignore[union-attr]
    return chunk


def whole_text(text: str) -> str:
    """Join each surrogate pair into its character; a lone half becomes U+FFFD."""
    if SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class SurrogateMender:
    """Per stream: a text that ends in a high surrogate keeps it back for the next text of
    the same kind, so the character comes whole."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def mend(self, events: list[Delta | Reasoning]) -> list[Delta | Reasoning]:
        mended: list[Delta | Reasoning] = []
        for event in events:
            text = self.held.pop(event.kind, "") + event.content
            if text and HIGH_SURROGATES[0] <= text[-1] <= HIGH_SURROGATES[1]:
                self.held[event.kind] = text[-1]
                text = text[:-1]
            if text:
                mended.append(type(event)(content=whole_text(text)))
        return mended

    def flush(self) -> list[Delta | Reasoning]:
        """At the end of the stream a half still held never got its pair."""
        events: list[Delta | Reasoning] = [
            Delta(content="\ufffd") if kind == "delta" else Reasoning(content="\ufffd")
            for kind in self.held
        ]
        self.held.clear()
        return events


def _first_delta(chunk: dict[str, Any]) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            return delta
    return None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return whole_text(value)
    if isinstance(value, dict):
        return {whole_text(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
