"""Chunk payloads into events: the rare shapes, read by read as the upstream client reads them."""

from __future__ import annotations

import orjson
import pytest

from server.relay.wire import ChunkReader, read_batch, read_completion
from server.store.events import Delta, Reasoning
from tests.fake_openrouter import chunk, completion_reply

HIGH, LOW = "\\ud83c", "\\udf89"  # 🎉 as JSON's two UTF-16 escapes


def text_chunk(escaped: str, field: str = "content") -> bytes:
    body = chunk()
    body["choices"][0]["delta"][field] = "@@"
    return orjson.dumps(body).replace(b"@@", escaped.encode())


def test_a_pair_cut_between_two_reads_is_joined() -> None:
    reader = ChunkReader()
    first = reader.read([text_chunk("Party " + HIGH)])
    second = reader.read([text_chunk(LOW + " time")])
    assert first.events + second.events == [Delta("Party "), Delta("🎉 time")]


def test_a_pair_cut_between_two_chunks_of_one_read_is_joined() -> None:
    batch = ChunkReader().read([text_chunk(HIGH), text_chunk(LOW)])
    assert batch.events == [Delta("🎉")]


def test_a_pair_cut_in_reasoning_is_joined_apart_from_the_text() -> None:
    reader = ChunkReader()
    events = reader.read([text_chunk(HIGH, "reasoning_content"), text_chunk("a")]).events
    events += reader.read([text_chunk(LOW, "reasoning_content"), b"[DONE]"]).events
    assert events == [Delta("a"), Reasoning("🎉")]


def test_a_half_left_at_the_end_becomes_a_replacement_character() -> None:
    reader = ChunkReader()
    events = reader.read([text_chunk("x" + HIGH)]).events
    assert events + reader.close() == [Delta("x"), Delta("\ufffd")]
    assert ChunkReader().read([text_chunk(HIGH), b"[DONE]"]).events == [Delta("\ufffd")]


def test_a_lone_surrogate_elsewhere_in_a_chunk_cannot_break_encoding() -> None:
    payload = orjson.dumps(chunk("ok", finish_reason="@@")).replace(b"@@", HIGH.encode())
    batch = ChunkReader().read([payload])
    assert batch.finish_reason == "\ufffd" and batch.events == [Delta("ok")]
    orjson.dumps(batch.finish_reason)  # every transport can write it


@pytest.mark.parametrize("payload", [b"{bad", b'{"a": "\\ud83c', b"[" * 5000 + b"\\ud83c"])
def test_what_is_not_json_is_still_refused(payload: bytes) -> None:
    batch = read_batch([payload])
    assert batch.error is not None and "not valid JSON" in batch.error.message


def test_reasoning_content_is_reasoning_and_reasoning_wins_when_both_come() -> None:
    both = orjson.dumps({"choices": [{"delta": {"reasoning": "r", "reasoning_content": "r"}}]})
    batch = read_batch([text_chunk("think", "reasoning_content"), both])
    assert batch.events == [Reasoning("thinkr")]


def test_a_completion_becomes_one_finished_batch_and_a_chunk() -> None:
    (body,) = completion_reply("Answer", reasoning="Why").steps
    assert isinstance(body, bytes)
    batch = read_completion(body)
    assert batch.events == [Reasoning("Why"), Delta("Answer")]
    assert (batch.finished, batch.finish_reason, batch.error) == (True, "stop", None)
    assert batch.usage is not None and batch.usage["total_tokens"] == 15
    (payload,) = batch.payloads
    relayed = orjson.loads(payload)
    assert relayed["object"] == "chat.completion.chunk"
    assert relayed["choices"][0]["delta"]["content"] == "Answer"


def test_a_completion_that_is_an_error_or_has_no_message_is_an_error() -> None:
    error = read_completion(b'{"error": {"code": "insufficient_quota", "message": "Pay up"}}')
    assert error.error is not None and (error.error.status, error.error.message) == (429, "Pay up")
    empty = read_completion(b'{"choices": []}')
    assert empty.error is not None and empty.error.status == 502
