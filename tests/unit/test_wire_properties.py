"""Properties of the wire decoding: however upstream cuts its bytes and its text, the
payloads and the text come out exact (hypothesis tries the cuts)."""

from __future__ import annotations

import itertools
import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from server.relay.wire import ChunkReader, SSEDecoder
from tests.fake_openrouter import chunk

LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
# Payload text without line breaks, as one `data:` line carries it.
PAYLOADS = st.lists(
    st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=40),
    min_size=1,
    max_size=8,
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(PAYLOADS, LINE_ENDS, st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_line_end_and_any_cut_give_the_same_payloads(
    payloads: list[str], end: str, points: list[int]
) -> None:
    stream = "".join(f": comment{end}data: {p}{end}{end}" for p in payloads).encode()
    decoder = SSEDecoder()
    got = [payload for read in cut(stream, points) for payload in decoder.feed(read)]
    got += decoder.close()
    assert got == [p.encode() for p in payloads]


@given(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_text_cut_anywhere_in_utf16_arrives_whole(text: str, points: list[int]) -> None:
    # A JavaScript server cuts its string in UTF-16 code units, pairs included, and each
    # chunk's JSON escapes what it must (json.dumps writes a lone half as \\udXXX).
    units = text.encode("utf-16-le")
    pieces = [
        piece.decode("utf-16-le", "surrogatepass")
        for piece in cut(units, [2 * (p // 2) for p in points])
    ]
    reader = ChunkReader()
    got = ""
    for piece in pieces:
        body = chunk()
        body["choices"][0]["delta"]["content"] = "@@"
        payload = orjson.dumps(body).replace(b'"@@"', json.dumps(piece).encode())
        got += "".join(event.content for event in reader.read([payload]).events)
    got += "".join(event.content for event in reader.close())
    assert got == text
