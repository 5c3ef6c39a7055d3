"""SSE payload batching: how OpenRouter's bytes become `data:` payloads, read by read."""

from __future__ import annotations

from collections.abc import AsyncIterator

from server.sse import sse_payload_batches


async def reads_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def batches(*parts: bytes) -> list[list[bytes]]:
    return [batch async for batch in sse_payload_batches(reads_of(*parts))]


async def test_comment_lines_are_skipped() -> None:
    assert await batches(b": OPENROUTER PROCESSING\n\ndata: {}\n\n") == [[b"{}"]]


async def test_crlf_line_endings() -> None:
    assert await batches(b': hi\r\n\r\ndata: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n') == [
        [b'{"a":1}', b"[DONE]"]
    ]


async def test_a_utf8_character_split_between_reads_is_joined() -> None:
    encoded = 'data: {"c":"héllo 世界"}\n\n'.encode()
    cut = encoded.index("世".encode()) + 1  # inside the three bytes of 世
    result = await batches(encoded[:cut], encoded[cut:])
    assert result == [['{"c":"héllo 世界"}'.encode()]]


async def test_events_of_one_read_come_as_one_batch() -> None:
    assert await batches(b"data: 1\n\ndata: 2\n\n", b"data: 3\n\n") == [[b"1", b"2"], [b"3"]]


async def test_an_event_split_across_reads() -> None:
    assert await batches(b"da", b"ta: 12", b"3\n", b"\n") == [[b"123"]]


async def test_no_space_after_colon_and_multi_line_data() -> None:
    assert await batches(b"data:x\ndata: y\n\n") == [[b"x\ny"]]


async def test_other_fields_are_ignored() -> None:
    assert await batches(b"event: message\nid: 7\nretry: 10\ndata: z\n\n") == [[b"z"]]


async def test_last_event_without_blank_line_is_kept() -> None:
    assert await batches(b"data: 1\n\ndata: [DONE]") == [[b"1"], [b"[DONE]"]]


async def test_nothing_but_comments_yields_nothing() -> None:
    assert await batches(b": a\n\n: b\n\n") == []
