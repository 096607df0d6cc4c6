"""The guards of the current rules: a plan refusal that names every broken bound,
check-ins on their schedule, phases with a clock, readmission after reassessment, and
sessions that last, do not overlap and are not backdated without limit.

Episodes admitted under the first rules (`FIRST_RULES`, old histories) keep the
behaviour they were admitted under; each guard has a test saying so.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_scenario import (
    CATALOG,
    DAY,
    HOUR,
    INTAKE,
    SUPERVISOR,
    T0,
    Episode,
    catalog_with,
    plan,
    types,
)

from domain import commands as c
from domain import next_deadline
from domain.deadlines import pending_deadlines
from domain.errors import (
    CheckInOutsideWindow,
    InvalidCommand,
    PhaseAdvanceTooEarly,
    ReasonRequired,
    ReassessmentOpen,
    ScheduleOutsideIntensityBounds,
    SessionBackdatedTooFar,
    SessionNotStarted,
    SessionOverlap,
    SessionTooShort,
)
from domain.local_text import local_time, span
from domain.programs import ProgramCatalog, parse_program
from domain.vocabulary import (
    FIRST_RULES,
    ReviewOutcome,
    SessionKind,
    StaffRecipient,
)

WEEK = timedelta(weeks=1)
MINUTE = timedelta(minutes=1)


def _new_york() -> ProgramCatalog:
    data = CATALOG.get("adult-iop").model_dump()
    data["timezone"] = "America/New_York"
    return ProgramCatalog({"adult-iop": parse_program(data)})


# --- 1. a refused plan names every bound it breaks ------------------------------------


class TestPlanRefusalNamesEveryBrokenRule:
    def test_given_two_sessions_of_two_hours_when_the_plan_is_recorded_then_days_and_weekly_hours_are_both_named(
        self,
    ) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds) as refused:
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(hours=2, days=2)))
        message = str(refused.value)
        assert "breaks 2 rules" in message
        assert "2 program days" in message
        assert "3-5 a week" in message
        assert "totals 4 h" in message
        assert "9-19 h a week" in message
        assert "for 4-12 weeks" in message
        assert [e["rule"] for e in refused.value.errors] == ["sessions_per_week", "weekly_hours"]
        assert refused.value.errors[1] == {
            "rule": "weekly_hours",
            "actual": 4,
            "min": 9,
            "max": 19,
            "message": "the weekly schedule totals 4 h: adult-iop requires 9-19 h a week",
        }

    def test_given_long_program_days_when_the_plan_is_recorded_then_each_day_is_named(
        self,
    ) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds) as refused:
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(hours=5, days=4)))
        days = [e for e in refused.value.errors if e["rule"] == "session_hours"]
        assert [e["weekday"] for e in days] == [0, 1, 2, 3]
        assert [e["rule"] for e in refused.value.errors][-1] == "weekly_hours"  # 20 h

    def test_given_a_plan_breaking_a_bound_and_its_structure_then_both_are_named(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds) as refused:
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(days=2, primary="nobody")))
        rules = [e["rule"] for e in refused.value.errors]
        assert rules[0] == "primary_clinician_on_team"
        assert "sessions_per_week" in rules

    def test_given_only_structural_faults_then_the_refusal_is_an_invalid_command_listing_them(
        self,
    ) -> None:
        ep = Episode().admitted()
        with pytest.raises(InvalidCommand) as refused:
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(primary="nobody")))
        assert type(refused.value) is InvalidCommand
        assert [e["rule"] for e in refused.value.errors] == ["primary_clinician_on_team"]

    def test_an_intensity_refusal_is_an_invalid_command(self) -> None:
        assert issubclass(ScheduleOutsideIntensityBounds, InvalidCommand)


# --- 2. aftercare check-ins on their schedule -----------------------------------------


class TestCheckInWindow:
    def test_given_step_down_today_when_the_365_day_check_in_is_recorded_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        with pytest.raises(CheckInOutsideWindow, match="it is early"):
            ep.decide(ep.make(c.RecordCheckIn, actor=INTAKE, check_in=5))

    def test_given_a_check_in_due_when_recorded_at_the_edges_of_its_window_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        due = ep.s.check_ins[1].due_at  # 30 days out, window 7 days
        ep.now = due - 7 * DAY
        assert types(ep.decide(ep.make(c.RecordCheckIn, check_in=2))) == ["check_in_completed"]
        ep.now = due + 7 * DAY
        events = ep.decide(ep.make(c.RecordCheckIn, check_in=2))
        assert events[0].outside_window_reason is None

    def test_given_a_window_when_a_check_in_is_a_minute_late_then_it_is_refused(self) -> None:
        ep = Episode().in_aftercare()
        ep.now = ep.s.check_ins[1].closes_at + MINUTE
        with pytest.raises(CheckInOutsideWindow, match="it is late"):
            ep.decide(ep.make(c.RecordCheckIn, check_in=2))

    def test_given_a_clinic_zone_when_refused_then_the_window_is_in_local_time(self) -> None:
        ep = Episode(catalog=_new_york()).in_aftercare()
        check_in = ep.s.check_ins[2]
        with pytest.raises(CheckInOutsideWindow) as refused:
            ep.decide(ep.make(c.RecordCheckIn, check_in=3))
        zone = ep.s.rules.zone
        opens = local_time(check_in.due_at - 7 * DAY, zone)
        assert f"from {opens} to {local_time(check_in.closes_at, zone)}" in str(refused.value)
        assert "EST" in str(refused.value) or "EDT" in str(refused.value)

    def test_given_a_reason_when_a_check_in_is_early_then_it_is_accepted_with_the_reason(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        events = ep.run(ep.make(c.RecordCheckIn, check_in=5, reason="moving abroad; seen early"))
        assert events[0].outside_window_reason == "moving abroad; seen early"
        assert ep.s.check_ins[4].completed

    def test_given_a_missed_check_in_when_recorded_late_with_a_reason_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        ep.tick(T0 + 14 * DAY)
        ep.advance(15 * DAY)
        events = ep.run(ep.make(c.RecordCheckIn, check_in=1, reason="reached by phone late"))
        assert types(events) == ["check_in_completed"]

    def test_an_out_of_window_refusal_asks_for_a_reason(self) -> None:
        assert issubclass(CheckInOutsideWindow, ReasonRequired)

    def test_given_the_first_rules_when_the_365_day_check_in_is_recorded_today_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_aftercare()
        events = ep.decide(ep.make(c.RecordCheckIn, check_in=5))
        assert types(events) == ["check_in_completed"]
        assert events[0].outside_window_reason is None


# --- 3. phases with a clock -----------------------------------------------------------


class TestPhaseClock:
    def test_given_admission_when_the_phase_duration_is_up_then_the_primary_clinician_is_reminded_once(
        self,
    ) -> None:
        ep = Episode().in_program()
        planned_end = T0 + 4 * WEEK
        assert ("phase_review_due", planned_end, None) in pending_deadlines(ep.s)
        events = ep.tick(planned_end)
        reminders = [e for e in events if e.type == "phase_review_due"]
        assert len(reminders) == 1
        assert (reminders[0].phase_id, reminders[0].planned_end) == ("stabilization", planned_end)
        assert reminders[0].notify == (StaffRecipient.PRIMARY_CLINICIAN,)
        later = ep.tick(planned_end + 2 * WEEK)
        assert "phase_review_due" not in types(later)
        assert all(kind != "phase_review_due" for kind, *_ in pending_deadlines(ep.s))

    def test_given_a_phase_advance_then_the_next_phase_clock_starts_from_it(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        ep.tick(ep.now)
        ep.advance(DAY).run(ep.make(c.AdvancePhase))
        assert ep.s.phase_started_at == ep.now
        assert ("phase_review_due", ep.now + 4 * WEEK, None) in pending_deadlines(ep.s)

    def test_given_a_hold_then_the_phase_clock_pauses(self) -> None:
        ep = Episode().in_program()
        ep.advance(DAY).run(ep.make(c.PlaceOnHold, kind="hospitalization"))
        assert all(kind != "phase_review_due" for kind, *_ in pending_deadlines(ep.s))
        ep.advance(3 * DAY).run(ep.make(c.ResumeFromHold))
        assert ep.s.phase_started_at == T0 + 3 * DAY

    def test_given_an_advance_a_second_after_another_then_it_needs_a_reason(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        ep.run(ep.make(c.AdvancePhase))
        ep.advance(timedelta(seconds=1))
        with pytest.raises(PhaseAdvanceTooEarly, match=r"give a reason.*or wait") as refused:
            ep.decide(ep.make(c.AdvancePhase))
        assert "28 days in it" in str(refused.value)

    def test_given_a_reason_when_advancing_early_then_the_event_records_it(self) -> None:
        ep = Episode().in_program().advance(DAY)
        events = ep.run(ep.make(c.AdvancePhase, reason="stabilized quickly; ready for skills"))
        assert events[0].early_reason == "stabilized quickly; ready for skills"

    def test_given_the_phase_duration_is_up_when_advancing_then_no_reason_is_needed(
        self,
    ) -> None:
        ep = Episode().in_program().phase_elapsed()
        events = ep.run(ep.make(c.AdvancePhase))
        assert events[0].early_reason is None
        assert "early_reason" not in events[0].model_dump(mode="json")

    def test_given_a_shorter_minimum_then_advancing_after_it_needs_no_reason(self) -> None:
        data = CATALOG.get("adult-iop").model_dump()
        data["phases"][0]["min_duration"] = timedelta(weeks=2)
        ep = Episode(catalog=ProgramCatalog({"adult-iop": parse_program(data)})).in_program()
        ep.advance(2 * WEEK - MINUTE)
        with pytest.raises(PhaseAdvanceTooEarly, match="14 days in it"):
            ep.decide(ep.make(c.AdvancePhase))
        ep.advance(MINUTE)
        assert types(ep.decide(ep.make(c.AdvancePhase))) == ["phase_advanced"]

    def test_given_an_early_review_advancing_the_phase_then_it_needs_a_reason(self) -> None:
        ep = Episode().in_program().advance(13 * DAY)
        review = {"outcome": ReviewOutcome.ADVANCE_PHASE, "notes": "goals met"}
        with pytest.raises(PhaseAdvanceTooEarly):
            ep.decide(ep.make(c.CompletePlanReview, **review))
        events = ep.run(ep.make(c.CompletePlanReview, **review, reason="goals met early"))
        assert types(events) == ["plan_review_completed", "phase_advanced"]
        assert events[1].early_reason == "goals met early"

    def test_given_the_first_rules_then_phases_advance_at_once_without_reminders(self) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_program()
        assert ep.s.phase_started_at is None
        assert all(kind != "phase_review_due" for kind, *_ in pending_deadlines(ep.s))
        ep.run(ep.make(c.AdvancePhase))
        events = ep.run(ep.make(c.AdvancePhase))
        assert events[0].early_reason is None
        assert ep.s.phase_started_at is None
        assert "phase_review_due" not in types(ep.tick(T0 + 20 * WEEK))


# --- 4. readmission after reassessment ------------------------------------------------


class TestReadmissionGuard:
    def test_given_an_open_reassessment_when_a_clinician_readmits_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        with pytest.raises(ReassessmentOpen, match="still open: resolve it"):
            ep.decide(ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="x", reason="r"))

    def test_given_an_open_reassessment_when_a_supervisor_readmits_without_reason_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        with pytest.raises(ReassessmentOpen):
            ep.decide(ep.make(c.ReadmitClient, actor=SUPERVISOR, new_episode_id="e2", summary="x"))

    def test_given_an_open_reassessment_when_a_supervisor_overrides_with_a_reason_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        events = ep.run(
            ep.make(
                c.ReadmitClient,
                actor=SUPERVISOR,
                new_episode_id="ep-2",
                summary="relapse; readmitted",
                reason="client in crisis; reassessment on admission",
            )
        )
        assert types(events) == ["client_readmitted", "episode_discharged"]
        assert events[0].reassessment_override == "client in crisis; reassessment on admission"

    def test_given_a_resolved_reassessment_then_a_clinician_readmits(self) -> None:
        ep = Episode().in_aftercare().reassessed_after_relapse()
        events = ep.run(ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="readmitted"))
        assert events[0].reassessment_override is None

    def test_given_the_first_rules_then_readmission_does_not_wait_for_the_reassessment(
        self,
    ) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        events = ep.run(ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="readmitted"))
        assert types(events) == ["client_readmitted", "episode_discharged"]


# --- 4. sessions: length, overlap, backdating -----------------------------------------


def _schedule(ep: Episode, session_id: str, starts_at: object, hours: float = 3) -> object:
    return ep.decide(
        ep.make(
            c.ScheduleSession,
            actor=INTAKE,
            session_id=session_id,
            kind=SessionKind.GROUP_PROCESS,
            starts_at=starts_at,
            hours=hours,
        )
    )


class TestSessionGuards:
    def test_given_a_three_minute_session_when_scheduled_then_it_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(SessionTooShort, match=r"3 minutes is shorter than .* 30 minutes"):
            _schedule(ep, "s1", T0 + DAY, hours=0.05)

    def test_given_the_shortest_session_when_scheduled_then_it_is_accepted(self) -> None:
        ep = Episode().in_program()
        assert types(_schedule(ep, "s1", T0 + DAY, hours=0.5)) == ["session_scheduled"]

    def test_given_a_session_when_another_starts_inside_it_then_it_is_refused(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        with pytest.raises(SessionOverlap, match="overlap session 's1'"):
            _schedule(ep, "s2", T0 + DAY + HOUR)

    def test_given_a_session_when_another_starts_as_it_ends_then_it_is_accepted(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        assert types(_schedule(ep, "s2", T0 + DAY + 3 * HOUR)) == ["session_scheduled"]

    def test_given_a_cancelled_session_then_its_time_is_free_again(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        ep.run(ep.make(c.CancelSession, session_id="s1"))
        assert types(_schedule(ep, "s2", T0 + DAY)) == ["session_scheduled"]

    def test_given_one_session_in_an_hour_when_36_more_are_scheduled_then_all_are_refused(
        self,
    ) -> None:
        ep = Episode().in_program().session("s0", T0 + DAY, hours=1)
        refused = 0
        for i in range(1, 37):
            with pytest.raises(SessionOverlap):
                _schedule(ep, f"s{i}", T0 + DAY + i * timedelta(seconds=90), hours=0.5)
            refused += 1
        assert refused == 36

    def test_given_two_sessions_when_one_is_moved_onto_the_other_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY).session("s2", T0 + 2 * DAY)
        with pytest.raises(SessionOverlap):
            ep.decide(ep.make(c.RescheduleSession, session_id="s2", starts_at=T0 + DAY + HOUR))

    def test_given_a_session_when_moved_within_its_own_time_then_it_is_accepted(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        events = ep.decide(ep.make(c.RescheduleSession, session_id="s1", starts_at=T0 + DAY + HOUR))
        assert types(events) == ["session_rescheduled"]

    def test_given_a_session_when_rescheduled_too_short_then_it_is_refused(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        with pytest.raises(SessionTooShort):
            ep.decide(ep.make(c.RescheduleSession, session_id="s1", starts_at=T0 + DAY, hours=0.1))

    def test_given_the_backdate_window_when_a_session_starts_just_within_it_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode().in_program().advance(10 * DAY)
        assert types(_schedule(ep, "s1", ep.now - 7 * DAY)) == ["session_scheduled"]

    def test_given_the_backdate_window_when_a_session_starts_before_it_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_program().advance(10 * DAY)
        with pytest.raises(SessionBackdatedTooFar, match="more than 7 days in the past"):
            _schedule(ep, "s1", ep.now - 7 * DAY - MINUTE)
        ep.run(_schedule_cmd(ep, "s2", ep.now + DAY))
        with pytest.raises(SessionBackdatedTooFar):
            ep.decide(ep.make(c.RescheduleSession, session_id="s2", starts_at=ep.now - 8 * DAY))

    def test_given_a_wider_window_in_the_program_then_it_applies(self) -> None:
        ep = Episode(catalog=catalog_with(attendance={"backdate_window": "P30D"})).in_program()
        ep.advance(40 * DAY)
        assert types(_schedule(ep, "s1", ep.now - 29 * DAY)) == ["session_scheduled"]

    def test_given_a_future_session_when_attendance_is_recorded_before_it_starts_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        ep.now = T0 + DAY - MINUTE
        with pytest.raises(SessionNotStarted, match="record attendance once it has started"):
            ep.decide(ep.make(c.RecordAttendance, session_id="s1", status="attended"))

    def test_given_the_first_rules_then_short_overlapping_and_old_sessions_are_accepted(
        self,
    ) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_program().advance(30 * DAY)
        ep.session("s1", ep.now - 20 * DAY, hours=0.05)
        ep.session("s2", ep.now - 20 * DAY, hours=0.05)
        assert [s.session_id for s in ep.s.sessions] == ["s1", "s2"]
        assert next_deadline(ep.s) is not None


def _schedule_cmd(ep: Episode, session_id: str, starts_at: object) -> c.Command:
    return ep.make(
        c.ScheduleSession,
        actor=INTAKE,
        session_id=session_id,
        kind=SessionKind.GROUP_PROCESS,
        starts_at=starts_at,
        hours=3,
    )


class TestLocalText:
    def test_span_names_the_largest_whole_unit(self) -> None:
        assert span(timedelta(days=14)) == "14 days"
        assert span(timedelta(hours=1)) == "1 hour"
        assert span(timedelta(minutes=90)) == "90 minutes"
        assert span(timedelta(seconds=36)) == "36 seconds"
        assert span(timedelta(seconds=1)) == "1 second"
