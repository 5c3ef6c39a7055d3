"""The key upstream was called with, taken out of everything it sends back.

Some providers echo the key they refused, in an error or anywhere in a chunk; it must never
reach a user, a frame or a log. Payloads are cleaned as bytes before they are decoded, so
their events, finish reason, usage and error come out clean; an error message is also
searched for the key upper-cased or spaced out.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

REDACTED = "[redacted]"
# Between two characters of an echoed key: spaces, dashes, dots… ("s k - o r", "S.K.-.O.R").
SEPARATORS = r"[\W_]*"


class KeyRedactor:
    """Built once per upstream request from its key (or none)."""

    def __init__(self, api_key: str | None) -> None:
        self.key = api_key or ""
        # The key as it may appear inside a JSON string: raw, escaped, with `\/` for `/`.
        escaped = orjson.dumps(self.key)[1:-1] if self.key else b""
        forms = {self.key.encode(), escaped, escaped.replace(b"/", b"\\/")}
        self.needles = tuple(form for form in forms if form)

    def found_in(self, payloads: list[bytes]) -> bool:
        """On the per-token path: one substring search per payload and form of the key."""
        for payload in payloads:
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
            cleaned.append(clean)
        return cleaned

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
