"""The absence escalation ladder: no-shows, case reviews, overdue tasks, no contact."""

from __future__ import annotations

from datetime import datetime

import pytest
from domain_scenario import DAY, DIRECTOR, HOUR, SUPERVISOR, T0, Episode, types
from first_rules import FirstRulesEpisode

from domain import commands as c
from domain.errors import CommandNotAllowed, TaskAlreadyResolved, UnknownReference
from domain.events import EscalationRaised, Event
from domain.state import Task
from domain.vocabulary import EscalationTrigger, StaffRecipient, TaskKind


def sessions_every_other_day(ep: Episode, count: int) -> list[datetime]:
    starts = [T0 + DAY + 2 * i * DAY for i in range(count)]
    for i, start in enumerate(starts):
        ep.session(f"s{i}", start)
    return starts


def no_shows(ep: Episode, starts: list[datetime]) -> list[str]:
    raised: list[str] = []
    for i, start in enumerate(starts):
        ep.now = start + 3 * HOUR
        raised += types(ep.attendance(f"s{i}", "no_show"))
    return raised


def only_case_review_open(ep: Episode) -> Task:
    """Resolve the outreach tasks, leaving the case review open."""
    review = next(t for t in ep.s.tasks if t.kind is TaskKind.CASE_REVIEW)
    for task in ep.s.tasks:
        if task is not review and task.is_open:
            ep.run(ep.make(c.ResolveTask, actor=SUPERVISOR, task_id=task.task_id, outcome="ok"))
    return review


def raised(events: tuple[Event, ...]) -> list[EscalationRaised]:
    """The escalations among `events`, except the weekly intensity reviews a tick may open
    beside them (`test_domain_intensity.py`)."""
    return [
        e
        for e in events
        if isinstance(e, EscalationRaised) and e.trigger is not EscalationTrigger.BELOW_INTENSITY
    ]


class TestAbsenceLadder:
    def test_first_no_show_notifies_the_primary_clinician_with_outreach_due_in_24h(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 1)
        ep.now = starts[0] + 3 * HOUR
        events = ep.attendance("s0", "no_show")
        assert types(events) == ["attendance_recorded", "escalation_raised"]
        task = events[1]
        assert task.level == 1
        assert task.task_kind is TaskKind.OUTREACH
        assert task.notify == (StaffRecipient.PRIMARY_CLINICIAN,)
        assert task.due_at == ep.now + 24 * HOUR
        assert ep.s.escalation_level == 1

    def test_second_consecutive_no_show_notifies_coordinator_and_supervisor(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 1))
        ep.session("s1", T0 + 3 * DAY)
        ep.now = T0 + 3 * DAY + 3 * HOUR
        events = raised(ep.attendance("s1", "no_show"))
        assert events[-1].level == 2
        assert events[-1].notify == (StaffRecipient.CARE_COORDINATOR, StaffRecipient.SUPERVISOR)

    def test_third_consecutive_no_show_opens_case_review_due_in_48h(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 3)
        no_shows(ep, starts[:2])
        ep.now = starts[2] + 3 * HOUR
        review = raised(ep.attendance("s2", "no_show"))[-1]
        assert review.task_kind is TaskKind.CASE_REVIEW
        assert review.trigger is EscalationTrigger.CONSECUTIVE_NO_SHOWS
        assert review.due_at == ep.now + 48 * HOUR
        assert ep.s.escalation_level == 3

    def test_fourth_consecutive_no_show_adds_nothing_while_review_is_open(self) -> None:
        ep = Episode().in_program()
        raised = no_shows(ep, sessions_every_other_day(ep, 4))
        assert raised.count("escalation_raised") == 3

    def test_excused_absences_never_count(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 3)
        no_shows(ep, starts[:1])
        ep.now = starts[1] + 3 * HOUR
        ep.attendance("s1", "excused")
        ep.now = starts[2] + 3 * HOUR
        events = raised(ep.attendance("s2", "no_show"))
        assert events[-1].level == 2

    def test_attendance_breaks_the_streak(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 3)
        no_shows(ep, starts[:1])
        ep.run(ep.make(c.ResolveTask, task_id=ep.s.tasks[0].task_id, outcome="reached client"))
        ep.now = starts[1] + 3 * HOUR
        ep.attendance("s1", "attended")
        ep.now = starts[2] + 3 * HOUR
        events = ep.attendance("s2", "no_show")
        assert events[-1].level == 1

    def test_four_no_shows_in_fourteen_days_open_case_review(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 6)
        pattern = ["no_show", "no_show", "attended", "no_show", "attended", "no_show"]
        last: tuple = ()
        for i, status in enumerate(pattern):
            ep.now = starts[i] + 3 * HOUR
            last = ep.attendance(f"s{i}", status)
        last = tuple(raised(last))
        assert last[-1].trigger is EscalationTrigger.NO_SHOWS_IN_WINDOW
        assert last[-1].level == 3

    def test_open_outreach_absorbs_a_new_first_no_show(self) -> None:
        ep = Episode().in_program()
        starts = sessions_every_other_day(ep, 3)
        no_shows(ep, starts[:1])
        ep.now = starts[1] + 3 * HOUR
        ep.attendance("s1", "attended")
        ep.now = starts[2] + 3 * HOUR
        assert types(ep.attendance("s2", "no_show")) == ["attendance_recorded"]


class TestTasks:
    def test_overdue_outreach_escalates_one_level_up(self) -> None:
        # The first rules: the outreach stays open beside the new task (see
        # test_domain_concerns.py for the current rules, where it is superseded).
        ep = FirstRulesEpisode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 1))
        task = ep.s.tasks[0]
        events = ep.tick(task.due_at)
        assert types(events) == ["escalation_task_overdue", "escalation_raised"]
        assert events[1].level == 2
        assert events[1].escalated_from == task.task_id
        assert events[1].trigger is EscalationTrigger.TASK_OVERDUE

    def test_overdue_case_review_escalates_to_the_clinical_director(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 3))
        review = only_case_review_open(ep)
        events = raised(ep.tick(review.due_at))
        assert events[-1].notify == (StaffRecipient.CLINICAL_DIRECTOR,)
        assert events[-1].task_kind is TaskKind.DIRECTOR_REVIEW
        assert ep.s.escalation_level == 4

    def test_overdue_task_at_the_top_level_is_only_marked(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 3))
        review = only_case_review_open(ep)
        ep.tick(review.due_at)
        director = next(t for t in ep.s.tasks if t.level == 4)
        events = ep.tick(director.due_at)
        assert [e for e in raised(events) if e.escalated_from == director.task_id] == []
        assert "escalation_task_overdue" in types(events)

    def test_resolved_task_lowers_the_escalation_level(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 1))
        events = ep.run(ep.make(c.ResolveTask, task_id=ep.s.tasks[0].task_id, outcome="reached"))
        assert types(events) == ["task_resolved"]
        assert ep.s.escalation_level == 0

    def test_case_review_needs_a_supervisor_to_resolve(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 3))
        review = next(t for t in ep.s.tasks if t.kind is TaskKind.CASE_REVIEW)
        with pytest.raises(CommandNotAllowed, match="clinical_director or supervisor"):
            ep.decide(ep.make(c.ResolveTask, task_id=review.task_id, outcome="x"))
        ep.run(ep.make(c.ResolveTask, actor=DIRECTOR, task_id=review.task_id, outcome="plan"))

    def test_resolving_twice_is_refused(self) -> None:
        ep = Episode().in_program()
        no_shows(ep, sessions_every_other_day(ep, 1))
        task_id = ep.s.tasks[0].task_id
        ep.run(ep.make(c.ResolveTask, task_id=task_id, outcome="reached"))
        with pytest.raises(TaskAlreadyResolved, match="nothing to do"):
            ep.decide(ep.make(c.ResolveTask, task_id=task_id, outcome="again"))

    def test_resolving_an_unknown_task_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(UnknownReference, match="open tasks"):
            ep.decide(ep.make(c.ResolveTask, task_id="task-999", outcome="x"))


class TestNoContact:
    def test_fourteen_days_without_contact_opens_administrative_discharge_review(self) -> None:
        ep = Episode().in_program()
        events = ep.tick(T0 + 14 * DAY)
        review = next(e for e in events if e.type == "escalation_raised")
        assert review.task_kind is TaskKind.ADMINISTRATIVE_DISCHARGE_REVIEW
        assert review.trigger is EscalationTrigger.NO_CONTACT
        assert review.due_at == T0 + 14 * DAY + 72 * HOUR

    def test_attended_session_restarts_the_no_contact_clock(self) -> None:
        ep = Episode().in_program().session("s1", T0 + 5 * DAY)
        ep.now = T0 + 5 * DAY + 3 * HOUR
        ep.attendance("s1", "attended")
        events = ep.tick(T0 + 14 * DAY)
        assert raised(events) == []
        assert ep.s.last_contact_at == T0 + 5 * DAY
