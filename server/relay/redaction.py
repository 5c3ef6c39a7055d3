"""The key taken out of everything upstream sends: its payloads as bytes, its decoded text
across pieces, and the values read from it (finish reason, usage, an error).

Some providers echo the key they refused, in an error or anywhere in a chunk; a hostile one
may write it with `\\u` escapes or cut it across two pieces of text (issue 21.7). It must
never reach a user, a frame, the chat's log or a log line:

- a payload is searched as bytes for the key raw and JSON-escaped (the per-token path: one
  substring search per form); one holding any `\\u` escape is read once more, decoded, and
  rewritten when the decoded key is in it, so what /v1 passes on is clean in every field;
- the decoded text of each kind (answer, reasoning) is searched across pieces: the end of a
  piece that could begin the key waits for the next piece of that kind (TextRedactor);
- an error message is searched for the key in any case, spaced out or not.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from server.relay.wire import Batch
from server.store.events import Text

REDACTED = "[redacted]"
# Between two characters of an echoed key: spaces, dashes, dots… ("s k - o r", "S.K.-.O.R").
SEPARATORS = r"[\W_]*"
ESCAPE = b"\\u"


class TextRedactor:
    """One stream's decoded text, the key taken out of it however it was cut into pieces.

    A piece whose end could be the start of the key keeps that end back until the next
    piece of its kind (or the stream's end): the key is found whole or not at all.
    KeyRedactor.settle skips it for a piece that needs none of this (the per-token path).
    """

    __slots__ = ("first", "held", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.first = key[0]
        self.held: dict[type[Text], str] = {}

    def events(self, events: list[Text]) -> tuple[list[Text], bool]:
        """The pieces with the key taken out and the start of one held back; whether a key
        was taken out (the pieces' payloads then need it too: `redact_joined`)."""
        found = False
        out: list[Text] = []
        for event in events:
            kind = type(event)
            for other in [k for k in self.held if k is not kind]:
                out.append(other(self.held.pop(other)))  # its kind ended: it was no key
            text = self.held.pop(kind, "") + event.content
            if self.key in text:
                text = text.replace(self.key, REDACTED)
                found = True
            cut = self._start_of_key(text)
            if cut < len(text):
                self.held[kind] = text[cut:]
                text = text[:cut]
            if text:
                out.append(kind(text))
        return out, found

    def flush(self) -> list[Text]:
        """At the stream's end, what was held back never became the key."""
        events = [kind(text) for kind, text in self.held.items()]
        self.held.clear()
        return events

    def _start_of_key(self, text: str) -> int:
        """Where the longest end of `text` that begins the key starts, else len(text)."""
        key = self.key
        at = text.find(self.first, max(0, len(text) - len(key) + 1))
        while at != -1:
            if key.startswith(text[at:]):
                return at
            at = text.find(self.first, at + 1)
        return len(text)


# The delta fields whose text is redacted across chunks in what /v1 passes on.
TEXT_FIELDS = ("content", "reasoning", "reasoning_content")


def redact_joined(payloads: list[bytes], key: str) -> list[bytes]:
    """Chunks whose delta texts spell the key only together (a key cut across pieces): each
    field's text, joined and redacted, goes in the first chunk that had some, the others get
    "" (what a client joins is the same text, without the key). Rare: a key was found."""
    chunks: list[Any] = []
    for payload in payloads:
        try:
            chunks.append(orjson.loads(payload))
        except orjson.JSONDecodeError:
            chunks.append(None)
    changed: set[int] = set()
    for field in TEXT_FIELDS:
        holders = [
            (i, d)
            for i, c in enumerate(chunks)
            if (d := _delta(c)) and isinstance(d.get(field), str)
        ]
        joined = "".join(d[field] for _, d in holders)
        if key not in joined:
            continue
        for n, (i, delta) in enumerate(holders):
            delta[field] = joined.replace(key, REDACTED) if n == 0 else ""
            changed.add(i)
    return [
        orjson.dumps(c) if i in changed else p
        for i, (p, c) in enumerate(zip(payloads, chunks, strict=True))
    ]


def _delta(chunk: Any) -> dict[str, Any] | None:
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            return delta
    return None


class KeyRedactor:
    """Built once per upstream request from its key (or none); `texts` follows its text."""

    def __init__(self, api_key: str | None) -> None:
        self.key = api_key or ""
        # The key as it may appear inside a JSON string: raw, escaped, with `\/` for `/`.
        escaped = orjson.dumps(self.key)[1:-1] if self.key else b""
        forms = {self.key.encode(), escaped, escaped.replace(b"/", b"\\/")}
        self.needles = tuple(form for form in forms if form)
        self.texts = TextRedactor(self.key) if self.key else None
        # Payloads of reads whose text ends like the start of the key, waiting with it.
        self.held_payloads: list[bytes] = []

    def settle(self, batch: Batch) -> None:
        """The read's text redacted across pieces, and its payloads with it: those of a read
        whose text is held back wait too, so no chunk /v1 passes on holds half a key."""
        texts = self.texts
        if texts is None:
            return
        events = batch.events
        if len(events) == 1 and not texts.held and not batch.finished:
            # The per-token path, inline: one piece, nothing held, and the key's first
            # character not in it (one substring search), or only where no key starts.
            text = events[0].content
            first = texts.first
            if first not in text:
                return
            key = texts.key
            if key not in text:
                at = text.find(first, max(0, len(text) - len(key) + 1))
                if at == -1 or (not key.startswith(text[at:]) and text.find(first, at + 1) == -1):
                    return
        found = False
        if batch.events:
            batch.events, found = texts.events(batch.events)
        ending = batch.finished or batch.error is not None
        if texts.held and ending:
            batch.events += texts.flush()
        if texts.held:
            self.held_payloads += batch.payloads
            batch.payloads = []
        elif self.held_payloads or found:
            payloads = [*self.held_payloads, *batch.payloads]
            self.held_payloads = []
            batch.payloads = redact_joined(payloads, self.key) if found else payloads

    def close(self, batch: Batch) -> None:
        """At the body's end: whatever was held back was no key."""
        if self.texts is not None:
            batch.events += self.texts.flush()
        batch.payloads = [*self.held_payloads, *batch.payloads]
        self.held_payloads = []

    def found_in(self, payloads: list[bytes]) -> bool:
        """On the per-token path: one substring search per payload and form of the key,
        and one for an escape that could spell it."""
        if not self.needles:
            return False
        for payload in payloads:
            if ESCAPE in payload:
                return True
            for needle in self.needles:
                if needle in payload:
                    return True
        return False

    def payloads(self, payloads: list[bytes]) -> list[bytes]:
        cleaned = []
        for payload in payloads:
            clean = payload
            for needle in self.needles:
                clean = clean.replace(needle, REDACTED.encode())
            if ESCAPE in clean:
                clean = self._decoded_clean(clean)
            cleaned.append(clean)
        return cleaned

    def _decoded_clean(self, payload: bytes) -> bytes:
        """A payload with escapes, rewritten without them when they spell the key."""
        try:
            plain = orjson.dumps(orjson.loads(payload))
        except orjson.JSONDecodeError:
            return payload  # not JSON (or a lone surrogate): the reader says so or mends it
        if self.needles[0] not in plain:
            return payload
        return plain.replace(self.needles[0], REDACTED.encode())

    def text(self, text: str) -> str:
        """An error message: the key in any case, spaced out or not."""
        if not self.key:
            return text
        return _loose_pattern(self.key).sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """A decoded value (finish reason, usage) that could spell the key with escapes."""
        if not self.key or value is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        encoded = orjson.dumps(value)
        if not any(needle in encoded for needle in self.needles):
            return value
        return orjson.loads(self.payloads([encoded])[0])


@functools.lru_cache(maxsize=256)
def _loose_pattern(key: str) -> re.Pattern[str]:
    """Built when an error needs it, not per chat: most chats never see one."""
    return re.compile(SEPARATORS.join(map(re.escape, key)), re.IGNORECASE)
