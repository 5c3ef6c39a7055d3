"""SSE decoding: how OpenRouter's bytes become `data:` payloads, read by read."""

from __future__ import annotations

import pytest

from server.errors import UpstreamError
from server.relay.wire import SSEDecoder


def batches(*reads: bytes) -> list[list[bytes]]:
    """The non-empty payload lists, per read and then at the end of the body."""
    decoder = SSEDecoder()
    fed = [decoder.feed(read) for read in reads] + [decoder.close()]
    return [payloads for payloads in fed if payloads]


def test_comment_lines_are_skipped() -> None:
    assert batches(b": OPENROUTER PROCESSING\n\ndata: {}\n\n") == [[b"{}"]]


def test_crlf_line_endings() -> None:
    assert batches(b': hi\r\n\r\ndata: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n') == [
        [b'{"a":1}', b"[DONE]"]
    ]


def test_a_utf8_character_split_between_reads_is_joined() -> None:
    encoded = 'data: {"c":"héllo 世界"}\n\n'.encode()
    cut = encoded.index("世".encode()) + 1  # inside the three bytes of 世
    assert batches(encoded[:cut], encoded[cut:]) == [['{"c":"héllo 世界"}'.encode()]]


def test_events_of_one_read_come_as_one_batch() -> None:
    assert batches(b"data: 1\n\ndata: 2\n\n", b"data: 3\n\n") == [[b"1", b"2"], [b"3"]]


def test_an_event_split_across_reads() -> None:
    assert batches(b"da", b"ta: 12", b"3\n", b"\n") == [[b"123"]]


def test_a_crlf_split_between_reads() -> None:
    assert batches(b"data: x\r", b"\n\r", b"\n") == [[b"x"]]


def test_no_space_after_colon_and_multi_line_data() -> None:
    assert batches(b"data:x\ndata: y\n\n") == [[b"x\ny"]]


def test_other_fields_are_ignored() -> None:
    assert batches(b"event: message\nid: 7\nretry: 10\ndata: z\n\n") == [[b"z"]]


def test_last_event_without_blank_line_is_kept() -> None:
    assert batches(b"data: 1\n\ndata: [DONE]") == [[b"1"], [b"[DONE]"]]


def test_nothing_but_comments_yields_nothing() -> None:
    assert batches(b": a\n\n: b\n\n") == []


def test_lone_cr_ends_lines() -> None:
    assert batches(b': hi\r\rdata: {"a":1}\r\rdata: [DONE]\r\r') == [[b'{"a":1}', b"[DONE]"]]


def test_lone_cr_and_crlf_split_between_reads() -> None:
    # A CR at the end of a read, then LF: one line end, not a blank line between two data lines.
    assert batches(b"data: a\r", b"\ndata: b\r", b"\r") == [[b"a\nb"]]
    assert batches(b"data: a\r", b"data: b\n\n") == [[b"a\nb"]]


def test_mixed_line_ends_in_one_stream() -> None:
    assert batches(b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n") == [[b"1", b"2", b"3"]]


def test_a_line_without_end_is_refused_past_1_mib() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: " + b"x" * (512 * 1024))
    with pytest.raises(UpstreamError, match="larger than 1 MiB"):
        decoder.feed(b"x" * (600 * 1024))


def test_data_lines_without_a_blank_line_are_refused_past_1_mib() -> None:
    decoder = SSEDecoder()
    line = b"data: " + b"x" * 1000 + b"\n"
    with pytest.raises(UpstreamError, match="larger than 1 MiB"):
        for _ in range(2000):
            decoder.feed(line * 10)


def test_many_events_of_any_total_size_are_fine() -> None:
    decoder = SSEDecoder()
    event = b"data: " + b"x" * 1000 + b"\n\n"
    for _ in range(3000):
        assert decoder.feed(event) == [b"x" * 1000]


def test_whole_event_reads_after_held_bytes_keep_every_event() -> None:
    """A read that is exactly one event (the common case) right after a read that left
    part of a line, or a data line without its blank line, is not taken on its own."""
    assert batches(b"data: 1\n\n", b"data: 2", b"data: 3\n\n") == [[b"1"], [b"2data: 3"]]
    assert batches(b"data: 1\n", b"data: 2\n\n", b"data: 3\n\n") == [[b"1\n2"], [b"3"]]
    assert batches(b"data: 1\r", b"data: 2\n\n") == [[b"1\n2"]]
    assert batches(b"data:1\n\n", b"data:  2\n\n") == [[b"1"], [b" 2"]]
