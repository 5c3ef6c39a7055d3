"""Budget periods: a day, a week from Monday or a calendar month, in UTC (SPEC "Budgets").

A period is named by the date it starts on; spend is kept per account and period start, so
rolling over needs no job: the next chat simply falls in a row of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_period(name: str) -> Period:
    for period in PERIODS:
        if period == name:
            return period
    raise ValueError(f"unknown budget period {name!r}")


def period_start(now: datetime, period: Period) -> date:
    """The first day of the period holding `now` (its UTC date: a naive time is UTC)."""
    day = (now.astimezone(UTC) if now.tzinfo is not None else now).date()
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())  # Monday is 0
    return day.replace(day=1)


def next_period_start(start: date, period: Period) -> date:
    """The first day of the period after the one starting on `start`: when it resets."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if start.month == 12:
        return date(start.year + 1, 1, 1)
    return date(start.year, start.month + 1, 1)


def previous_period_start(start: date, period: Period) -> date:
    if period == "day":
        return start - timedelta(days=1)
    if period == "week":
        return start - timedelta(days=7)
    if start.month == 1:
        return date(start.year - 1, 12, 1)
    return date(start.year, start.month - 1, 1)


def recent_period_starts(now: datetime, period: Period, count: int) -> list[date]:
    """The starts of the last `count` periods, the current one first."""
    starts = [period_start(now, period)]
    while len(starts) < count:
        starts.append(previous_period_start(starts[-1], period))
    return starts


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def iso_utc(moment: datetime) -> str:
    """`2027-01-01T00:00:00Z`: the form every timestamp of the API takes."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
