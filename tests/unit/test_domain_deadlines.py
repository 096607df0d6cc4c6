"""Deadlines as data: the one table of deadline rules, `next_deadline`, `pending_deadlines`,
what a `Tick` means, and the search attributes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_scenario import DAY, HOUR, INTAKE, T0, Episode, catalog_with, types
from first_rules import FirstRulesEpisode
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain import next_deadline, visibility
from domain.deadlines import DEADLINE_RULES, DeadlineRule, Due, due_items, pending_deadlines
from domain.emitter import Emitter
from domain.events import Event
from domain.state import Session
from domain.ticks import fire_due
from domain.vocabulary import AttendanceStatus, HoldKind, ReviewOutcome, SessionKind

S1 = T0 + DAY


class TestNextDeadline:
    def test_nothing_is_due_before_admission(self) -> None:
        assert next_deadline(Episode().assessed().s) is None
        assert next_deadline(None) is None

    def test_after_admission_the_first_weekly_check_is_due_first(self) -> None:
        ep = Episode().admitted()
        # The clinic's week (UTC here): from midnight of the admission day, 7 days.
        assert next_deadline(ep.s) == T0 - 9 * HOUR + 7 * DAY

    def test_a_session_is_due_at_its_end_plus_grace(self) -> None:
        ep = Episode().in_program().session("s1", S1, hours=3)
        assert next_deadline(ep.s) == S1 + 3 * HOUR + HOUR

    def test_grace_period_comes_from_the_program(self) -> None:
        catalog = catalog_with(attendance={"no_show_grace": "PT15M"})
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

    # (start in hours after S1, hours, cancelled, attended), in the order they were added.
    SESSIONS = st.lists(
        st.tuples(
            st.integers(0, 48),
            st.sampled_from([0.25, 1.0, 2.0, 3.0, 6.0, 12.0]),
            st.booleans(),
            st.booleans(),
        ),
        max_size=12,
    )

    @settings(max_examples=300, deadline=None)
    @given(sessions=SESSIONS)
    def test_the_first_no_show_is_the_earliest_end_of_any_waiting_session(
        self, sessions: list[tuple[int, float, bool, bool]]
    ) -> None:
        """Overlapping sessions of any lengths, in any order: one that starts later but is
        shorter can end first, and the shortcut must still find it."""
        base = Episode().in_program().s
        state = base.model_copy(
            update={
                "sessions": tuple(
                    Session(
                        session_id=f"s{i}",
                        kind=SessionKind.GROUP_SKILLS,
                        starts_at=S1 + start * HOUR,
                        hours=hours,
                        cancelled=cancelled,
                        status=AttendanceStatus.ATTENDED if attended else None,
                    )
                    for i, (start, hours, cancelled, attended) in enumerate(sessions)
                )
            }
        )
        [rule] = [r for r in DEADLINE_RULES if r.kind == "session_no_show"]
        listed = min((due.at for due in due_items(rule, state)), default=None)
        assert rule.first_at(state) == listed
        assert next_deadline(state) == min((at for _k, at, _r in pending_deadlines(state)))


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
        catalog = catalog_with(planning={"review_reminder": "PT0S"})
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

    def test_given_the_next_deadline_already_worked_out_then_the_attributes_are_the_same(
        self,
    ) -> None:
        ep = Episode().in_program().session("s1", S1)
        ep.tick(S1 + 4 * HOUR)
        given = visibility(ep.s, next_deadline(ep.s))

        assert given == visibility(ep.s)
        assert given["next_deadline"] is not None
        assert visibility(ep.s, None)["next_deadline"] is None

    def test_search_attributes_before_a_plan_have_no_clinician(self) -> None:
        attributes = visibility(Episode().referred().s)
        assert attributes["primary_clinician"] is None
        assert attributes["escalation_level"] == 0
        assert attributes["next_deadline"] is None


# Each kind of deadline and the event its firing records first.
KIND_EVENTS = {
    "session_no_show": "attendance_recorded",
    "task_due": "escalation_task_overdue",
    "no_contact_review": "escalation_raised",
    "weekly_hours_check": "weekly_attendance_checked",
    "initial_plan_due": "initial_plan_overdue",
    "plan_review_overdue": "plan_review_overdue",
    "plan_review_reminder": "plan_review_due_soon",
    "hold_review_due": "hold_review_overdue",
    "check_in_closes": "check_in_missed",
    "authorization_reminder": "authorization_expiring",
    "phase_review_due": "phase_review_due",
}


def _fired_kinds(events: tuple[Event, ...]) -> list[str]:
    """The kinds a tick fired, in order, read back from its events (escalations that
    follow a no-show or a missed check-in, and the tasks they supersede, are consequences,
    not kinds of their own)."""
    kinds: list[str] = []
    for event in events:
        if event.type == "escalation_task_superseded":
            continue
        if event.type == "escalation_raised" and event.trigger.value != "no_contact":
            continue
        kind = next(k for k, t in KIND_EVENTS.items() if t == event.type)
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    return kinds


def _with_authorization(ep: Episode) -> Episode:
    ep.run(
        ep.make(
            c.RecordAuthorization,
            actor=INTAKE,
            authorization_id="a1",
            payer_ref="payer-7",
            units=30,
            starts_at=T0,
            ends_at=T0 + 40 * DAY,
        )
    )
    return ep


def _on_hold(ep: Episode) -> Episode:
    ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
    return ep


def _with_open_task(ep: Episode) -> Episode:
    ep.session("s1", S1)
    ep.tick(S1 + 4 * HOUR)
    return ep


# Episodes in which, between them, every kind of deadline is pending.
SCENARIOS = {
    "admitted": lambda: Episode().admitted(),
    "in program, a session booked": lambda: Episode().in_program().session("s1", S1),
    "in program, a task open": lambda: _with_open_task(Episode().in_program()),
    "in program, authorized": lambda: _with_authorization(Episode().in_program()),
    "on hold": lambda: _on_hold(Episode().in_program()),
    "in aftercare": lambda: Episode().in_aftercare(),
}


class TestTheTableOfDeadlineRules:
    def test_the_table_lists_each_kind_once_in_the_order_a_tick_handles_them(self) -> None:
        assert [r.kind for r in DEADLINE_RULES] == list(KIND_EVENTS)

    def test_every_kind_in_the_table_is_pending_in_some_episode(self) -> None:
        pending = {kind for make in SCENARIOS.values() for kind, *_ in pending_deadlines(make().s)}
        assert pending == set(KIND_EVENTS)

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_next_deadline_is_the_earliest_pending_deadline(self, name: str) -> None:
        state = SCENARIOS[name]().s
        assert next_deadline(state) == min(at for _kind, at, _ref in pending_deadlines(state))

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_a_tick_fires_exactly_the_kinds_that_are_due(self, name: str) -> None:
        ep = SCENARIOS[name]()
        for _ in range(4):  # the first few deadlines, one tick each
            deadline = next_deadline(ep.s)
            if deadline is None:
                break
            due = {kind for kind, at, _ref in pending_deadlines(ep.s) if at <= deadline}
            events = ep.tick(deadline)
            assert set(_fired_kinds(events)) == due
            assert all(at > deadline for _kind, at, _ref in pending_deadlines(ep.s))

    def test_a_tick_fires_nothing_before_the_next_deadline(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        deadline = next_deadline(ep.s)
        assert deadline is not None
        assert ep.tick(deadline - timedelta(seconds=1)) == ()

    @pytest.mark.parametrize("first_rules", [True, False], ids=["first rules", "current rules"])
    def test_one_late_tick_handles_the_kinds_in_table_order(self, first_rules: bool) -> None:
        given = FirstRulesEpisode() if first_rules else Episode()
        ep = _with_authorization(_with_open_task(given.in_program()))
        ep.session("s2", S1 + 2 * DAY)
        events = ep.tick(T0 + 40 * DAY)
        # Under the current rules the second no-show's task supersedes the open outreach
        # before it falls due, so no task is due; under the first rules both stay open.
        task_due = ["task_due"] if first_rules else []
        # Phase reviews come with the current rules only.
        phase_review = [] if first_rules else ["phase_review_due"]
        assert _fired_kinds(events) == [
            "session_no_show",
            *task_due,
            "no_contact_review",
            "weekly_hours_check",
            "plan_review_overdue",
            "authorization_reminder",
            *phase_review,
        ]

    def test_references_name_the_session_task_check_in_and_authorization(self) -> None:
        pairs = {
            (kind, ref)
            for make in SCENARIOS.values()
            for kind, _at, ref in pending_deadlines(make().s)
        }
        task = _with_open_task(Episode().in_program()).s.tasks[0]
        assert {
            ("session_no_show", "s1"),
            ("task_due", task.task_id),
            ("check_in_closes", "check-in-1"),
            ("authorization_reminder", "a1"),
            ("weekly_hours_check", None),
        } <= pairs

    def test_a_rule_whose_firing_leaves_it_due_is_refused_instead_of_looping(self) -> None:
        ep = Episode().admitted()
        stuck = DeadlineRule("stuck", lambda s: (Due(T0, None),), lambda em, due: None)
        em = Emitter(ep.s, c.Tick(now=T0 + DAY), ep.ctx(T0 + DAY), now=T0 + DAY)
        with pytest.raises(AssertionError, match=r"'stuck' fired .* and is still due"):
            fire_due(em, stuck)
