"""The quality measures (domain.measures) on hand-built streams: each measure's numerator,
denominator and exclusions as docs/measures.md defines them."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain import events as ev
from domain.actors import Actor, Role
from domain.measures import (
    EpisodeFacts,
    aggregate,
    cohort_facts,
    compute_measures,
    episode_facts,
)
from domain.vocabulary import (
    AttendanceStatus,
    DeadlineRules,
    DischargeReason,
    EscalationTrigger,
    HoldKind,
    LevelOfCare,
    ReferralSource,
    SessionKind,
    Stage,
    TaskKind,
)
from testing.sample_streams import episode_events

CLINICIAN = Actor(user_id="cal-clinician", role=Role.CLINICIAN)
DAY = timedelta(days=1)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
START, END = date(2026, 1, 1), date(2026, 6, 30)


class Stream:
    """One episode's events, built by hand: each helper appends the event(s) the decider
    would have emitted, with the next seq."""

    def __init__(
        self,
        episode_id: str = "ep-1",
        *,
        client: str = "client-1",
        program: str = "adult-iop",
        referred: datetime = T0,
        zone: str | None = "UTC",
    ) -> None:
        self.episode_id, self.zone = episode_id, zone
        self.events: list[ev.Event] = []
        self.add(
            ev.ClientReferred,
            referred,
            client_ref=client,
            program_id=program,
            referral_source=ReferralSource.SELF,
        )

    def add(self, event_type: type[Any], at: datetime, /, **fields: Any) -> Stream:
        seq = len(self.events) + 1
        self.events.append(
            event_type(
                episode_id=self.episode_id,
                seq=seq,
                occurred_at=at,
                actor=CLINICIAN,
                command_id=f"cmd-{seq}",
                **fields,
            )
        )
        return self

    def admit(self, at: datetime) -> Stream:
        rules = DeadlineRules(revision=2, timezone=self.zone) if self.zone else DeadlineRules()
        return self.add(
            ev.ClientAdmitted, at, phase_id="phase-1", plan_due_at=at + DAY, rules=rules
        )

    def session(
        self, session_id: str, starts: datetime, status: AttendanceStatus | None = None
    ) -> Stream:
        self.add(
            ev.SessionScheduled,
            starts - DAY,
            session_id=session_id,
            kind=SessionKind.GROUP_PROCESS,
            starts_at=starts,
            hours=3.0,
        )
        if status is not None:
            self.attend(session_id, starts + timedelta(hours=3), status)
        return self

    def attend(self, session_id: str, at: datetime, status: AttendanceStatus) -> Stream:
        hours = 3.0 if status is AttendanceStatus.ATTENDED else 0.0
        return self.add(
            ev.AttendanceRecorded, at, session_id=session_id, status=status, hours=hours
        )

    def step_down(self, at: datetime) -> Stream:
        return self.add(
            ev.ClientSteppedDown,
            at,
            to_level=LevelOfCare.OUTPATIENT,
            check_ins_due=(at + 7 * DAY, at + 30 * DAY),
            check_in_window_days=7,
        )

    def discharge(
        self, at: datetime, reason: DischargeReason = DischargeReason.COMPLETED
    ) -> Stream:
        return self.add(ev.EpisodeDischarged, at, discharge_reason=reason, summary="summary")

    def check_in(self, at: datetime, number: int = 1) -> Stream:
        return self.add(ev.CheckInCompleted, at, check_in=number)

    def escalate(self, at: datetime, task_id: str, level: int) -> Stream:
        return self.add(
            ev.EscalationRaised,
            at,
            task_id=task_id,
            level=level,
            task_kind=TaskKind.OUTREACH,
            trigger=EscalationTrigger.CONSECUTIVE_NO_SHOWS,
            due_at=at + DAY,
            notify=(),
        )

    def week(self, starts: datetime, below: bool) -> Stream:
        return self.add(
            ev.WeeklyAttendanceChecked,
            starts + 7 * DAY,
            week_start=starts,
            week_end=starts + 7 * DAY,
            attended_hours=3.0 if below else 9.0,
            minimum_hours=9.0,
            below_minimum=below,
        )


def facts_of(*streams: Stream, start: date = START, end: date = END) -> list[EpisodeFacts]:
    return cohort_facts([s.events for s in streams], start=start, end=end)


def only(*streams: Stream, start: date = START, end: date = END) -> EpisodeFacts:
    return facts_of(*streams, start=start, end=end)[0]


def admitted_with_sessions(*days: int, episode_id: str = "ep-1") -> Stream:
    """Referred at T0, admitted the next day, attended a session on each day after T0."""
    stream = Stream(episode_id).admit(T0 + DAY)
    for day in days:
        stream.session(f"s{day}", T0 + day * DAY, AttendanceStatus.ATTENDED)
    return stream


# --- engagement ----------------------------------------------------------------------


class TestEngagement:
    """Days from referral to the first attended session; initiation within 14 days and
    2 or more further attended sessions within 34 days after it (IET-like)."""

    def test_given_a_first_attended_session_on_day_14_then_the_episode_initiated(self) -> None:
        facts = only(admitted_with_sessions(14))

        assert facts.days_to_first_session == 14
        assert facts.initiated is True

    def test_given_a_first_attended_session_on_day_15_then_it_did_not_initiate(self) -> None:
        facts = only(admitted_with_sessions(15, 16, 17))

        assert facts.days_to_first_session == 15
        assert facts.initiated is False
        assert facts.engaged is False

    def test_given_two_further_sessions_within_34_days_then_the_episode_engaged(self) -> None:
        facts = only(admitted_with_sessions(3, 10, 37))

        assert facts.engaged is True

    def test_given_one_further_session_within_34_days_then_it_did_not_engage(self) -> None:
        # Day 38 is 35 days after the first session: outside the window.
        facts = only(admitted_with_sessions(3, 10, 38))

        assert facts.initiated is True
        assert facts.engaged is False

    def test_given_a_second_session_on_the_first_sessions_day_then_it_is_not_further(
        self,
    ) -> None:
        stream = admitted_with_sessions(3, 10)
        stream.session("s3-late", T0 + 3 * DAY + timedelta(hours=4), AttendanceStatus.ATTENDED)

        assert only(stream).engaged is False

    def test_given_no_shows_only_then_the_episode_is_counted_and_did_not_initiate(self) -> None:
        stream = Stream().admit(T0 + DAY).session("s1", T0 + 2 * DAY, AttendanceStatus.NO_SHOW)

        facts = only(stream)

        assert facts.days_to_first_session is None
        assert facts.initiated is False

    def test_given_an_attendance_corrected_to_a_no_show_then_the_session_is_not_attended(
        self,
    ) -> None:
        stream = admitted_with_sessions(2, 5)
        stream.add(
            ev.AttendanceCorrected,
            T0 + 6 * DAY,
            session_id="s2",
            status=AttendanceStatus.NO_SHOW,
            hours=0.0,
            previous_status=AttendanceStatus.ATTENDED,
            previous_hours=3.0,
        )

        assert only(stream).days_to_first_session == 5

    def test_given_a_rescheduled_session_then_its_new_start_is_its_day(self) -> None:
        stream = Stream().admit(T0 + DAY).session("s1", T0 + 2 * DAY)
        stream.add(
            ev.SessionRescheduled, T0 + DAY, session_id="s1", starts_at=T0 + 4 * DAY, hours=3.0
        )
        stream.attend("s1", T0 + 4 * DAY + timedelta(hours=3), AttendanceStatus.PARTIAL)

        assert only(stream).days_to_first_session == 4

    def test_given_a_client_referred_out_then_the_episode_is_excluded(self) -> None:
        stream = Stream().add(
            ev.ClientReferredOut, T0 + DAY, level_of_care=LevelOfCare.PHP, summary="needs more"
        )

        assert facts_of(stream) == []

    def test_given_a_referral_near_the_ranges_end_then_only_closed_windows_count(self) -> None:
        facts = only(admitted_with_sessions(2), end=(T0 + 20 * DAY).date())

        assert facts.days_to_first_session == 2
        assert facts.initiated is True
        assert facts.engaged is None  # 48 days had not passed by the range's end

    def test_given_a_referral_before_the_range_then_it_is_not_in_engagement(self) -> None:
        facts = only(admitted_with_sessions(2, 40), start=(T0 + 30 * DAY).date())

        assert facts.days_to_first_session is None
        assert facts.initiated is None
        assert facts.sessions_recorded == 1


# --- follow-up after step-down or discharge -------------------------------------------


class TestFollowUp:
    """An aftercare contact within 7 and within 30 days after the exit (FUH/FUA-like)."""

    def test_given_a_check_in_on_day_7_after_step_down_then_both_rates_count_it(self) -> None:
        stream = admitted_with_sessions(2).step_down(T0 + 20 * DAY).check_in(T0 + 27 * DAY)

        assert only(stream).followed_up == {7: True, 30: True}

    def test_given_a_check_in_on_day_8_then_only_the_30_day_rate_counts_it(self) -> None:
        stream = admitted_with_sessions(2).step_down(T0 + 20 * DAY).check_in(T0 + 28 * DAY)

        assert only(stream).followed_up == {7: False, 30: True}

    def test_given_a_check_in_on_the_day_of_step_down_then_it_is_no_follow_up(self) -> None:
        stream = admitted_with_sessions(2).step_down(T0 + 20 * DAY)
        stream.check_in(T0 + 20 * DAY + timedelta(hours=2))

        assert only(stream).followed_up == {7: False, 30: False}

    def test_given_a_session_attended_in_a_later_episode_then_it_is_a_follow_up(self) -> None:
        first = admitted_with_sessions(2).discharge(T0 + 20 * DAY, DischargeReason.AGAINST_ADVICE)
        later = Stream("ep-2", referred=T0 + 22 * DAY).admit(T0 + 23 * DAY)
        later.session("t1", T0 + 25 * DAY, AttendanceStatus.ATTENDED)

        facts = {f.episode_id: f for f in facts_of(first, later)}

        assert facts["ep-1"].followed_up == {7: True, 30: True}

    def test_given_a_step_up_without_return_then_it_is_excluded(self) -> None:
        stream = admitted_with_sessions(2).add(
            ev.ClientSteppedUp, T0 + 9 * DAY, to_level=LevelOfCare.PHP, intent_to_return=False
        )
        stream.discharge(T0 + 9 * DAY, DischargeReason.TRANSFERRED)

        facts = only(stream)

        assert facts.followed_up == {}
        assert facts.readmitted == {}
        assert facts.completed is False

    def test_given_a_discharge_as_transferred_then_it_is_excluded(self) -> None:
        stream = admitted_with_sessions(2).discharge(T0 + 9 * DAY, DischargeReason.TRANSFERRED)

        assert only(stream).followed_up == {}

    def test_given_a_step_down_near_the_ranges_end_then_only_the_7_day_rate_counts_it(
        self,
    ) -> None:
        stream = admitted_with_sessions(2).step_down(T0 + 20 * DAY)

        facts = only(stream, end=(T0 + 40 * DAY).date())

        assert facts.followed_up == {7: False}


# --- flow ----------------------------------------------------------------------------


class TestCompletionAndLengthOfStay:
    """Exits from treatment in the range: completed (step-down or discharge as completed)
    or not; days from admission to exit."""

    @pytest.mark.parametrize(
        ("reason", "completed"),
        [(DischargeReason.COMPLETED, True), (DischargeReason.AGAINST_ADVICE, False)],
    )
    def test_given_a_discharge_then_its_reason_decides_completion(
        self, reason: DischargeReason, completed: bool
    ) -> None:
        stream = admitted_with_sessions(2).discharge(T0 + 30 * DAY, reason)

        facts = only(stream)

        assert facts.completed is completed
        assert facts.length_of_stay_days == 29

    def test_given_a_step_down_then_discharge_then_the_step_down_is_the_exit(self) -> None:
        stream = admitted_with_sessions(2).step_down(T0 + 40 * DAY)
        stream.discharge(T0 + 100 * DAY, DischargeReason.OTHER)

        facts = only(stream)

        assert facts.completed is True
        assert facts.length_of_stay_days == 39

    def test_given_a_discharge_before_admission_then_there_is_no_exit(self) -> None:
        stream = Stream().add(ev.ScreeningStarted, T0 + DAY).discharge(T0 + 2 * DAY)

        facts = only(stream)

        assert facts.completed is None
        assert facts.length_of_stay_days is None

    def test_given_a_step_up_with_return_then_the_episode_has_not_exited(self) -> None:
        stream = admitted_with_sessions(2).add(
            ev.ClientSteppedUp, T0 + 9 * DAY, to_level=LevelOfCare.PHP, intent_to_return=True
        )
        stream.add(
            ev.EpisodePutOnHold,
            T0 + 9 * DAY,
            kind=HoldKind.STEP_UP_WITH_RETURN,
            review_due_at=T0 + 16 * DAY,
            resume_stage=Stage.IN_PROGRAM,
        )

        assert only(stream).completed is None

    def test_given_an_exit_before_the_range_then_it_is_not_counted(self) -> None:
        stream = admitted_with_sessions(2).discharge(T0 + 10 * DAY)

        assert facts_of(stream, start=(T0 + 20 * DAY).date()) == []


class TestAttendanceAndIntensity:
    """Attended (or partly attended) sessions among those with attendance recorded, and
    judged weeks below the program's minimum hours, both by day in the range."""

    def test_given_each_status_then_attended_and_partial_count_as_attended(self) -> None:
        stream = Stream().admit(T0)
        for i, status in enumerate(AttendanceStatus, start=1):
            stream.session(f"s{i}", T0 + i * DAY, status)
        stream.session("unrecorded", T0 + 9 * DAY)
        stream.session("cancelled", T0 + 10 * DAY).add(
            ev.SessionCancelled, T0 + 9 * DAY, session_id="cancelled"
        )

        measures = compute_measures([stream.events], start=START, end=END)

        assert (measures.attendance.numerator, measures.attendance.denominator) == (2, 4)
        assert measures.attendance.value == 0.5
        assert measures.attendance.n == 1

    def test_given_sessions_after_the_range_then_they_are_not_counted(self) -> None:
        facts = only(admitted_with_sessions(2, 20), end=(T0 + 10 * DAY).date())

        assert facts.sessions_recorded == 1

    def test_given_judged_weeks_then_the_share_below_minimum_is_counted(self) -> None:
        stream = Stream().admit(T0)
        stream.week(T0, below=True).week(T0 + 7 * DAY, below=False).week(T0 + 14 * DAY, False)

        rate = compute_measures([stream.events], start=START, end=END).weeks_below_intensity

        assert (rate.numerator, rate.denominator, rate.n) == (1, 3, 1)


class TestEscalations:
    """Escalation tasks raised per 100 episode-weeks, by level; an episode's weeks run
    from admission to discharge, within the range."""

    def test_given_two_weeks_open_and_three_tasks_then_rates_are_per_100_weeks(self) -> None:
        stream = Stream().admit(T0)
        stream.escalate(T0 + DAY, "t1", 1).escalate(T0 + 2 * DAY, "t2", 1)
        stream.escalate(T0 + 3 * DAY, "t3", 2).discharge(T0 + 14 * DAY)

        rates = compute_measures([stream.events], start=START, end=END).escalations_per_100_weeks

        assert rates[1].value == pytest.approx(100.0)
        assert rates[2].value == pytest.approx(50.0)
        assert rates[2].denominator == pytest.approx(2.0)

    def test_given_an_open_episode_then_its_weeks_end_with_the_range(self) -> None:
        stream = Stream().admit(T0).escalate(T0 + DAY, "t1", 1)

        facts = only(stream, end=(T0 + 6 * DAY).date())

        assert facts.episode_weeks == pytest.approx((7 * DAY - timedelta(hours=9)) / (7 * DAY))
        assert facts.escalations_by_level == {1: 1}

    def test_given_admission_before_the_range_then_only_weeks_in_it_count(self) -> None:
        stream = Stream().admit(T0).escalate(T0 + DAY, "t1", 1).escalate(T0 + 15 * DAY, "t2", 3)

        facts = only(stream, start=(T0 + 14 * DAY).date(), end=(T0 + 27 * DAY).date())

        assert facts.episode_weeks == pytest.approx(2.0)
        assert facts.escalations_by_level == {3: 1}

    def test_given_an_episode_never_admitted_then_it_has_no_weeks(self) -> None:
        facts = only(Stream().add(ev.ScreeningStarted, T0 + DAY).discharge(T0 + 2 * DAY))

        assert facts.episode_weeks == 0


class TestTaskResolution:
    """Hours from a task's raising to its resolution, for tasks resolved in the range."""

    def test_given_resolved_tasks_then_their_hours_are_counted(self) -> None:
        stream = Stream().admit(T0).escalate(T0, "t1", 1).escalate(T0, "t2", 2)
        stream.escalate(T0, "t3", 1)
        stream.add(ev.TaskResolved, T0 + timedelta(hours=6), task_id="t1", outcome="reached")
        stream.add(ev.TaskResolved, T0 + timedelta(hours=30), task_id="t2", outcome="reviewed")

        hours = compute_measures([stream.events], start=START, end=END).task_resolution_hours

        assert (hours.n, hours.value, hours.median, hours.p90) == (2, 18.0, 18.0, 30.0)


class TestReadmission:
    """A later admission of the same client within 30 and 90 days after the exit."""

    def test_given_an_admission_45_days_after_the_exit_then_only_the_90_day_rate_counts(
        self,
    ) -> None:
        first = admitted_with_sessions(2).step_down(T0 + 20 * DAY)
        later = Stream("ep-2", referred=T0 + 60 * DAY).admit(T0 + 65 * DAY)

        facts = {f.episode_id: f for f in facts_of(first, later)}

        assert facts["ep-1"].readmitted == {30: False, 90: True}

    def test_given_another_clients_admission_then_it_is_no_readmission(self) -> None:
        first = admitted_with_sessions(2).step_down(T0 + 20 * DAY)
        other = Stream("ep-2", client="client-2", referred=T0 + 22 * DAY).admit(T0 + 23 * DAY)

        facts = {f.episode_id: f for f in facts_of(first, other)}

        assert facts["ep-1"].readmitted == {30: False, 90: False}

    def test_given_episode_facts_with_the_clients_streams_then_they_are_linked(self) -> None:
        first = admitted_with_sessions(2).step_down(T0 + 20 * DAY)
        later = Stream("ep-2", referred=T0 + 22 * DAY).admit(T0 + 23 * DAY)
        unborn = Stream("ep-3", referred=datetime(2027, 1, 1, tzinfo=UTC))

        facts = episode_facts(
            first.events, start=START, end=END, client_streams=[later.events, unborn.events]
        )

        assert facts is not None
        assert facts.readmitted == {30: True, 90: True}


# --- the range, time zones, cohorts ---------------------------------------------------


class TestRangeAndCohort:
    def test_given_a_program_zone_then_days_are_counted_in_it(self) -> None:
        # 03:00 UTC on 20 January is still 19 January in New York.
        referred = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)
        stream = Stream(zone="America/New_York", referred=referred).admit(referred + DAY)
        stream.session("s1", datetime(2026, 1, 20, 3, 0, tzinfo=UTC), AttendanceStatus.ATTENDED)

        facts = only(stream)

        assert facts.days_to_first_session == 14
        assert facts.initiated is True

    def test_given_an_admission_under_the_first_rules_then_days_are_utc_days(self) -> None:
        stream = Stream(zone=None).admit(T0 + DAY)
        stream.session("s1", T0 + 3 * DAY, AttendanceStatus.ATTENDED)

        assert only(stream).days_to_first_session == 3

    def test_given_events_after_the_ranges_end_then_they_are_ignored(self) -> None:
        stream = admitted_with_sessions(2)
        stream.discharge(datetime(2026, 7, 2, tzinfo=UTC))

        assert only(stream, end=date(2026, 7, 1)).completed is None

    def test_given_an_episode_referred_after_the_range_then_it_has_no_facts(self) -> None:
        later = Stream(referred=datetime(2026, 8, 1, tzinfo=UTC))

        assert episode_facts(later.events, start=START, end=END) is None
        assert compute_measures([later.events], start=START, end=END).episodes == 0

    def test_given_a_program_then_only_its_episodes_are_measured(self) -> None:
        adult = admitted_with_sessions(2)
        teen = Stream("ep-2", client="client-2", program="teen-iop").admit(T0)

        measures = compute_measures(
            [adult.events, teen.events], start=START, end=END, program_id="teen-iop"
        )

        assert measures.episodes == 1
        assert measures.program_id == "teen-iop"
        assert measures.initiation_14_days.denominator == 1

    def test_given_no_episodes_then_every_value_is_empty(self) -> None:
        measures = compute_measures([], start=START, end=END)

        assert measures.episodes == 0
        assert measures.completion.value is None
        assert measures.length_of_stay.value is None
        assert measures.escalations_per_100_weeks == {}

    def test_given_a_range_ending_before_it_starts_then_it_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"ends .* before it starts"):
            compute_measures([], start=END, end=START)

    def test_given_a_stream_without_its_referral_then_it_is_refused(self) -> None:
        stream = admitted_with_sessions(2).events[1:]

        with pytest.raises(ValueError, match="starts with the client's referral"):
            compute_measures([stream], start=START, end=END)

    def test_given_facts_resampled_with_repeats_then_aggregate_counts_each_draw(self) -> None:
        streams = [
            admitted_with_sessions(2, episode_id="a"),
            admitted_with_sessions(20, episode_id="b"),
        ]
        facts = facts_of(*streams)
        draw = random.Random(7).choices(facts, k=4)

        measures = aggregate(draw, start=START, end=END)

        assert measures.initiation_14_days.denominator == 4
        assert measures.initiation_14_days.numerator == sum(1 for f in draw if f.initiated)

    def test_given_streams_then_compute_measures_equals_aggregate_of_cohort_facts(self) -> None:
        streams = [
            admitted_with_sessions(2, 5, 9, episode_id="a").step_down(T0 + 30 * DAY).events,
            episode_events("decided", sessions=14, discharge=True),
        ]

        measures = compute_measures(streams, start=START, end=END)

        assert measures == aggregate(
            cohort_facts(streams, start=START, end=END), start=START, end=END
        )
        assert measures.episodes == 2
        assert measures.attendance.denominator == 3 + 14
