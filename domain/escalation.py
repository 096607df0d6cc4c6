"""The absence escalation ladder and escalation tasks (DESIGN.md section 2).

First no-show: outreach by the primary clinician; second consecutive: care coordinator
and supervisor; third consecutive, or too many in a window: clinical case review; a task
not done by its due time escalates one level up. Excused absences never count. Every
threshold comes from the program definition. Staff close tasks with `ResolveTask`, whose
rule is in `domain.decide_tasks`.

Under the current rules (`DeadlineRules.current`) every task belongs to a concern: a
client's run of no-shows (consecutive or in a window) is the one "attendance" concern,
and every other trigger (no contact, a missed check-in, a relapse, a week below
intensity, ...) is its own. At most one task per concern is open. A trigger that calls
for a level at or below the open task of its concern opens nothing; one that calls for a
higher level, or the open task going overdue, supersedes it: the task one rung up is
raised (naming it in `escalated_from`, and notifying that rung's staff) and the lower one
is closed by `EscalationTaskSuperseded`. At the top rung an overdue task stays open,
flagged overdue. Episodes admitted under the first revision keep the first rules: every
trigger opens a task of its own and an overdue task stays open beside the next.
"""

from __future__ import annotations

from datetime import timedelta

from domain import events as ev
from domain.emitter import Emitter
from domain.state import EpisodeState, Session, Task
from domain.vocabulary import AttendanceStatus, EscalationTrigger, TaskKind

ATTENDANCE = "attendance"
"""The concern of a client's run of no-shows, whichever threshold raised it."""

_CONCERNS: dict[EscalationTrigger, str] = {
    EscalationTrigger.CONSECUTIVE_NO_SHOWS: ATTENDANCE,
    EscalationTrigger.NO_SHOWS_IN_WINDOW: ATTENDANCE,
}


def concern_of(trigger: EscalationTrigger) -> str:
    """The concern a trigger raises a task for: attendance for no-shows; any other trigger
    is a concern of its own, named after it. (An overdue task keeps its task's concern.)"""
    return _CONCERNS.get(trigger, trigger.value)


def open_task_for(state: EpisodeState, concern: str) -> Task | None:
    """The open task of a concern, if any (there is at most one under the current rules)."""
    return next((t for t in state.tasks if t.is_open and t.concern == concern), None)


def raise_task(
    em: Emitter,
    level: int,
    trigger: EscalationTrigger,
    *,
    kind: TaskKind | None = None,
    due: timedelta | None = None,
    escalated_from: str | None = None,
    concern: str | None = None,
) -> None:
    """Open an escalation task at `level` (capped at the ladder's top) and notify staff.

    Under the current rules the task belongs to `concern` (by default the trigger's,
    `concern_of`): if a task of that concern is open at this level or above, nothing is
    opened; if one is open below, the new task supersedes it.
    """
    rung = em.program.escalation.level(level)
    # The first rules know no concerns: every trigger opens a task of its own.
    if em.state.rules.current:
        concern = concern or concern_of(trigger)
        lower = open_task_for(em.state, concern)
    else:
        concern, lower = None, None
    if lower is not None and lower.level >= rung.level:
        return  # the open task of this concern already stands at this rung or above
    raised = em.emit(
        ev.EscalationRaised,
        task_id=f"task-{em.next_seq}",
        level=rung.level,
        task_kind=kind or rung.task,
        trigger=trigger,
        due_at=em.now + (due if due is not None else rung.due),
        notify=rung.notify,
        escalated_from=lower.task_id if lower is not None else escalated_from,
        concern=concern,
    )
    if lower is not None:
        em.emit(
            ev.EscalationTaskSuperseded,
            task_id=lower.task_id,
            level=lower.level,
            superseded_by=raised.task_id,
        )


def consecutive_no_shows(state: EpisodeState) -> int:
    """No-shows at the end of the attendance record; excused absences are skipped."""
    recorded = sorted(
        (
            s
            for s in state.sessions
            if s.status is not None and s.status is not AttendanceStatus.EXCUSED
        ),
        key=lambda s: s.starts_at,
    )
    count = 0
    for session in reversed(recorded):
        if session.status is not AttendanceStatus.NO_SHOW:
            break
        count += 1
    return count


def no_shows_in_window(state: EpisodeState, session: Session, window: timedelta) -> int:
    """No-shows among sessions that started in the `window` up to this session's start."""
    since = session.starts_at - window
    return sum(
        1
        for s in state.sessions
        if s.status is AttendanceStatus.NO_SHOW and since < s.starts_at <= session.starts_at
    )


def after_no_show(em: Emitter, session_id: str) -> None:
    """Climb the ladder after a no-show was recorded (or corrected into one)."""
    policy = em.program.escalation
    state = em.state
    session = state.session(session_id)
    if session is None:  # pragma: no cover - the caller just recorded it
        return
    count = consecutive_no_shows(state)
    target, trigger = 0, EscalationTrigger.CONSECUTIVE_NO_SHOWS
    for level, threshold in enumerate(policy.consecutive_no_shows, start=1):
        if count >= threshold:
            target = level
    in_window = no_shows_in_window(state, session, policy.window)
    if in_window >= policy.window_no_shows and policy.window_level > target:
        target, trigger = policy.window_level, EscalationTrigger.NO_SHOWS_IN_WINDOW
    if target == 0:
        return
    if not state.rules.current and any(not t.resolved and t.level >= target for t in state.tasks):
        return  # a task at this level or above is already open for this client
    raise_task(em, target, trigger)


def task_overdue(em: Emitter, task: Task) -> None:
    """A task missed its due time: record it and escalate one level up (unless at the top)."""
    em.emit(ev.EscalationTaskOverdue, task_id=task.task_id, level=task.level)
    if task.level < em.program.escalation.top_level:
        # Under the current rules the task is the open one of its concern, so the task
        # one rung up supersedes it; under the first rules it stays open beside it.
        raise_task(
            em,
            task.level + 1,
            EscalationTrigger.TASK_OVERDUE,
            escalated_from=task.task_id,
            concern=task.concern,
        )


def no_contact(em: Emitter) -> None:
    policy = em.program.escalation
    raise_task(
        em,
        policy.no_contact_level,
        EscalationTrigger.NO_CONTACT,
        kind=TaskKind.ADMINISTRATIVE_DISCHARGE_REVIEW,
        due=policy.no_contact_due,
    )
