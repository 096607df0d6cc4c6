"""The absence escalation ladder and escalation tasks (DESIGN.md section 2).

First no-show: outreach by the primary clinician; second consecutive: care coordinator
and supervisor; third consecutive, or too many in a window: clinical case review; a task
not done by its due time escalates one level up. Excused absences never count. Every
threshold comes from the program definition. Staff close tasks with `ResolveTask`, whose
rule is in `domain.decide_tasks`.
"""

from __future__ import annotations

from datetime import timedelta

from domain import events as ev
from domain.emitter import Emitter
from domain.state import EpisodeState, Session, Task
from domain.vocabulary import AttendanceStatus, EscalationTrigger, TaskKind


def raise_task(
    em: Emitter,
    level: int,
    trigger: EscalationTrigger,
    *,
    kind: TaskKind | None = None,
    due: timedelta | None = None,
    escalated_from: str | None = None,
) -> None:
    """Open an escalation task at `level` (capped at the ladder's top) and notify staff."""
    rung = em.program.escalation.level(level)
    em.emit(
        ev.EscalationRaised,
        task_id=f"task-{em.next_seq}",
        level=rung.level,
        task_kind=kind or rung.task,
        trigger=trigger,
        due_at=em.now + (due if due is not None else rung.due),
        notify=rung.notify,
        escalated_from=escalated_from,
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
    if any(not t.resolved and t.level >= target for t in state.tasks):
        return  # a task at this level or above is already open for this client
    raise_task(em, target, trigger)


def task_overdue(em: Emitter, task: Task) -> None:
    """A task missed its due time: record it and escalate one level up (unless at the top)."""
    em.emit(ev.EscalationTaskOverdue, task_id=task.task_id, level=task.level)
    if task.level < em.program.escalation.top_level:
        raise_task(em, task.level + 1, EscalationTrigger.TASK_OVERDUE, escalated_from=task.task_id)


def no_contact(em: Emitter) -> None:
    policy = em.program.escalation
    raise_task(
        em,
        policy.no_contact_level,
        EscalationTrigger.NO_CONTACT,
        kind=TaskKind.ADMINISTRATIVE_DISCHARGE_REVIEW,
        due=policy.no_contact_due,
    )
