"""FakeClock: timers run only when time is advanced past them, each at its own time."""

from __future__ import annotations

from tests.fake_clock import FakeClock


def test_timers_run_in_order_at_their_own_time_and_may_schedule_more() -> None:
    clock = FakeClock()
    ran: list[tuple[str, float]] = []

    def second() -> None:
        ran.append(("second", clock.time()))
        clock.call_at(clock.time() + 1, lambda: ran.append(("third", clock.time())))

    clock.call_at(5, second)
    clock.call_at(2, lambda: ran.append(("first", clock.time())))
    clock.advance(1.9)
    assert ran == []
    clock.advance(4.1)
    assert ran == [("first", 2), ("second", 5), ("third", 6)]
    assert clock.time() == 6


def test_a_cancelled_timer_never_runs() -> None:
    clock = FakeClock()
    ran: list[str] = []
    clock.call_at(1, lambda: ran.append("no")).cancel()
    clock.advance(10)
    assert ran == []
