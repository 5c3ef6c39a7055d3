"""The chat request check: OpenRouter's options validated, named in the 400, passed as given."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.errors import BadRequest
from server.relay.request import parse_chat_request
from tests.conftest import chat_body


def sent(**settings: Any) -> dict[str, Any]:
    """The upstream body a request with these chatSettings makes, as it goes on the wire."""
    payload = parse_chat_request(chat_body(**settings)).upstream_payload()
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(payload))
    return decoded


def test_options_are_passed_upstream_as_given() -> None:
    reasoning = {"effort": "high", "exclude": False}
    provider = {"order": ["openai", "azure"], "allow_fallbacks": False, "max_price": {"prompt": 1}}
    body = sent(max_tokens=256, top_p=0.9, reasoning=reasoning, provider=provider)
    assert (body["max_tokens"], body["top_p"]) == (256, 0.9)
    assert (body["reasoning"], body["provider"]) == (reasoning, provider)


def test_usage_is_asked_both_ways_and_unknown_settings_stay_home() -> None:
    body = sent(includeProfileContext=True, prompt="You are nice")
    assert body["usage"] == {"include": True}
    assert body["stream_options"] == {"include_usage": True}
    assert body["stream"] is True
    assert "includeProfileContext" not in body and "prompt" not in body and "top_p" not in body


@pytest.mark.parametrize("top_p", [0, 1, 0.5])
def test_top_p_bounds_are_included(top_p: float) -> None:
    assert sent(top_p=top_p)["top_p"] == top_p


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_tokens": 0}, "chatSettings.max_tokens must be an integer of at least 1"),
        ({"max_tokens": 1.5}, "chatSettings.max_tokens must be an integer of at least 1"),
        ({"max_tokens": "100"}, "chatSettings.max_tokens must be an integer of at least 1"),
        ({"max_tokens": True}, "chatSettings.max_tokens must be an integer of at least 1"),
        ({"top_p": 1.01}, "chatSettings.top_p must be a number from 0 to 1"),
        ({"top_p": -0.1}, "chatSettings.top_p must be a number from 0 to 1"),
        ({"top_p": "0.5"}, "chatSettings.top_p must be a number from 0 to 1"),
        ({"top_p": False}, "chatSettings.top_p must be a number from 0 to 1"),
        ({"reasoning": "high"}, "chatSettings.reasoning must be an object"),
        ({"reasoning": ["effort"]}, "chatSettings.reasoning must be an object"),
        ({"provider": "openai"}, "chatSettings.provider must be an object"),
    ],
)
def test_bad_options_are_400_naming_the_field(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(chat_body(**settings))
    assert (caught.value.status, caught.value.message) == (400, message)


def test_messages_nested_past_what_can_be_sent_are_400() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = {"type": "text", "nested": deep}
    body = {"chatSettings": {"model": "m"}, "messages": [{"role": "user", "content": [deep]}]}
    with pytest.raises(BadRequest, match="messages is nested too deeply"):
        parse_chat_request(body)
