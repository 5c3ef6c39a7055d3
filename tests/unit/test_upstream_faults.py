"""Upstream's failures as a user reads them: Retry-After of any shape, redirects, the key."""

from __future__ import annotations

import email.utils
import time

import orjson
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from server.errors import MAX_RETRY_AFTER_S, error_from_response, parse_retry_after
from server.relay.redaction import KeyRedactor

KEY = "sk-or-v1-0123456789abcdef"


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


@given(st.text())
def test_any_retry_after_is_none_or_whole_seconds_within_a_day(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (isinstance(seconds, int) and 0 <= seconds <= MAX_RETRY_AFTER_S)


def test_retry_after_numbers_and_dates() -> None:
    assert [parse_retry_after(v) for v in ("17", "2.6", "1e400", "-3", "nan", "soon")] == [
        17,
        3,
        MAX_RETRY_AFTER_S,
        0,
        None,
        None,
    ]
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = parse_retry_after(in_a_minute)
    assert seconds is not None and 55 <= seconds <= 60


def test_a_redirect_is_a_502_that_names_no_location() -> None:
    error = error_from_response(302, b"", headers(Location="http://elsewhere.example/x"))
    assert error.status == 502 and "redirect" in error.message and "elsewhere" not in error.message


def test_an_error_answer_keeps_its_status_message_and_wait() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Slow down"}})
    error = error_from_response(429, body, headers(Retry_After="1e400"))
    assert (error.status, error.message, error.retry_after) == (429, "Slow down", 86400)


def test_the_key_is_taken_out_in_every_disguise() -> None:
    redactor = KeyRedactor(KEY)
    for echo in (KEY, KEY.upper(), " ".join(KEY), ".".join(KEY.upper()), f"\n{KEY}\n"):
        assert KEY.lower() not in redactor.text(f"bad key {echo}!").lower().replace(" ", "")
    assert redactor.text("nothing here") == "nothing here"


def test_payloads_and_values_are_cleaned_before_and_after_decoding() -> None:
    redactor = KeyRedactor(KEY)
    payload = orjson.dumps({"choices": [{"finish_reason": KEY}]})
    assert redactor.found_in([b"{}", payload]) and not redactor.found_in([b"{}"])
    (cleaned,) = redactor.payloads([payload])
    assert orjson.loads(cleaned) == {"choices": [{"finish_reason": "[redacted]"}]}
    assert redactor.value({"note": f"x{KEY}"}) == {"note": "x[redacted]"}
    assert redactor.value({"tokens": 3}) == {"tokens": 3}


def test_a_key_with_json_escaped_characters_is_found_in_its_escaped_form() -> None:
    odd = 'sk-"odd/key\\1'
    redactor = KeyRedactor(odd)
    assert redactor.found_in([orjson.dumps({"m": odd})])
    assert redactor.found_in([b'{"m": "sk-\\"odd\\/key\\\\1"}'])
    assert KeyRedactor(None).text(odd) == odd and not KeyRedactor("").found_in([b"x"])
