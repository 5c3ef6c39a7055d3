"""The streamed text and its OpenRouter SSE encoding, shared by the fake and the verifying client.

A stream's parameters travel in the model name (`bench/n=200,gap=30,...`), the one field
every relay forwards upstream untouched, so no relay needs to know it is being measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import orjson

# Multi-byte UTF-8 and JSON escapes on purpose: a relay that splits a character between
# reads or mangles an escape fails verification instead of looking fast.
TOKENS: tuple[str, ...] = (
    *("Hello", ",", " world", "!", " The", " quick", " brown", " fox", " jumps", " over"),
    *(" the", " lazy", " dog", ".", "\n", " Café", " naïve", " 日本", "語", " 🚀"),
    *(' "quoted"', " back\\slash", "\t", " tab", " emoji", " ✓", " done", " and", " more"),
    *(" text", " for", " you", ";", " <b>", "&amp;", " 42", " 3.14", " über", " Ωmega", " —"),
)
MODEL_PREFIX = "bench/"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One upstream answer: `n` tokens, `gap_ms` apart, after `ttft_ms`; `size` repeats each."""

    sid: str
    n: int
    gap_ms: float = 0.0
    ttft_ms: float = 0.0
    size: int = 1
    track: bool = False

    def model(self) -> str:
        return (
            f"{MODEL_PREFIX}sid={self.sid},n={self.n},gap={self.gap_ms:g},ttft={self.ttft_ms:g},"
            f"size={self.size},track={int(self.track)}"
        )

    @classmethod
    def from_model(cls, model: str) -> StreamSpec:
        fields = dict(kv.split("=", 1) for kv in model.removeprefix(MODEL_PREFIX).split(","))
        return cls(
            sid=fields["sid"],
            n=int(fields["n"]),
            gap_ms=float(fields.get("gap", "0")),
            ttft_ms=float(fields.get("ttft", "0")),
            size=int(fields.get("size", "1")),
            track=fields.get("track") == "1",
        )

    def text(self) -> str:
        return expected_text(self.n, self.size)

    def text_bytes_per_token(self) -> float:
        return len(expected_text(len(TOKENS), self.size).encode()) / len(TOKENS)


def token(index: int, size: int = 1) -> str:
    return TOKENS[index % len(TOKENS)] * size


@cache
def _cycle(size: int) -> str:
    return "".join(token(i, size) for i in range(len(TOKENS)))


def expected_text(n: int, size: int = 1) -> str:
    full, rest = divmod(n, len(TOKENS))
    return _cycle(size) * full + "".join(token(i, size) for i in range(rest))


def _chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, object]:
    # OpenRouter's own shape and size (~230 bytes per token event), so parsing costs are real.
    return {
        "id": "gen-1700000000-benchBENCHbench0000",
        "provider": "Bench",
        "model": "bench/model",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
    }


def sse_event(data: object) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    """HTTP/1.1 chunked framing, done once per distinct event rather than per write."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@cache
def token_events(size: int) -> tuple[bytes, ...]:
    return tuple(
        sse_event(_chunk({"role": "assistant", "content": token(i, size)}, None))
        for i in range(len(TOKENS))
    )


@cache
def token_chunks(size: int) -> tuple[bytes, ...]:
    """Every token's SSE event, already framed as an HTTP chunk."""
    return tuple(http_chunk(event) for event in token_events(size))


def tail_events(n: int) -> bytes:
    """The finish event, the usage event and `[DONE]`."""
    finish = sse_event(_chunk({"role": "assistant", "content": ""}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": n + 12, "cost": 0}
    usage_event = sse_event(
        {
            "id": "gen-1700000000-benchBENCHbench0000",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": usage,
        }
    )
    return finish + usage_event + b"data: [DONE]\n\n"


def tail_chunks(n: int) -> bytes:
    return http_chunk(tail_events(n)) + b"0\r\n\r\n"


PROCESSING_EVENT = b": OPENROUTER PROCESSING\n\n"
PROCESSING_CHUNK = http_chunk(PROCESSING_EVENT)


def expected_body(spec: StreamSpec) -> bytes:
    """The fake's whole SSE body for `spec`, byte for byte (what a direct client must get)."""
    events = token_events(spec.size)
    count = len(events)
    full, rest = divmod(spec.n, count)
    body = b"".join(events) * full + b"".join(events[:rest])
    return PROCESSING_EVENT + body + tail_events(spec.n)
