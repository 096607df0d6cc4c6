"""A week of attendance: the one definition the weekly intensity check and the
attended-hours read model share.

The program's weekly minimum (ASAM 2.1: at least 9 hours for adults) is judged over the
episode's own weeks, not calendar weeks: the first week starts at admission, each next
one where the last ended, and a resume from hold starts afresh (the week the hold cut
short is kept, unjudged). A week is the half-open window `[start, start + 7 days)`, and
a session counts in the week its start falls in. Recorded histories judged weeks this
way, so this is the definition everything else follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.state import AttendanceWeek, EpisodeState, Session
from domain.vocabulary import AttendanceStatus

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class AttendanceTally:
    """What happened in one week: hours attended and how many sessions had each outcome."""

    start: datetime
    end: datetime
    hours: float
    attended: int
    partial: int
    excused: int
    no_shows: int


def week_ending(end: datetime) -> tuple[datetime, datetime]:
    """The (start, end) of the week that ends at `end`."""
    return end - WEEK, end


def tally(sessions: Iterable[Session], start: datetime, end: datetime) -> AttendanceTally:
    """Attendance of the sessions that start in `[start, end)`."""
    in_week = [s for s in sessions if start <= s.starts_at < end]
    outcomes = [s.status for s in in_week]
    return AttendanceTally(
        start=start,
        end=end,
        hours=sum(s.attended_hours for s in in_week),
        attended=outcomes.count(AttendanceStatus.ATTENDED),
        partial=outcomes.count(AttendanceStatus.PARTIAL),
        excused=outcomes.count(AttendanceStatus.EXCUSED),
        no_shows=outcomes.count(AttendanceStatus.NO_SHOW),
    )


def open_week(state: EpisodeState) -> AttendanceWeek | None:
    """The week in progress (or the one the episode left treatment in), not judged yet."""
    if state.next_week_check_at is None:
        return None
    start, end = week_ending(state.next_week_check_at)
    return AttendanceWeek(start=start, end=end)


def cut_short(state: EpisodeState, held_since: datetime) -> tuple[AttendanceWeek, ...]:
    """The open week as a hold that began at `held_since` left it: it ends there, unjudged
    (nothing, if the hold began the moment the week did)."""
    week = open_week(state)
    if week is None:  # pragma: no cover - only an admitted episode can be put on hold
        return ()
    end = min(week.end, held_since)
    return (week.model_copy(update={"end": end}),) if end > week.start else ()


def weeks_so_far(state: EpisodeState) -> tuple[AttendanceWeek, ...]:
    """Every week of the episode, oldest first: the closed ones, then the open one."""
    current = open_week(state)
    return (*state.attendance_weeks, *((current,) if current is not None else ()))
