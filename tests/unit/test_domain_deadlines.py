"""Deadlines as data: `next_deadline`, what a `Tick` means, and the search attributes."""

from __future__ import annotations

from datetime import timedelta

from domain_scenario import DAY, HOUR, T0, Episode, catalog_with, types

from domain import commands as c
from domain import next_deadline, visibility
from domain.vocabulary import AttendanceStatus, HoldKind, ReviewOutcome

S1 = T0 + DAY


class TestNextDeadline:
    def test_nothing_is_due_before_admission(self) -> None:
        assert next_deadline(Episode().assessed().s) is None
        assert next_deadline(None) is None

    def test_after_admission_the_first_weekly_check_is_due_first(self) -> None:
        ep = Episode().admitted()
        assert next_deadline(ep.s) == T0 + 7 * DAY

    def test_a_session_is_due_at_its_end_plus_grace(self) -> None:
        ep = Episode().in_program().session("s1", S1, hours=3)
        assert next_deadline(ep.s) == S1 + 3 * HOUR + HOUR

    def test_grace_period_comes_from_the_program(self) -> None:
        catalog = catalog_with(attendance={"no_show_grace_minutes": 15})
        ep = Episode(catalog=catalog).in_program().session("s1", S1, hours=2)
        assert next_deadline(ep.s) == S1 + 2 * HOUR + timedelta(minutes=15)

    def test_nothing_is_due_after_discharge(self) -> None:
        from domain_scenario import SUPERVISOR

        ep = Episode().in_program().session("s1", S1)
        ep.run(
            ep.make(
                c.Discharge, actor=SUPERVISOR, discharge_reason="against_advice", summary="left"
            )
        )
        assert next_deadline(ep.s) is None


class TestTick:
    def test_session_without_attendance_becomes_a_no_show_after_grace(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        events = ep.tick(S1 + 4 * HOUR)
        assert types(events) == ["attendance_recorded", "escalation_raised"]
        assert events[0].status is AttendanceStatus.NO_SHOW
        assert events[0].actor.role.value == "system"

    def test_tick_marks_only_the_sessions_whose_grace_has_ended(self) -> None:
        ep = Episode().in_program().session("s1", S1).session("s2", S1 + DAY)
        events = ep.tick(S1 + 4 * HOUR)
        assert [e.session_id for e in events if e.type == "attendance_recorded"] == ["s1"]
        assert ep.s.session("s2").status is None  # type: ignore[union-attr]

    def test_tick_before_grace_ends_changes_nothing(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        assert ep.tick(S1 + 3 * HOUR + timedelta(minutes=59)) == ()

    def test_tick_command_id_defaults_from_its_time(self) -> None:
        assert c.Tick(now=S1).command_id == f"tick:{S1.isoformat()}"

    def test_weekly_hours_below_the_program_minimum_are_flagged(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.now = S1 + 3 * HOUR
        ep.attendance("s1", "attended")
        events = ep.tick(T0 + 7 * DAY)
        check = next(e for e in events if e.type == "weekly_attendance_checked")
        assert check.attended_hours == 3
        assert check.minimum_hours == 9
        assert check.below_minimum is True

    def test_weekly_hours_at_the_minimum_are_not_flagged(self) -> None:
        ep = Episode().in_program()
        for day in range(3):
            ep.session(f"s{day}", S1 + day * DAY)
            ep.now = S1 + day * DAY + 3 * HOUR
            ep.attendance(f"s{day}", "attended")
        events = ep.tick(T0 + 7 * DAY)
        assert [e.below_minimum for e in events if e.type == "weekly_attendance_checked"] == [False]

    def test_late_tick_checks_every_missed_week(self) -> None:
        ep = Episode().admitted()
        events = ep.tick(T0 + 21 * DAY)
        assert types(events).count("weekly_attendance_checked") == 3

    def test_initial_plan_overdue_is_flagged_once(self) -> None:
        ep = Episode().admitted()
        events = ep.tick(T0 + 7 * DAY)
        assert "initial_plan_overdue" in types(events)
        assert "initial_plan_overdue" not in types(ep.tick(T0 + 8 * DAY))

    def test_plan_review_reminder_then_overdue(self) -> None:
        ep = Episode().in_program()
        ep.tick(T0 + 11 * DAY)
        assert "plan_review_due_soon" in types(ep.tick(T0 + 12 * DAY))
        assert "plan_review_overdue" in types(ep.tick(T0 + 14 * DAY))

    def test_very_late_tick_flags_the_review_overdue_without_a_reminder(self) -> None:
        ep = Episode().in_program()
        events = ep.tick(T0 + 15 * DAY)
        assert "plan_review_overdue" in types(events)
        assert "plan_review_due_soon" not in types(events)

    def test_completed_review_resets_the_review_clock(self) -> None:
        ep = Episode().in_program()
        ep.tick(T0 + 14 * DAY)
        ep.run(ep.make(c.CompletePlanReview, outcome=ReviewOutcome.CONTINUE))
        assert ep.s.review_overdue_flagged is False
        assert ep.s.review_due_at == T0 + 28 * DAY

    def test_no_reminder_when_the_program_sets_none(self) -> None:
        catalog = catalog_with(planning={"review_reminder_days": 0})
        ep = Episode(catalog=catalog).in_program()
        assert "plan_review_due_soon" not in types(ep.tick(T0 + 13 * DAY))

    def test_tick_leaves_the_next_deadline_after_itself(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.tick(T0 + 30 * DAY)
        deadline = next_deadline(ep.s)
        assert deadline is not None
        assert deadline > T0 + 30 * DAY


class TestPausedOnHold:
    def test_hold_pauses_absence_escalation(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.tick(S1 + 4 * HOUR)
        task = ep.s.tasks[0]
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        assert next_deadline(ep.s) == ep.now + 14 * DAY  # only the hold review is due
        assert "escalation_task_overdue" not in types(ep.tick(task.due_at + DAY))

    def test_resume_shifts_open_tasks_by_the_time_on_hold(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.tick(S1 + 4 * HOUR)
        due = ep.s.tasks[0].due_at
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.advance(5 * DAY)
        ep.run(ep.make(c.ResumeFromHold))
        assert ep.s.tasks[0].due_at == due + 5 * DAY
        assert ep.s.review_due_at == T0 + 19 * DAY

    def test_hold_review_overdue_is_flagged(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.OTHER, review_days=3))
        assert next_deadline(ep.s) == T0 + 3 * DAY
        assert types(ep.tick(T0 + 3 * DAY)) == ["hold_review_overdue"]
        assert next_deadline(ep.s) is None


class TestVisibility:
    def test_search_attributes_of_an_escalated_episode(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.tick(S1 + 4 * HOUR)
        attributes = visibility(ep.s)
        assert attributes == {
            "stage": "in_program",
            "program_id": "adult-iop",
            "primary_clinician": "cal-clinician",
            "escalation_level": 1,
            "next_deadline": next_deadline(ep.s),
        }

    def test_discharge_clears_the_escalation_level(self) -> None:
        from domain_scenario import SUPERVISOR

        ep = Episode().in_program().session("s1", S1)
        ep.tick(S1 + 4 * HOUR)
        ep.run(ep.make(c.Discharge, actor=SUPERVISOR, discharge_reason="other", summary="x"))
        assert visibility(ep.s)["escalation_level"] == 0
        assert visibility(ep.s)["stage"] == "discharged"

    def test_search_attributes_before_a_plan_have_no_clinician(self) -> None:
        attributes = visibility(Episode().referred().s)
        assert attributes["primary_clinician"] is None
        assert attributes["escalation_level"] == 0
        assert attributes["next_deadline"] is None
