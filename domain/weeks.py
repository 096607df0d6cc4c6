"""A week of attendance: the one definition the weekly intensity check and the
attended-hours read model share.

The program's weekly minimum (ASAM 2.1: at least 9 hours for adults) is judged over the
episode's own weeks, not ISO calendar weeks. A week is a half-open window `[start, end)`,
each next one starts where the last ended, and a session counts in the week its start
falls in. How long a week is depends on the rules the episode was admitted under
(`DeadlineRules`):

- first rules (revision 1, recorded histories): the first week starts at the moment of
  admission and every week is exactly `7 x 24 h`; a resume from hold starts a fresh
  week at the moment of the resume.
- current rules: weeks are the clinic's. The first starts at local midnight of the
  admission day in the program's time zone, and each lasts 7 local calendar days, so a
  week across a daylight-saving change lasts 167 or 169 hours. A resume from hold starts
  a fresh week at local midnight of the resume day.

Either way, the week a hold cut short is kept, unjudged: it ends where the hold began
(under the current rules, at the latest where the fresh week begins, so that no session
counts in two weeks). Moments stay in UTC; only the day boundaries are local.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.local_text import local_iso
from domain.state import AttendanceWeek, EpisodeState, Session
from domain.vocabulary import AttendanceStatus, DeadlineRules

WEEK = timedelta(days=7)
WEEK_DAYS = 7


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


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first moment of the local calendar `day` in `zone`, in UTC.

    Local midnight, read with the offset in force before it: where a daylight-saving
    change skips midnight, that is the moment the clock jumps, the day's first moment.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The local calendar day `moment` falls on in `zone`."""
    return moment.astimezone(zone).date()


def last_local_day(end: datetime, zone: ZoneInfo) -> date:
    """The last local day a window ending (exclusively) at `end` covers."""
    return local_day(end - timedelta(microseconds=1), zone)


def week_from(moment: datetime, rules: DeadlineRules) -> datetime:
    """The end of the week that starts at `moment`: an admission, a resume, or where the
    week before ended (under the current rules, the week starts on `moment`'s local day)."""
    if not rules.current:
        return moment + WEEK
    zone = rules.zone
    return day_start(local_day(moment, zone) + timedelta(days=WEEK_DAYS), zone)


def fresh_week_start(moment: datetime, rules: DeadlineRules) -> datetime:
    """Where a week that starts afresh at `moment` begins."""
    return week_ending(week_from(moment, rules), rules)[0]


def week_ending(end: datetime, rules: DeadlineRules | None = None) -> tuple[datetime, datetime]:
    """The (start, end) of the week that ends at `end`."""
    if rules is None or not rules.current:
        return end - WEEK, end
    zone = rules.zone
    return day_start(local_day(end, zone) - timedelta(days=WEEK_DAYS), zone), end


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
    start, end = week_ending(state.next_week_check_at, state.rules)
    return AttendanceWeek(start=start, end=end)


def cut_short(
    state: EpisodeState, held_since: datetime, resumed_at: datetime
) -> tuple[AttendanceWeek, ...]:
    """The open week as a hold from `held_since` to `resumed_at` left it: it ends where
    the hold began, or where the fresh week after the resume begins if that is earlier,
    unjudged (nothing, if that is where the week began)."""
    week = open_week(state)
    if week is None:  # pragma: no cover - only an admitted episode can be put on hold
        return ()
    end = min(week.end, held_since, fresh_week_start(resumed_at, state.rules))
    return (week.replace(end=end),) if end > week.start else ()


def weeks_so_far(state: EpisodeState) -> tuple[AttendanceWeek, ...]:
    """Every week of the episode, oldest first: the closed ones, then the open one."""
    current = open_week(state)
    return (*state.attendance_weeks, *((current,) if current is not None else ()))


@dataclass(frozen=True)
class WeekReport:
    """One week as staff read it: its moments (UTC) and its local calendar days, the hours
    attended as the sessions now stand, and the check's verdict once judged.

    `status` is `judged` (checked at its end), `open` (in progress, or the one the
    episode left treatment in) or `cut_short` (a hold interrupted it; never judged).
    """

    start: datetime
    end: datetime
    timezone: str
    first_day: date
    last_day: date
    attended_hours: float
    minimum_hours: float | None
    below_minimum: bool | None
    status: str

    @property
    def local_start(self) -> str:
        return local_iso(self.start, ZoneInfo(self.timezone))

    @property
    def local_end(self) -> str:
        return local_iso(self.end, ZoneInfo(self.timezone))


def week_reports(state: EpisodeState) -> tuple[WeekReport, ...]:
    """Every week of the episode, oldest first, in the clinic's local days (UTC for an
    episode admitted under the first rules, whose weeks were counted in UTC)."""
    zone = state.rules.zone
    current = open_week(state)
    closed = [
        (w, "judged" if w.below_minimum is not None else "cut_short")
        for w in state.attendance_weeks
    ]
    return tuple(
        WeekReport(
            start=week.start,
            end=week.end,
            timezone=zone.key,
            first_day=local_day(week.start, zone),
            last_day=last_local_day(week.end, zone),
            attended_hours=round(tally(state.sessions, week.start, week.end).hours, 2),
            minimum_hours=week.minimum_hours,
            below_minimum=week.below_minimum,
            status=status,
        )
        for week, status in (*closed, *(((current, "open"),) if current is not None else ()))
    )


def latest_judged(state: EpisodeState) -> AttendanceWeek | None:
    """The last week the weekly check judged, if any."""
    return next((w for w in reversed(state.attendance_weeks) if w.below_minimum is not None), None)
