"""The simulated staff's calendar: round moments and the grain event times are read to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulation.runner import AFTERNOON, EVENING, GRAIN, MORNING, ROUNDS, Calendar

MONDAY = datetime(2027, 1, 4, tzinfo=UTC)
CALENDAR = Calendar(MONDAY)


def test_given_a_moment_between_rounds_when_asking_the_next_round_then_it_is_the_first_at_or_after_it() -> (
    None
):
    assert CALENDAR.next_round(MONDAY + timedelta(hours=10)) == MONDAY + AFTERNOON
    assert CALENDAR.next_round(MONDAY + AFTERNOON) == MONDAY + AFTERNOON
    assert CALENDAR.next_round(MONDAY + timedelta(hours=21)) == MONDAY + timedelta(days=1) + MORNING


def test_given_only_morning_rounds_when_asking_after_the_morning_then_it_is_the_next_morning() -> (
    None
):
    moment = MONDAY + timedelta(hours=9, seconds=1)
    assert CALENDAR.next_round(moment, (MORNING,)) == MONDAY + timedelta(days=1) + MORNING


def test_given_a_moment_before_the_morning_round_when_asking_the_last_round_then_it_is_the_previous_evening() -> (
    None
):
    tuesday = MONDAY + timedelta(days=1)
    assert CALENDAR.last_round(tuesday + timedelta(hours=8)) == MONDAY + EVENING
    assert CALENDAR.last_round(tuesday + MORNING) == tuesday + MORNING


def test_given_an_event_stamped_seconds_after_a_round_when_read_to_the_grain_then_it_is_the_round() -> (
    None
):
    for offset in ROUNDS:
        assert (offset % GRAIN) == timedelta(0)
        stamped = MONDAY + offset + timedelta(seconds=7, milliseconds=250)
        assert CALENDAR.grain(stamped) == MONDAY + offset
