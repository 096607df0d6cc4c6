"""A week of attendance (`domain.weeks`): the episode's own weeks, which the weekly
intensity check judges and the attended-hours read model shows.

Weeks of exactly 7 x 24 h from admission are the first rules' (recorded histories); the
clinic's local weeks of the current rules are in `test_domain_local_weeks.py`."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

from domain_scenario import DAY, HOUR, T0, Episode, plan

from domain import commands as c
from domain.state import AttendanceWeek, EpisodeState
from domain.vocabulary import FIRST_RULES, HoldKind
from domain.weeks import WEEK, open_week, tally, week_ending, weeks_so_far

# A Wednesday afternoon: neither an ISO week's start nor midnight.
WEDNESDAY = T0 + 2 * DAY + 5 * HOUR


def admitted_on_wednesday() -> Episode:
    ep = Episode(rules_revision=FIRST_RULES).assessed()
    ep.now = WEDNESDAY
    ep.run(ep.make(c.AdmitClient))
    ep.run(ep.make(c.RecordTreatmentPlan, plan=plan()))
    return ep


def attend(ep: Episode, session_id: str, starts_at: datetime, status: str, **kw: float) -> None:
    ep.session(session_id, starts_at)
    ep.now = max(ep.now, starts_at + HOUR)
    ep.attendance(session_id, status, **kw)


class TestTheWeek:
    def test_a_week_is_the_seven_days_before_its_end(self) -> None:
        assert week_ending(WEDNESDAY) == (WEDNESDAY - 7 * DAY, WEDNESDAY)

    def test_a_session_counts_in_the_week_its_start_falls_in(self) -> None:
        ep = admitted_on_wednesday()
        attend(ep, "first", WEDNESDAY, "attended")
        # An hour long, so that it ends as the next one starts (sessions may not overlap).
        ep.session("last", WEDNESDAY + WEEK - HOUR, hours=1)
        ep.now = WEDNESDAY + WEEK
        ep.attendance("last", "attended")
        attend(ep, "next", WEDNESDAY + WEEK, "attended")
        week = tally(ep.s.sessions, WEDNESDAY, WEDNESDAY + WEEK)
        assert (week.attended, week.hours) == (2, 4)

    def test_tally_counts_hours_and_each_outcome(self) -> None:
        ep = admitted_on_wednesday()
        attend(ep, "s1", WEDNESDAY + HOUR, "attended")
        attend(ep, "s2", WEDNESDAY + DAY, "partial", hours=1.5)
        attend(ep, "s3", WEDNESDAY + 2 * DAY, "excused")
        attend(ep, "s4", WEDNESDAY + 3 * DAY, "no_show")
        ep.session("s5", WEDNESDAY + 4 * DAY)  # not recorded yet: counts nowhere
        week = tally(ep.s.sessions, WEDNESDAY, WEDNESDAY + WEEK)
        assert (week.hours, week.attended, week.partial, week.excused, week.no_shows) == (
            4.5,
            1,
            1,
            1,
            1,
        )

    def test_given_the_first_rules_then_the_first_week_starts_at_admission_not_at_midnight(
        self,
    ) -> None:
        ep = admitted_on_wednesday()
        assert open_week(ep.s) == AttendanceWeek(start=WEDNESDAY, end=WEDNESDAY + WEEK)

    def test_nothing_is_open_before_admission(self) -> None:
        ep = Episode().assessed()
        assert open_week(ep.s) is None
        assert weeks_so_far(ep.s) == ()


class TestTheWeeklyCheckUsesTheWeek:
    def test_the_check_reports_the_tally_of_its_week(self) -> None:
        ep = admitted_on_wednesday()
        attend(ep, "s1", WEDNESDAY + HOUR, "attended")
        attend(ep, "s2", WEDNESDAY + DAY, "partial", hours=2)
        (check,) = [e for e in ep.tick(WEDNESDAY + WEEK) if e.type == "weekly_attendance_checked"]
        week = tally(ep.s.sessions, check.week_start, check.week_end)
        assert (check.week_start, check.week_end) == (WEDNESDAY, WEDNESDAY + WEEK)
        assert check.attended_hours == week.hours == 5

    def test_a_checked_week_is_recorded_with_its_verdict_and_the_next_one_opens(self) -> None:
        ep = admitted_on_wednesday()
        attend(ep, "s1", WEDNESDAY + HOUR, "attended")
        ep.tick(WEDNESDAY + WEEK)
        assert weeks_so_far(ep.s) == (
            AttendanceWeek(
                start=WEDNESDAY,
                end=WEDNESDAY + WEEK,
                attended_hours=3,
                minimum_hours=9,
                below_minimum=True,
            ),
            AttendanceWeek(start=WEDNESDAY + WEEK, end=WEDNESDAY + 2 * WEEK),
        )

    def test_weeks_follow_each_other_without_gaps(self) -> None:
        ep = admitted_on_wednesday()
        ep.tick(WEDNESDAY + 3 * WEEK)
        weeks = weeks_so_far(ep.s)
        assert len(weeks) == 4
        assert all(a.end == b.start for a, b in pairwise(weeks))


class TestAHoldCutsTheWeekShort:
    def test_the_week_a_hold_interrupted_is_kept_unjudged_and_resume_opens_a_new_one(
        self,
    ) -> None:
        ep = admitted_on_wednesday()
        attend(ep, "s1", WEDNESDAY + HOUR, "attended")
        held_at = WEDNESDAY + 2 * DAY
        ep.now = held_at
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.now = held_at + 10 * DAY
        ep.run(ep.make(c.ResumeFromHold))
        assert weeks_so_far(ep.s) == (
            AttendanceWeek(start=WEDNESDAY, end=held_at),
            AttendanceWeek(start=ep.now, end=ep.now + WEEK),
        )

    def test_a_hold_begun_as_its_week_began_leaves_no_empty_week(self) -> None:
        ep = admitted_on_wednesday()
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.advance(DAY)
        ep.run(ep.make(c.ResumeFromHold))
        assert weeks_so_far(ep.s) == (AttendanceWeek(start=ep.now, end=ep.now + WEEK),)

    def test_a_week_that_ended_unchecked_before_the_hold_is_kept_whole(self) -> None:
        ep = admitted_on_wednesday()
        ep.now = WEDNESDAY + WEEK + DAY  # no tick ran at the week's end
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.advance(DAY)
        ep.run(ep.make(c.ResumeFromHold))
        assert weeks_so_far(ep.s)[0] == AttendanceWeek(start=WEDNESDAY, end=WEDNESDAY + WEEK)


def test_a_state_saved_before_weeks_were_recorded_still_loads() -> None:
    state = admitted_on_wednesday().s
    saved = state.model_dump(mode="json")
    del saved["attendance_weeks"]
    assert EpisodeState.model_validate(saved).attendance_weeks == ()
