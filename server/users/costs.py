"""What a chat may cost and what it did cost, in whole nano-dollars (SPEC "Budgets").

Money is kept as integers of 1e-9 US dollars: a conditional `spent + reserved + amount <=
limit` in the database is then exact on every engine, and the smallest price OpenRouter
lists (fractions of a micro-dollar per token) still adds up without drift. A reservation
is rounded up and a settled cost to the nearest nano-dollar.

The worst case follows SPEC: the prompt counts its characters / 4 as tokens at the prompt
price, the answer `max_tokens` at the completion price. A chat that names no `max_tokens`
gets the largest number that what is left affords, capped by the model's own limit (its
context less the prompt, and its longest answer); fewer than MIN_TOKENS affordable is a
refusal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

NANOS_PER_USD = 10**9
# Below this many affordable answer tokens a chat is refused rather than cut to nothing.
MIN_TOKENS = 256
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in US dollars per token, from upstream's `/models`."""

    prompt: Decimal
    completion: Decimal
    # Tokens of prompt and answer together, when upstream says.
    context_length: int | None = None
    # The longest answer the model gives (OpenRouter's `top_provider.max_completion_tokens`).
    max_completion_tokens: int | None = None


def _per_token(value: object) -> Decimal | None:
    """OpenRouter lists prices as strings ("0.0000006"); "-1" marks a variable price."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def price_of(model: dict[str, Any] | None) -> Price | None:
    """A model entry's price (`/api/models` shape), or None when it has no usable one."""
    if model is None or not isinstance(model.get("pricing"), dict):
        return None
    pricing = model["pricing"]
    prompt, completion = _per_token(pricing.get("prompt")), _per_token(pricing.get("completion"))
    if prompt is None or completion is None:
        return None
    return Price(
        prompt,
        completion,
        _positive(model.get("context_length")),
        _positive(model.get("max_completion_tokens")),
    )


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def estimated_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def _nanos(usd: Decimal, rounding: str) -> int:
    return int((usd * NANOS_PER_USD).to_integral_value(rounding=rounding))


def worst_cost(price: Price, prompt_chars: int, max_tokens: int) -> int:
    """The most the chat can cost, rounded up: what is reserved before it starts."""
    usd = estimated_tokens(prompt_chars) * price.prompt + max_tokens * price.completion
    return _nanos(usd, ROUND_CEILING)


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a chat may spend: the `max_tokens` it runs with (None: upstream's own, when
    the answer is free and the model names no limit) and the reservation it makes."""

    max_tokens: int | None
    reserve: int


def allowance(
    price: Price, prompt_chars: int, left: int | None, requested: int | None
) -> Allowance | None:
    """The largest answer `left` nano-dollars afford (None: no limit), or None: refused.

    A requested `max_tokens` that fits is kept; one that does not is cut to what fits,
    as a chat without one gets: a shorter answer, not a refusal, down to MIN_TOKENS.
    """
    prompt_tokens = estimated_tokens(prompt_chars)
    # The model's own limit: what its context leaves after the prompt, and its longest answer.
    caps = [price.max_completion_tokens]
    if price.context_length is not None:
        caps.append(max(1, price.context_length - prompt_tokens))
    cap = min((n for n in caps if n is not None), default=None)
    if left is None:
        affordable = None
    else:
        room = Decimal(left) / NANOS_PER_USD - prompt_tokens * price.prompt
        if room < 0:
            return None
        affordable = (
            None
            if price.completion == 0
            else int((room / price.completion).to_integral_value(rounding=ROUND_FLOOR))
        )
    limits = [n for n in (requested, affordable, cap) if n is not None]
    tokens = min(limits) if limits else None
    # Not even MIN_TOKENS fit, and the chat would be cut below what it asked: refused.
    cut_short = affordable is not None and tokens == affordable and affordable < MIN_TOKENS
    if cut_short and (requested is None or requested > (affordable or 0)):
        return None
    if tokens is None:
        return Allowance(None, worst_cost(price, prompt_chars, 0))
    return Allowance(tokens, worst_cost(price, prompt_chars, tokens))


def _usage_number(usage: dict[str, Any], name: str) -> float | None:
    value = usage.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def settled_cost(
    price: Price | None,
    usage: dict[str, Any] | None,
    prompt_chars: int,
    relayed_chars: int,
) -> int | None:
    """What the chat cost (None: unknown): upstream's `usage.cost`, else its tokens at the
    price, else (a chat cancelled or failed before usage came) the prompt's estimate plus
    the text relayed so far, characters / 4, at the completion price."""
    if usage is not None:
        cost = _usage_number(usage, "cost")
        if cost is not None:
            return _nanos(Decimal(repr(cost)), ROUND_HALF_UP)
        prompt = _usage_number(usage, "prompt_tokens")
        completion = _usage_number(usage, "completion_tokens")
        if price is not None and prompt is not None and completion is not None:
            usd = int(prompt) * price.prompt + int(completion) * price.completion
            return _nanos(usd, ROUND_HALF_UP)
    if price is None:
        return None
    usd = (
        estimated_tokens(prompt_chars) * price.prompt
        + estimated_tokens(relayed_chars) * price.completion
    )
    return _nanos(usd, ROUND_HALF_UP)


def prompt_chars(messages: object) -> int:
    """The prompt's characters: each message's text, and a part that is not text (an image
    as a data URL) by the length of its JSON, which only ever overestimates."""
    total = 0
    if not isinstance(messages, list):
        return total
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                total += len(text) if isinstance(text, str) else len(orjson.dumps(part))
    return total


def usd(nanos: int) -> float:
    """Nano-dollars as the API shows money: a JSON number of US dollars."""
    return nanos / NANOS_PER_USD


def nanos_of_usd(dollars: float) -> int:
    """A budget in dollars (the admin's, DEFAULT_BUDGET_USD) as whole nano-dollars."""
    return _nanos(Decimal(repr(dollars)), ROUND_FLOOR)


def cents(nanos: int) -> str:
    """`$4.98`: what the refusal shows."""
    amount = (Decimal(nanos) / NANOS_PER_USD).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${amount}"
