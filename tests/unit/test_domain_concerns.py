"""One open escalation task per concern (current rules): a concern moves up the ladder by
superseding its open task, never by opening a second one beside it.

The first rules (episodes admitted before the current revision) keep their behaviour:
see the `TestFirstRules` class at the end, and `test_domain_escalation.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from domain_scenario import DAY, DIRECTOR, HOUR, SUPERVISOR, T0, Episode, catalog_with, types
from first_rules import FirstRulesEpisode

from audit.fhir import as_json
from audit.fhir import task as fhir_task
from domain import commands as c
from domain.deadlines import pending_deadlines
from domain.emitter import Emitter
from domain.errors import TaskAlreadyResolved, TaskSuperseded
from domain.escalation import ATTENDANCE, concern_of, raise_task
from domain.events import (
    EscalationRaised,
    EscalationTaskSuperseded,
    Event,
    dump_event,
)
from domain.state import EpisodeState, Task
from domain.vocabulary import EscalationTrigger, StaffRecipient, TaskKind
from store.projections import read_model_rows


def sessions(ep: Episode, count: int, every: Any = 2 * DAY) -> list[datetime]:
    starts = [T0 + DAY + i * every for i in range(count)]
    for i, start in enumerate(starts):
        ep.session(f"s{i}", start)
    return starts


def no_show(ep: Episode, starts: list[datetime], i: int) -> tuple[Event, ...]:
    ep.now = max(ep.now, starts[i] + 3 * HOUR)
    return ep.attendance(f"s{i}", "no_show")


def open_tasks(state: EpisodeState, concern: str | None = None) -> list[Task]:
    """Open tasks, of one concern if named (long waits also judge weeks below intensity,
    which open tasks of their own concern beside the one a test is about)."""
    return [t for t in state.tasks if t.is_open and concern in (None, t.concern)]


def raised(events: tuple[Event, ...] | list[Event]) -> list[EscalationRaised]:
    return [e for e in events if isinstance(e, EscalationRaised)]


def notified_levels(events: list[Event], concern: str | None = None) -> list[int]:
    """The rung of every event that notifies staff (of one concern if named), in order."""
    return [e.level for e in raised(events) if e.notify and concern in (None, e.concern)]


def about(state: EpisodeState, events: tuple[Event, ...], concern: str) -> list[str]:
    """The types of the task events of one concern."""

    def concern_of_event(e: Event) -> str | None:
        if isinstance(e, EscalationRaised):
            return e.concern
        task = state.task(getattr(e, "task_id", ""))
        return task.concern if task is not None else None

    return [e.type for e in events if concern_of_event(e) == concern]


def resolve(ep: Episode, task_id: str, actor: Any = DIRECTOR) -> tuple[Event, ...]:
    return ep.run(ep.make(c.ResolveTask, actor=actor, task_id=task_id, outcome="done"))


def emitter(ep: Episode) -> Emitter:
    return Emitter(ep.s, c.Tick(now=ep.now), ep.ctx(), now=ep.now)


def apply(ep: Episode, em: Emitter) -> tuple[Event, ...]:
    """Keep what a hand-driven decision emitted, as if the decider had."""
    events = tuple(em.events)
    ep.history.extend(events)
    ep.state = em.state
    return events


class TestEveryTaskHasAConcern:
    def test_given_a_first_no_show_when_outreach_opens_then_it_belongs_to_attendance(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 1)
        task = raised(no_show(ep, starts, 0))[0]
        assert task.concern == ATTENDANCE
        assert ep.s.tasks[0].concern == ATTENDANCE

    def test_given_no_shows_in_a_window_when_a_review_opens_then_it_is_the_same_concern(
        self,
    ) -> None:
        assert concern_of(EscalationTrigger.NO_SHOWS_IN_WINDOW) == ATTENDANCE
        assert concern_of(EscalationTrigger.CONSECUTIVE_NO_SHOWS) == ATTENDANCE

    def test_given_other_triggers_when_they_raise_tasks_then_each_is_a_concern_of_its_own(
        self,
    ) -> None:
        others = [t for t in EscalationTrigger if concern_of(t) != ATTENDANCE]
        assert {concern_of(t) for t in others} == {t.value for t in others}

    def test_given_lost_contact_when_the_review_opens_then_its_concern_is_no_contact(
        self,
    ) -> None:
        ep = Episode().in_program()
        review = raised(ep.tick(T0 + 14 * DAY))[0]
        assert review.concern == "no_contact"

    def test_given_a_missed_check_in_and_a_relapse_when_tasks_open_then_both_stay_open(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        check_in = ep.s.check_ins[0]
        ep.tick(check_in.closes_at)
        ep.run(ep.make(c.ReportRelapse))
        assert sorted(t.concern or "" for t in open_tasks(ep.s)) == [
            "check_in_missed",
            "relapse_reported",
        ]

    def test_given_a_trigger_raise_task_does_not_know_when_raised_then_it_is_its_own_concern(
        self,
    ) -> None:
        ep = Episode().in_program()
        em = emitter(ep)
        raise_task(em, 1, EscalationTrigger.BELOW_INTENSITY, kind=TaskKind.INTENSITY_REVIEW)
        (event,) = apply(ep, em)
        assert isinstance(event, EscalationRaised)
        assert event.concern == "below_intensity"
        assert event.task_kind is TaskKind.INTENSITY_REVIEW
        assert ep.s.tasks[0].concern == "below_intensity"


class TestOverdueTasksAreEscalatedNotDuplicated:
    def test_given_open_outreach_when_it_goes_overdue_then_the_next_rung_supersedes_it(
        self,
    ) -> None:
        ep = Episode().in_program()
        no_show(ep, sessions(ep, 1), 0)
        outreach = ep.s.tasks[0]
        events = ep.tick(outreach.due_at)
        assert types(events) == [
            "escalation_task_overdue",
            "escalation_raised",
            "escalation_task_superseded",
        ]
        higher, closed = events[1], events[2]
        assert isinstance(higher, EscalationRaised)
        assert isinstance(closed, EscalationTaskSuperseded)
        assert higher.level == 2
        assert higher.trigger is EscalationTrigger.TASK_OVERDUE
        assert higher.escalated_from == outreach.task_id
        assert higher.concern == ATTENDANCE
        assert closed.task_id == outreach.task_id
        assert closed.superseded_by == higher.task_id
        assert [t.task_id for t in open_tasks(ep.s)] == [higher.task_id]
        assert ep.s.task(outreach.task_id).superseded_by == higher.task_id  # type: ignore[union-attr]
        assert ep.s.task(higher.task_id).escalated_from == outreach.task_id  # type: ignore[union-attr]

    def test_given_an_open_task_when_a_no_show_calls_for_a_higher_level_then_it_is_superseded(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 2)
        no_show(ep, starts, 0)
        outreach = ep.s.tasks[0]
        events = no_show(ep, starts, 1)
        assert types(events) == [
            "attendance_recorded",
            "escalation_raised",
            "escalation_task_superseded",
        ]
        assert raised(events)[0].escalated_from == outreach.task_id
        assert [t.level for t in open_tasks(ep.s)] == [2]

    def test_given_an_open_review_when_a_trigger_calls_for_its_level_or_lower_then_nothing_opens(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 4)
        for i in range(3):
            no_show(ep, starts, i)
        assert types(no_show(ep, starts, 3)) == ["attendance_recorded"]
        assert [t.level for t in open_tasks(ep.s)] == [3]

    def test_given_a_reassessment_open_when_a_second_relapse_is_reported_then_nothing_opens(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        assert types(ep.run(ep.make(c.ReportRelapse))) == ["relapse_reported"]
        assert len(open_tasks(ep.s)) == 1

    def test_given_aftercare_outreach_open_when_another_check_in_is_missed_then_nothing_opens(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        first, second = ep.s.check_ins[:2]
        ep.tick(first.closes_at)
        events = ep.tick(second.closes_at)
        # The late outreach climbed a rung first; the second miss then adds nothing.
        assert types(events)[-1] == "check_in_missed"
        assert [e.trigger for e in raised(events)] == [EscalationTrigger.TASK_OVERDUE]
        assert [(t.level, t.concern) for t in open_tasks(ep.s)] == [(2, "check_in_missed")]

    def test_given_an_intensity_review_open_when_a_higher_one_is_raised_then_it_supersedes(
        self,
    ) -> None:
        ep = Episode().in_program()
        for level, expected in ((1, 1), (1, 0), (2, 2)):
            em = emitter(ep)
            raise_task(em, level, EscalationTrigger.BELOW_INTENSITY, kind=TaskKind.INTENSITY_REVIEW)
            assert len(raised(apply(ep, em))) == min(expected, 1)
        assert [(t.level, t.concern) for t in open_tasks(ep.s)] == [(2, "below_intensity")]

    def test_given_the_top_rung_when_its_task_goes_overdue_then_it_stays_open_flagged(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 3)
        for i in range(3):
            no_show(ep, starts, i)
        ep.tick(open_tasks(ep.s, ATTENDANCE)[0].due_at)
        (director,) = open_tasks(ep.s, ATTENDANCE)
        assert director.level == 4
        events = ep.tick(director.due_at)
        assert about(ep.s, events, ATTENDANCE) == ["escalation_task_overdue"]
        assert [(t.task_id, t.overdue) for t in open_tasks(ep.s, ATTENDANCE)] == [
            (director.task_id, True)
        ]
        # The short week the no-shows made is a concern of its own, climbing on its own.
        assert [t.concern for t in open_tasks(ep.s)] == [ATTENDANCE, "below_intensity"]

    def test_given_two_concerns_when_both_are_open_then_each_keeps_its_own_task(self) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 1, every=DAY)
        no_show(ep, starts, 0)
        outreach = ep.s.tasks[0]
        resolve(ep, outreach.task_id)
        ep.tick(T0 + 14 * DAY)
        no_show_task = [t for t in open_tasks(ep.s) if t.concern == "no_contact"]
        assert len(no_show_task) == 1
        assert no_show_task[0].kind is TaskKind.ADMINISTRATIVE_DISCHARGE_REVIEW

    def test_given_a_no_contact_review_open_when_another_period_passes_then_none_is_added(
        self,
    ) -> None:
        ep = Episode(catalog=catalog_with(escalation={"no_contact_level": 3})).in_program()
        ep.tick(T0 + 14 * DAY)
        review = open_tasks(ep.s)[0]
        ep.session("s1", T0 + 15 * DAY)
        ep.now = T0 + 15 * DAY + 3 * HOUR
        ep.attendance("s1", "attended")  # contact: the clock restarts
        ep.run(ep.make(c.ResolveTask, actor=SUPERVISOR, task_id=review.task_id, outcome="ok"))
        ep.tick(T0 + 30 * DAY)
        (reopened,) = open_tasks(ep.s, "no_contact")
        # Overdue, it climbs to the director; lost contact again opens nothing beside it.
        ep.tick(reopened.due_at)
        assert [(t.level, t.concern) for t in open_tasks(ep.s, "no_contact")] == [(4, "no_contact")]
        events = ep.tick(T0 + 80 * DAY)
        assert "escalation_raised" not in about(ep.s, events, "no_contact")
        assert [t.level for t in open_tasks(ep.s, "no_contact")] == [4]
        assert "no_contact_review" not in [kind for kind, _at, _ref in pending_deadlines(ep.s)]

    def test_given_the_open_no_contact_review_resolved_when_contact_is_still_lost_then_a_new_one_opens(
        self,
    ) -> None:
        ep = Episode().in_program()
        ep.tick(T0 + 14 * DAY)
        ep.session("s1", T0 + 15 * DAY)
        ep.now = T0 + 15 * DAY + 3 * HOUR
        ep.attendance("s1", "attended")
        ep.tick(T0 + 30 * DAY)
        (review,) = open_tasks(ep.s, "no_contact")
        resolve(ep, review.task_id)
        events = ep.tick(ep.now + HOUR)
        assert [e.concern for e in raised(events)] == ["no_contact"]


class TestOneNotificationPerRung:
    def test_given_three_no_shows_when_the_review_goes_overdue_then_rungs_1_to_4_notify_once(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 3)
        for i in range(3):
            no_show(ep, starts, i)
        ep.tick(open_tasks(ep.s, ATTENDANCE)[0].due_at)
        ep.tick(open_tasks(ep.s, ATTENDANCE)[0].due_at)
        assert notified_levels(ep.history, ATTENDANCE) == [1, 2, 3, 4]
        recipients = [e.notify for e in raised(ep.history) if e.concern == ATTENDANCE]
        assert recipients[-1] == (StaffRecipient.CLINICAL_DIRECTOR,)
        # The short week climbs its own chain, notifying each of its rungs once.
        assert notified_levels(ep.history, "below_intensity") == [1, 2]

    def test_given_no_shows_while_tasks_go_overdue_when_all_fire_then_each_rung_notifies_once(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 3, every=2 * DAY + 6 * HOUR)
        for i in range(3):
            no_show(ep, starts, i)
            ep.tick(open_tasks(ep.s, ATTENDANCE)[0].due_at)
        ep.tick(open_tasks(ep.s, ATTENDANCE)[0].due_at + DAY)
        assert notified_levels(ep.history, ATTENDANCE) == [1, 2, 3, 4]
        assert len(open_tasks(ep.s, ATTENDANCE)) == 1
        below = notified_levels(ep.history, "below_intensity")
        assert below == sorted(set(below))

    def test_given_open_outreach_when_no_shows_in_a_window_call_for_review_then_only_it_notifies(
        self,
    ) -> None:
        ep = Episode().in_program()
        starts = sessions(ep, 6)
        pattern = ["no_show", "attended", "no_show", "attended", "no_show", "no_show"]
        for i, status in enumerate(pattern):
            ep.now = starts[i] + 3 * HOUR
            ep.attendance(f"s{i}", status)
        # 1 (first no-show), then the window's four no-shows call for the case review:
        # rung 2 was never reached, so never notified.
        assert notified_levels(ep.history) == [1, 3]
        assert [t.level for t in open_tasks(ep.s)] == [3]


class TestSupersededTasksLeaveTheWorklists:
    def given_a_superseded_outreach(self) -> tuple[Episode, Task, Task]:
        ep = Episode().in_program()
        no_show(ep, sessions(ep, 1), 0)
        outreach = ep.s.tasks[0]
        ep.tick(outreach.due_at)
        return ep, ep.s.tasks[0], ep.s.tasks[1]

    def test_given_a_superseded_task_when_the_level_is_read_then_only_the_open_task_counts(
        self,
    ) -> None:
        ep, _outreach, higher = self.given_a_superseded_outreach()
        assert ep.s.escalation_level == 2
        resolve(ep, higher.task_id, SUPERVISOR)
        assert ep.s.escalation_level == 0

    def test_given_a_superseded_task_when_the_read_models_are_built_then_it_is_not_listed(
        self,
    ) -> None:
        ep, _outreach, higher = self.given_a_superseded_outreach()
        rows = read_model_rows(ep.s, ep.now)
        assert [row["task_id"] for row in rows["open_tasks"]] == [higher.task_id]
        assert rows["episode_summary"][0]["escalation_level"] == 2
        refs = [ref for kind, _at, ref in pending_deadlines(ep.s) if kind == "task_due"]
        assert refs == [higher.task_id]

    def test_given_a_superseded_task_when_staff_resolve_it_then_it_is_refused_naming_its_successor(
        self,
    ) -> None:
        ep, outreach, higher = self.given_a_superseded_outreach()
        with pytest.raises(TaskSuperseded, match=rf"stands at task '{higher.task_id}'.*resolve"):
            ep.decide(ep.make(c.ResolveTask, task_id=outreach.task_id, outcome="reached"))

    def test_given_a_chain_of_superseded_tasks_when_its_last_is_resolved_then_nothing_is_left_to_do(
        self,
    ) -> None:
        ep, outreach, higher = self.given_a_superseded_outreach()
        ep.tick(higher.due_at)
        review = open_tasks(ep.s)[0]
        resolve(ep, review.task_id)
        with pytest.raises(TaskSuperseded, match=rf"'{review.task_id}' which is already resolved"):
            ep.decide(ep.make(c.ResolveTask, task_id=outreach.task_id, outcome="reached"))
        with pytest.raises(TaskAlreadyResolved):
            ep.decide(ep.make(c.ResolveTask, actor=DIRECTOR, task_id=review.task_id, outcome="x"))

    def test_given_a_superseded_task_when_exported_to_fhir_then_it_is_cancelled(self) -> None:
        ep, outreach, higher = self.given_a_superseded_outreach()
        resource = as_json(fhir_task(ep.s, outreach))
        assert resource["status"] == "cancelled"
        assert resource["businessStatus"] == {"text": f"superseded by {higher.task_id}"}
        assert fhir_task(ep.s, higher).status == "requested"

    def test_given_a_hold_when_the_episode_resumes_then_only_open_tasks_are_shifted(
        self,
    ) -> None:
        ep, outreach, higher = self.given_a_superseded_outreach()
        ep.run(ep.make(c.PlaceOnHold, kind="hospitalization", review_days=7))
        ep.advance(DAY)
        ep.run(ep.make(c.ResumeFromHold))
        assert ep.s.task(outreach.task_id) == outreach
        assert ep.s.task(higher.task_id).due_at == higher.due_at + DAY  # type: ignore[union-attr]


class TestFirstRules:
    """Episodes admitted under the first revision keep every task open beside the next."""

    def test_given_first_rules_when_outreach_goes_overdue_then_both_tasks_stay_open(
        self,
    ) -> None:
        ep = FirstRulesEpisode().in_program()
        no_show(ep, sessions(ep, 1), 0)
        events = ep.tick(ep.s.tasks[0].due_at)
        assert types(events) == ["escalation_task_overdue", "escalation_raised"]
        assert [t.level for t in open_tasks(ep.s)] == [1, 2]
        assert all(t.concern is None and t.superseded_by is None for t in ep.s.tasks)

    def test_given_first_rules_when_a_second_no_show_comes_then_a_second_task_opens_beside(
        self,
    ) -> None:
        ep = FirstRulesEpisode().in_program()
        starts = sessions(ep, 2)
        no_show(ep, starts, 0)
        assert types(no_show(ep, starts, 1)) == ["attendance_recorded", "escalation_raised"]
        assert [t.level for t in open_tasks(ep.s)] == [1, 2]

    def test_given_first_rules_when_tasks_are_raised_then_the_stored_events_have_no_concern(
        self,
    ) -> None:
        ep = FirstRulesEpisode().in_program()
        starts = sessions(ep, 3)
        for i in range(3):
            no_show(ep, starts, i)
        ep.tick(ep.s.tasks[-1].due_at)
        assert all("concern" not in dump_event(e) for e in raised(ep.history))  # type: ignore[arg-type]
        # Every overdue task climbs beside the open ones: rungs 2 and 3 notify twice.
        assert notified_levels(ep.history) == [1, 2, 3, 2, 3, 4]
        assert sorted(t.level for t in open_tasks(ep.s)) == [1, 2, 2, 3, 3, 4]
        assert "concern" not in ep.s.model_dump(mode="json")["tasks"][0]

    def test_given_first_rules_when_any_open_task_outranks_a_no_show_then_nothing_opens(
        self,
    ) -> None:
        ep = FirstRulesEpisode(catalog=catalog_with(escalation={"no_contact_level": 3}))
        ep.in_program()
        ep.tick(T0 + 14 * DAY)
        ep.session("s0", T0 + 15 * DAY)
        ep.now = T0 + 15 * DAY + 3 * HOUR
        assert types(ep.attendance("s0", "no_show")) == ["attendance_recorded"]

    def test_given_current_rules_when_another_concern_outranks_a_no_show_then_outreach_opens(
        self,
    ) -> None:
        ep = Episode(catalog=catalog_with(escalation={"no_contact_level": 3})).in_program()
        ep.tick(T0 + 14 * DAY)
        ep.session("s0", T0 + 15 * DAY)
        ep.now = T0 + 15 * DAY + 3 * HOUR
        events = ep.attendance("s0", "no_show")
        assert [(e.level, e.concern) for e in raised(events)] == [(1, ATTENDANCE)]
