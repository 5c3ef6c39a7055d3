"""Budget arithmetic without a database: periods in UTC, the worst cost, the largest
affordable answer and what a chat settles to (SPEC "Budgets")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from server.users.costs import (
    MIN_TOKENS,
    Allowance,
    Price,
    allowance,
    cents,
    nanos_of_usd,
    price_of,
    prompt_chars,
    settled_cost,
    worst_cost,
)
from server.users.periods import (
    next_period_start,
    period_start,
    recent_period_starts,
)

MINI = Price(Decimal("0.00000015"), Decimal("0.0000006"), 128_000)


@pytest.mark.parametrize(
    ("now", "period", "start", "resets"),
    [
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "month", date(2026, 12, 1), date(2027, 1, 1)),
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "month", date(2027, 1, 1), date(2027, 2, 1)),
        (datetime(2026, 12, 6, 16, 0, tzinfo=UTC), "week", date(2026, 11, 30), date(2026, 12, 7)),
        (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "week", date(2026, 11, 30), date(2026, 12, 7)),
        (datetime(2026, 12, 6, 23, 59, tzinfo=UTC), "day", date(2026, 12, 6), date(2026, 12, 7)),
    ],
)
def test_periods_start_and_reset_in_utc(
    now: datetime, period: str, start: date, resets: date
) -> None:
    assert period_start(now, period) == start  # type: ignore[arg-type]
    assert next_period_start(start, period) == resets  # type: ignore[arg-type]


def test_a_time_elsewhere_counts_by_its_utc_date() -> None:
    # 01:00 on the 1st in UTC+2 is still the last day of the previous month in UTC.
    plus_two = timezone(timedelta(hours=2))
    assert period_start(datetime(2027, 1, 1, 1, 0, tzinfo=plus_two), "month") == date(2026, 12, 1)


def test_the_last_twelve_months_cross_a_year() -> None:
    starts = recent_period_starts(datetime(2027, 2, 10, tzinfo=UTC), "month", 12)
    assert starts[0] == date(2027, 2, 1)
    assert starts[1] == date(2027, 1, 1)
    assert starts[-1] == date(2026, 3, 1)
    assert len(set(starts)) == 12


def test_prices_are_read_from_upstream_strings_and_a_variable_price_is_none() -> None:
    pricing = {"prompt": "0.000003", "completion": "0.000015"}
    model = {"id": "m", "context_length": 8192, "pricing": pricing}
    assert price_of(model) == Price(Decimal("0.000003"), Decimal("0.000015"), 8192)
    assert price_of({"id": "m", "pricing": None}) is None
    assert price_of({"id": "m", "pricing": {"prompt": "-1", "completion": "-1"}}) is None
    assert price_of({"id": "m", "pricing": {"prompt": "x", "completion": "0"}}) is None
    assert price_of(None) is None


def test_the_worst_cost_is_prompt_chars_over_four_and_max_tokens() -> None:
    # 10 chars are 3 tokens at 150 n$, 1,000 answer tokens at 600 n$.
    assert worst_cost(MINI, 10, 1000) == 3 * 150 + 1000 * 600


def test_a_chat_without_max_tokens_gets_what_is_left_and_no_more() -> None:
    left = 1_000_000  # a tenth of a cent
    granted = allowance(MINI, 40, left, None)
    assert granted is not None and granted.max_tokens is not None
    assert granted.reserve <= left
    assert worst_cost(MINI, 40, granted.max_tokens + 1) > left
    assert granted.max_tokens == (left - 10 * 150) // 600


def test_the_model_limit_caps_an_ample_budget() -> None:
    granted = allowance(MINI, 4000, 10**12, None)
    assert granted is not None
    assert granted.max_tokens == 128_000 - 1000


def test_the_models_longest_answer_caps_it_below_its_context() -> None:
    longest = Price(MINI.prompt, MINI.completion, 128_000, 16_384)
    granted = allowance(longest, 4000, 10**12, None)
    assert granted is not None and granted.max_tokens == 16_384
    # A context that leaves less than the longest answer is the cap.
    granted = allowance(Price(MINI.prompt, MINI.completion, 2_000, 16_384), 4000, 10**12, None)
    assert granted is not None and granted.max_tokens == 1_000


def test_no_budget_means_no_cap_but_the_models() -> None:
    granted = allowance(MINI, 40, None, None)
    assert granted is not None and granted.max_tokens == 128_000 - 10
    unknown_context = Price(MINI.prompt, MINI.completion, None)
    expected = Allowance(500, worst_cost(unknown_context, 40, 500))
    assert allowance(unknown_context, 40, None, 500) == expected


def test_below_min_tokens_is_a_refusal_unless_the_chat_asked_for_less() -> None:
    left = worst_cost(MINI, 40, MIN_TOKENS - 1)
    assert allowance(MINI, 40, left, None) is None
    assert allowance(MINI, 40, left, 1000) is None
    small = allowance(MINI, 40, left, 100)
    assert small is not None and small.max_tokens == 100
    assert allowance(MINI, 40, worst_cost(MINI, 40, MIN_TOKENS), None) is not None
    assert allowance(MINI, 40, 0, 1) is None


def test_a_requested_max_tokens_over_what_is_left_is_cut() -> None:
    left = worst_cost(MINI, 40, 500)
    granted = allowance(MINI, 40, left, 4000)
    assert granted is not None and granted.max_tokens == 500 and granted.reserve == left


def test_settled_cost_prefers_upstreams_cost_then_tokens_then_the_estimate() -> None:
    assert settled_cost(MINI, {"cost": 0.0001, "prompt_tokens": 1}, 40, 0) == 100_000
    tokens = {"prompt_tokens": 10, "completion_tokens": 20}
    assert settled_cost(MINI, tokens, 40, 0) == 10 * 150 + 20 * 600
    # Cancelled with no usage: the prompt's estimate and the text relayed, chars / 4.
    assert settled_cost(MINI, None, 40, 41) == 10 * 150 + 11 * 600
    assert settled_cost(None, None, 40, 41) is None
    assert settled_cost(None, {"cost": 0.5}, 40, 41) == 500_000_000


def test_prompt_chars_count_text_and_other_parts_by_their_json() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]},
    ]
    assert prompt_chars(messages) == 9 + 2 + len('{"type":"image_url"}')


def test_money_shown_in_cents_and_budgets_read_exactly() -> None:
    assert cents(4_980_000_000) == "$4.98"
    assert cents(5 * 10**9) == "$5.00"
    assert nanos_of_usd(0.1) == 100_000_000
    assert nanos_of_usd(5.0) == 5 * 10**9
