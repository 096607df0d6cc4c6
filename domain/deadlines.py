"""Deadlines are data: when does time next matter for an episode?

`next_deadline(state)` is the earliest moment at which a `Tick` would produce an event.
The workflow keeps one timer for it; the same rules below tell the tick what is due, so
the two can never disagree. While the episode is on hold, absence timers are paused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.state import (
    TREATMENT_STAGES,
    Authorization,
    CheckIn,
    EpisodeState,
    Session,
    Stage,
    Task,
)


def no_show_at(state: EpisodeState, session: Session) -> datetime:
    """A session with no attendance by its end plus the grace period is a no-show."""
    return session.ends_at + timedelta(minutes=state.rules.no_show_grace_minutes)


def pending_sessions(state: EpisodeState) -> tuple[Session, ...]:
    """Sessions waiting for attendance, in start order, while absences are watched."""
    if state.stage not in TREATMENT_STAGES:
        return ()
    waiting = (s for s in state.sessions if not s.cancelled and s.status is None)
    return tuple(sorted(waiting, key=lambda s: (s.starts_at, s.session_id)))


def watched_tasks(state: EpisodeState) -> tuple[Task, ...]:
    """Open tasks whose due time still matters (paused on hold, gone once closed)."""
    if state.is_closed or state.stage is Stage.ON_HOLD:
        return ()
    return tuple(t for t in state.tasks if not t.resolved and not t.overdue)


def no_contact_at(state: EpisodeState) -> datetime | None:
    if state.stage not in TREATMENT_STAGES or state.no_contact_review_opened:
        return None
    if state.last_contact_at is None:  # pragma: no cover - admission sets it
        return None
    return state.last_contact_at + timedelta(days=state.rules.no_contact_days)


def week_check_at(state: EpisodeState) -> datetime | None:
    return state.next_week_check_at if state.stage in TREATMENT_STAGES else None


def initial_plan_at(state: EpisodeState) -> datetime | None:
    if state.stage is not Stage.TREATMENT_PLANNING or state.initial_plan_overdue_flagged:
        return None
    return state.plan_due_at


def review_overdue_at(state: EpisodeState) -> datetime | None:
    if state.stage is not Stage.IN_PROGRAM or state.review_overdue_flagged:
        return None
    return state.review_due_at


def review_reminder_at(state: EpisodeState) -> datetime | None:
    due = review_overdue_at(state)
    if due is None or state.review_reminded or state.rules.review_reminder_days == 0:
        return None
    return due - timedelta(days=state.rules.review_reminder_days)


def hold_review_at(state: EpisodeState) -> datetime | None:
    hold = state.hold
    if state.stage is not Stage.ON_HOLD or hold is None or hold.review_flagged:
        return None
    return hold.review_due_at


def open_check_ins(state: EpisodeState) -> tuple[CheckIn, ...]:
    if state.stage is not Stage.AFTERCARE:
        return ()
    return tuple(ci for ci in state.check_ins if not ci.completed and not ci.missed)


def pending_reminders(state: EpisodeState) -> tuple[Authorization, ...]:
    if state.is_closed:
        return ()
    return tuple(a for a in state.authorizations if not a.reminded)


def next_deadline(state: EpisodeState | None) -> datetime | None:
    """The next moment something is due for this episode, or None if nothing is."""
    if state is None or state.is_closed:
        return None
    candidates: list[datetime | None] = [
        no_contact_at(state),
        week_check_at(state),
        initial_plan_at(state),
        review_reminder_at(state),
        review_overdue_at(state),
        hold_review_at(state),
    ]
    candidates.extend(no_show_at(state, s) for s in pending_sessions(state))
    candidates.extend(t.due_at for t in watched_tasks(state))
    candidates.extend(ci.closes_at for ci in open_check_ins(state))
    candidates.extend(a.remind_at for a in pending_reminders(state))
    return min((c for c in candidates if c is not None), default=None)


def visibility(state: EpisodeState) -> dict[str, Any]:
    """The values of the workflow's search attributes for this episode."""
    return {
        "stage": state.stage.value,
        "program_id": state.program_id,
        "primary_clinician": state.primary_clinician,
        "escalation_level": state.escalation_level,
        "next_deadline": next_deadline(state),
    }
