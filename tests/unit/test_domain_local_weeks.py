"""The clinic's weeks (`domain.weeks`, current rules): a week starts at local midnight in
the program's time zone and lasts 7 local calendar days, so a week across a
daylight-saving change lasts 167 or 169 hours; events keep their moments in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from domain_scenario import CATALOG, HOUR, Episode, plan
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain.programs import ProgramCatalog, parse_program
from domain.state import AttendanceWeek
from domain.vocabulary import DeadlineRules, HoldKind
from domain.weeks import day_start, week_ending, week_from, weeks_so_far

NEW_YORK = ZoneInfo("America/New_York")


def catalog_in(zone: str) -> ProgramCatalog:
    """The adult program, run by a clinic in `zone`."""
    data = CATALOG.get("adult-iop").model_dump()
    return ProgramCatalog({"adult-iop": parse_program({**data, "timezone": zone})})


def local(*args: int) -> datetime:
    """A New York wall-clock time, as the UTC moment it is."""
    return datetime(*args, tzinfo=NEW_YORK).astimezone(UTC)


def admitted_in_new_york(at: datetime) -> Episode:
    ep = Episode(catalog=catalog_in("America/New_York")).assessed()
    ep.now = at
    ep.run(ep.make(c.AdmitClient))
    ep.run(ep.make(c.RecordTreatmentPlan, plan=plan()))
    return ep


def hours(week: AttendanceWeek) -> float:
    return (week.end - week.start) / HOUR


class TestTheFirstWeek:
    def test_given_an_admission_mid_afternoon_then_its_week_starts_at_local_midnight(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 1, 7, 15, 30))
        (week,) = weeks_so_far(ep.s)
        assert week.start == local(2026, 1, 7) == datetime(2026, 1, 7, 5, tzinfo=UTC)
        assert week.end == local(2026, 1, 14)

    def test_given_an_admission_late_in_the_local_evening_then_the_local_day_counts_not_utc(
        self,
    ) -> None:
        # 22:00 in New York is already the next day in UTC.
        ep = admitted_in_new_york(local(2026, 1, 7, 22))
        assert weeks_so_far(ep.s)[0].start == local(2026, 1, 7)

    def test_given_the_first_rules_then_a_week_is_still_seven_times_24_hours_from_admission(
        self,
    ) -> None:
        admitted = local(2026, 3, 4, 15)
        assert week_from(admitted, DeadlineRules()) == admitted + timedelta(days=7)


class TestDaylightSaving:
    def test_given_the_week_of_the_spring_change_then_it_lasts_167_hours(self) -> None:
        # Clocks go forward at 02:00 on Sunday 2026-03-08.
        ep = admitted_in_new_york(local(2026, 3, 4, 15))
        (week,) = weeks_so_far(ep.s)
        assert (week.start, week.end) == (local(2026, 3, 4), local(2026, 3, 11))
        assert hours(week) == 167

    def test_given_the_week_of_the_autumn_change_then_it_lasts_169_hours(self) -> None:
        # Clocks go back at 02:00 on Sunday 2026-11-01.
        ep = admitted_in_new_york(local(2026, 10, 28, 15))
        (week,) = weeks_so_far(ep.s)
        assert (week.start, week.end) == (local(2026, 10, 28), local(2026, 11, 4))
        assert hours(week) == 169

    def test_when_the_spring_week_is_judged_then_a_late_tuesday_session_counts_in_it(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 3, 4, 15))
        # 23:00 on the week's last local day: under 7 x 24 h it would fall in the next week.
        late = local(2026, 3, 10, 23)
        ep.session("late", late, hours=0.5)
        ep.now = late + HOUR
        ep.attendance("late", "attended")
        events = ep.tick(local(2026, 3, 11))
        (check,) = [e for e in events if e.type == "weekly_attendance_checked"]
        assert check.attended_hours == 0.5
        assert (check.week_start, check.week_end) == (local(2026, 3, 4), local(2026, 3, 11))

    def test_when_weeks_are_judged_across_a_change_then_each_starts_at_local_midnight(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 2, 25, 9))
        ep.tick(local(2026, 3, 18, 1))
        weeks = weeks_so_far(ep.s)
        assert [w.start.astimezone(NEW_YORK).time().hour for w in weeks] == [0, 0, 0, 0]
        assert [hours(w) for w in weeks[:3]] == [168, 167, 168]
        assert all(a.end == b.start for a, b in pairwise(weeks))

    def test_then_the_check_events_stay_in_utc(self) -> None:
        ep = admitted_in_new_york(local(2026, 3, 4, 15))
        (check,) = [e for e in ep.tick(local(2026, 3, 11)) if e.type == "weekly_attendance_checked"]
        assert check.week_end.utcoffset() == timedelta(0)
        assert check.model_dump(mode="json")["week_end"] == "2026-03-11T04:00:00Z"


class TestAHoldInTheClinicsWeek:
    def test_given_a_resume_then_the_fresh_week_starts_at_local_midnight_of_that_day(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 3, 2, 10))
        held_at = local(2026, 3, 4, 12)
        ep.now = held_at
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.now = local(2026, 3, 9, 16)
        ep.run(ep.make(c.ResumeFromHold))
        assert weeks_so_far(ep.s) == (
            AttendanceWeek(start=local(2026, 3, 2), end=held_at),
            AttendanceWeek(start=local(2026, 3, 9), end=local(2026, 3, 16)),
        )

    def test_given_a_hold_ended_the_day_it_began_then_no_session_counts_in_two_weeks(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 3, 2, 10))
        ep.now = local(2026, 3, 4, 12)
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.now = local(2026, 3, 4, 17)
        ep.run(ep.make(c.ResumeFromHold))
        # The cut-short week ends where the fresh one, of the resume's day, begins.
        assert weeks_so_far(ep.s) == (
            AttendanceWeek(start=local(2026, 3, 2), end=local(2026, 3, 4)),
            AttendanceWeek(start=local(2026, 3, 4), end=local(2026, 3, 11)),
        )

    def test_given_a_hold_and_resume_on_the_admission_day_then_no_empty_week_is_kept(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 3, 2, 10))
        ep.now = local(2026, 3, 2, 11)
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.now = local(2026, 3, 2, 15)
        ep.run(ep.make(c.ResumeFromHold))
        assert weeks_so_far(ep.s) == (
            AttendanceWeek(start=local(2026, 3, 2), end=local(2026, 3, 9)),
        )


class TestMidnightThatDoesNotExist:
    def test_given_a_change_at_midnight_then_the_day_starts_when_the_clock_jumps(self) -> None:
        # Santiago moves its clocks from 00:00 to 01:00 on 2026-09-06.
        zone = ZoneInfo("America/Santiago")
        start = day_start(datetime(2026, 9, 6).date(), zone)
        assert start.astimezone(zone).hour == 1
        assert (start - timedelta(seconds=1)).astimezone(zone).day == 5


ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")


@given(
    zone=st.sampled_from(ZONES),
    admitted=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    weeks=st.integers(min_value=1, max_value=60),
)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_given_any_zone_and_admission_then_weeks_are_seven_local_days_back_to_back(
    zone: str, admitted: datetime, weeks: int
) -> None:
    rules = DeadlineRules(revision=2, timezone=zone)
    local_zone = ZoneInfo(zone)
    start, end = week_ending(week_from(admitted, rules), rules)
    assert start <= admitted < end
    for _ in range(weeks):
        start_local, end_local = start.astimezone(local_zone), end.astimezone(local_zone)
        assert (end_local.date() - start_local.date()).days == 7
        assert (start_local.hour, start_local.minute) == (0, 0)
        assert timedelta(hours=166) <= end - start <= timedelta(hours=170)
        start, end = end, week_from(end, rules)
