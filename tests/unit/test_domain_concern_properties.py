"""Property test: under any sequence of commands and ticks, an episode under the current
rules has at most one open escalation task per concern, and a concern's tasks climb the
ladder one chain at a time (each rung notified at most once per chain).

The sequences include long waits: the tick after one judges the weeks that passed, and
weeks below the program's intensity open intensity reviews (`domain.deadlines`
`_check_week`), a concern of their own beside attendance, lost contact and the rest."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import timedelta

from domain_scenario import SUPERVISOR, Episode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain import next_deadline
from domain.emitter import Emitter
from domain.errors import CarePathError
from domain.escalation import raise_task
from domain.events import EscalationRaised, Event
from domain.state import EpisodeState
from domain.vocabulary import AttendanceStatus, EscalationTrigger, SessionKind, TaskKind

ACTIONS = (
    "schedule", "schedule", "attend", "attend", "no_show", "no_show", "no_show", "resolve",
    "tick", "tick_deadline", "tick_deadline", "tick_deadline", "below_intensity", "hold",
    "resume", "relapse", "check_in", "wait", "wait",
)  # fmt: skip

WAIT_DAYS = 28
"""The longest wait: up to four weeks pass before the next tick."""

Step = tuple[str, int, int]
steps_strategy = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 72), st.integers(0, 1000)),
    min_size=1,
    max_size=60,
)


def command(ep: Episode, action: str, pick: int) -> c.Command | None:
    s = ep.s
    sessions = [x.session_id for x in s.sessions] or ["s-none"]
    session = sessions[pick % len(sessions)]
    match action:
        case "schedule":
            return ep.make(
                c.ScheduleSession,
                session_id=f"s{len(s.sessions)}",
                kind=SessionKind.GROUP_SKILLS,
                starts_at=ep.now + timedelta(hours=pick % 48 - 12),
                hours=3,
            )
        case "attend":
            status = (AttendanceStatus.ATTENDED, AttendanceStatus.EXCUSED)[pick % 2]
            return ep.make(c.RecordAttendance, session_id=session, status=status)
        case "no_show":
            return ep.make(c.RecordAttendance, session_id=session, status=AttendanceStatus.NO_SHOW)
        case "resolve":
            tasks = [t.task_id for t in s.tasks] or ["task-none"]
            return ep.make(
                c.ResolveTask, actor=SUPERVISOR, task_id=tasks[pick % len(tasks)], outcome="ok"
            )
        case "tick":
            return c.Tick(now=ep.now)
        case "wait":
            ep.now += timedelta(days=1 + pick % WAIT_DAYS)
            return c.Tick(now=ep.now)
        case "tick_deadline":
            deadline = next_deadline(s)
            if deadline is None:
                return None
            ep.now = max(ep.now, deadline)
            return c.Tick(now=ep.now)
        case "hold":
            return ep.make(c.PlaceOnHold, kind="hospitalization", review_days=1 + pick % 10)
        case "resume":
            return ep.make(c.ResumeFromHold)
        case "relapse":
            return ep.make(c.ReportRelapse)
        case "check_in":
            return ep.make(c.RecordCheckIn, check_in=1 + pick % 5)
    raise AssertionError(action)  # pragma: no cover


def below_intensity(ep: Episode, pick: int) -> None:
    """A week below the program's minimum, as another rule raises it: a trigger the ladder
    does not special-case, at a level the pick chooses."""
    if ep.s.is_closed:
        return
    em = Emitter(ep.s, c.Tick(now=ep.now), ep.ctx(), now=ep.now)
    raise_task(em, 1 + pick % 3, EscalationTrigger.BELOW_INTENSITY, kind=TaskKind.INTENSITY_REVIEW)
    ep.history.extend(em.events)
    ep.state = em.state


def check_concerns(state: EpisodeState) -> None:
    open_tasks = [t for t in state.tasks if t.is_open]
    per_concern = Counter(t.concern for t in open_tasks)
    assert all(count == 1 for count in per_concern.values()), per_concern
    assert None not in per_concern, "every task under the current rules has a concern"
    expected = 0 if state.is_closed else max((t.level for t in open_tasks), default=0)
    assert state.escalation_level == expected
    for task in state.tasks:
        if task.superseded_by is None:
            continue
        higher = state.task(task.superseded_by)
        assert higher is not None
        assert higher.concern == task.concern
        assert higher.level > task.level
        assert higher.escalated_from == task.task_id
    for task in state.tasks:
        if task.escalated_from is None:
            continue
        lower = state.task(task.escalated_from)
        assert lower is not None
        assert lower.concern == task.concern, (lower, task)
        assert lower.superseded_by == task.task_id, (lower, task)


def check_intensity_reviews(history: list[Event]) -> None:
    """A week below intensity opens an intensity review of its own concern, never a task of
    another kind or concern; only its overdue successors take the ladder's rung tasks."""
    for e in history:
        if isinstance(e, EscalationRaised) and e.trigger is EscalationTrigger.BELOW_INTENSITY:
            assert (e.task_kind, e.concern) == (TaskKind.INTENSITY_REVIEW, "below_intensity"), e


def check_notifications(history: list[Event]) -> None:
    """Each chain of superseding tasks notifies each rung at most once, in ladder order."""
    successor = {
        e.task_id: e.superseded_by  # type: ignore[attr-defined]
        for e in history
        if e.type == "escalation_task_superseded"
    }
    levels = {
        e.task_id: e.level  # type: ignore[attr-defined]
        for e in history
        if e.type == "escalation_raised" and e.notify  # type: ignore[attr-defined]
    }
    roots = set(levels) - set(successor.values())
    for root in roots:
        chain, task_id = [], root
        while task_id is not None:
            chain.append(levels[task_id])
            task_id = successor.get(task_id)
        assert chain == sorted(set(chain)), chain


def walk(steps: list[Step], stage: str) -> Episode:
    ep = Episode()
    getattr(ep, stage)()
    for action, hours, pick in steps:
        ep.advance(timedelta(hours=hours))
        if action == "below_intensity":
            below_intensity(ep, pick)
        else:
            cmd = command(ep, action, pick)
            if cmd is None:
                continue
            with contextlib.suppress(CarePathError):  # refused commands leave nothing
                ep.run(cmd)
        check_concerns(ep.s)
    check_intensity_reviews(ep.history)
    return ep


BOUNDED = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@BOUNDED
@given(steps=steps_strategy, stage=st.sampled_from(["in_program", "in_aftercare"]))
def test_given_any_commands_and_ticks_when_applied_then_each_concern_has_at_most_one_open_task(
    steps: list[Step], stage: str
) -> None:
    ep = walk(steps, stage)
    check_notifications(ep.history)


def test_given_a_scripted_walk_when_tasks_climb_then_the_walk_reaches_supersession() -> None:
    """A guard on the generator: a short script reaches a superseded task."""
    script: list[Step] = [
        ("schedule", 1, 12), ("schedule", 1, 36), ("tick_deadline", 1, 0),
        ("tick_deadline", 1, 0), ("tick_deadline", 1, 0), ("tick_deadline", 1, 0),
    ]  # fmt: skip
    ep = walk(script, "in_program")
    assert "escalation_task_superseded" in [e.type for e in ep.history]


def test_given_long_waits_when_weeks_are_judged_then_intensity_reviews_climb_on_their_own() -> None:
    """A guard on the generator: waits judge short weeks, whose reviews open and climb on
    their own concern while no-shows climb attendance's."""
    script: list[Step] = [
        ("schedule", 1, 12), ("no_show", 1, 0), ("wait", 0, 6), ("wait", 0, 13),
        ("tick_deadline", 1, 0), ("wait", 0, 20),
    ]  # fmt: skip
    ep = walk(script, "in_program")
    below = [
        e for e in ep.history if isinstance(e, EscalationRaised) and e.concern == "below_intensity"
    ]
    assert below[0].trigger is EscalationTrigger.BELOW_INTENSITY
    assert any(e.escalated_from is not None for e in below), "a review climbed a rung"
    concerns = {t.concern for t in ep.s.tasks}
    assert {"attendance", "below_intensity"} <= concerns
