"""A week below the program's minimum hours reaches a person (current rules): the weekly
check opens an intensity review for the primary clinician; under the first rules the
check is recorded and nothing else, as recorded histories have it."""

from __future__ import annotations

from datetime import datetime

from domain_scenario import DAY, HOUR, T0, Episode, catalog_with, types

from domain import commands as c
from domain.events import EscalationRaised
from domain.vocabulary import FIRST_RULES, EscalationTrigger, HoldKind, StaffRecipient, TaskKind

# The first week of an admission at T0 (09:00 UTC, a Monday) in a UTC clinic.
WEEK_END = T0 - 9 * HOUR + 7 * DAY


def attend(ep: Episode, session_id: str, starts_at: datetime, hours: float = 3) -> None:
    ep.session(session_id, starts_at, hours=hours)
    ep.now = starts_at + hours * HOUR
    ep.attendance(session_id, "attended")


def attended_six_of_nine_hours(ep: Episode) -> Episode:
    ep.in_program()
    attend(ep, "mon", T0 + DAY)
    attend(ep, "wed", T0 + 3 * DAY)
    return ep


class TestABelowMinimumWeek:
    def test_given_6_of_9_hours_when_the_week_ends_then_an_intensity_review_follows_the_check(
        self,
    ) -> None:
        ep = attended_six_of_nine_hours(Episode())
        events = ep.tick(WEEK_END)
        assert types(events) == ["weekly_attendance_checked", "escalation_raised"]
        check, task = events
        assert (check.attended_hours, check.minimum_hours, check.below_minimum) == (6, 9, True)
        assert isinstance(task, EscalationRaised)
        assert task.trigger is EscalationTrigger.BELOW_INTENSITY
        assert task.task_kind is TaskKind.INTENSITY_REVIEW
        assert (task.level, task.notify) == (1, (StaffRecipient.PRIMARY_CLINICIAN,))
        assert task.due_at == WEEK_END + 24 * HOUR
        assert ep.s.escalation_level == 1

    def test_given_the_minimum_attended_when_the_week_ends_then_no_task_opens(self) -> None:
        ep = attended_six_of_nine_hours(Episode())
        attend(ep, "fri", T0 + 4 * DAY)
        assert types(ep.tick(WEEK_END)) == ["weekly_attendance_checked"]

    def test_given_nothing_scheduled_when_the_week_ends_then_the_clinic_still_hears_of_it(
        self,
    ) -> None:
        ep = Episode().in_program()
        events = ep.tick(WEEK_END)
        assert events[0].attended_hours == 0
        assert [e.task_kind for e in events if isinstance(e, EscalationRaised)] == [
            TaskKind.INTENSITY_REVIEW
        ]

    def test_given_no_plan_yet_when_the_first_week_ends_then_the_review_opens_too(self) -> None:
        ep = Episode().admitted()
        events = ep.tick(WEEK_END)
        assert types(events)[:2] == ["weekly_attendance_checked", "escalation_raised"]

    def test_given_the_program_names_a_level_when_a_week_falls_short_then_the_task_is_at_it(
        self,
    ) -> None:
        catalog = catalog_with(escalation={"below_intensity_level": 2})
        ep = attended_six_of_nine_hours(Episode(catalog=catalog))
        (task,) = [e for e in ep.tick(WEEK_END) if isinstance(e, EscalationRaised)]
        assert task.level == 2
        assert task.task_kind is TaskKind.INTENSITY_REVIEW
        assert task.notify == (StaffRecipient.CARE_COORDINATOR, StaffRecipient.SUPERVISOR)

    def test_given_the_first_rules_when_a_week_falls_short_then_only_the_check_is_recorded(
        self,
    ) -> None:
        ep = attended_six_of_nine_hours(Episode(rules_revision=FIRST_RULES))
        events = ep.tick(T0 + 7 * DAY)
        assert types(events) == ["weekly_attendance_checked"]
        assert events[0].below_minimum is True


class TestWhenAttendanceIsNotExpected:
    def test_given_a_hold_when_its_week_would_have_ended_then_nothing_is_judged(self) -> None:
        ep = Episode().in_program()
        ep.now = T0 + DAY
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        assert "escalation_raised" not in types(ep.tick(WEEK_END + DAY))

    def test_given_a_step_down_when_a_week_would_have_ended_then_no_review_opens(self) -> None:
        ep = Episode().in_aftercare()
        events = ep.tick(WEEK_END)
        assert "weekly_attendance_checked" not in types(events)
        assert all(
            e.trigger is not EscalationTrigger.BELOW_INTENSITY
            for e in events
            if isinstance(e, EscalationRaised)
        )
