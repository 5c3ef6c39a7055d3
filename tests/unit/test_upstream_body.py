"""Compressed upstream bodies inflated a bounded step at a time, never past the cap."""

from __future__ import annotations

import gzip
import zlib

import pytest

from server.errors import UpstreamError
from server.relay.upstream_answer import INFLATE_STEP_BYTES, Inflater


def test_gzip_and_deflate_inflate_to_the_same_bytes_in_bounded_steps() -> None:
    body = b"data: {}\n\n" * 50_000
    for compressed in (gzip.compress(body), zlib.compress(body)):
        inflater = Inflater(limit=len(body))
        steps = [
            step for half in (compressed[:100], compressed[100:]) for step in inflater.steps(half)
        ]
        assert b"".join(steps) == body
        assert max(len(step) for step in steps) <= INFLATE_STEP_BYTES


def test_a_body_inflating_past_the_limit_is_refused_before_it_is_all_inflated() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    inflater = Inflater(limit=1024 * 1024)
    inflated = 0
    with pytest.raises(UpstreamError, match="compressed answer larger than 1048576 bytes"):
        for step in inflater.steps(bomb):
            inflated += len(step)
    assert inflated <= 1024 * 1024


def test_corrupt_compression_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="corrupt"):
        list(Inflater(limit=1024).steps(b"\x1f\x8b\x08\x00garbage-garbage"))
