"""Content negotiation for the chat POST: plain text, or Server-Sent Events when asked."""

from __future__ import annotations

import mimeparse
from multidict import CIMultiDictProxy

EVENT_STREAM = "text/event-stream"
PLAIN_TEXT = "text/plain"
# Ties go to the last one: plain text is what a client that states no preference gets.
OFFERED = [EVENT_STREAM, PLAIN_TEXT]


def wants_event_stream(headers: CIMultiDictProxy[str]) -> bool:
    """Whether Accept prefers SSE: media ranges compared as media types (case-insensitive,
    parameters and q-values respected), never as substrings."""
    accept = ",".join(headers.getall("Accept", ()))
    if not accept.strip():
        return False
    try:
        best = mimeparse.best_match(OFFERED, accept.lower())
    except ValueError:  # a malformed header states no usable preference
        return False
    return bool(best == EVENT_STREAM)
