"""What the passage of time means: the decision for a `Tick(now)`.

Everything due at or before `now` is handled in one tick, oldest rule first, so after a
tick `next_deadline(state)` is always later than `now` and the workflow never spins.
Tasks opened by a tick are due relative to the tick, never in its past.
"""

from __future__ import annotations

from datetime import timedelta

from domain import events as ev
from domain.deadlines import (
    hold_review_at,
    initial_plan_at,
    no_contact_at,
    no_show_at,
    open_check_ins,
    pending_reminders,
    pending_sessions,
    review_overdue_at,
    review_reminder_at,
    watched_tasks,
    week_check_at,
)
from domain.emitter import Emitter
from domain.escalation import after_no_show, no_contact, raise_task, task_overdue
from domain.vocabulary import AttendanceStatus, EscalationTrigger, TaskKind


def tick(em: Emitter) -> None:
    now = em.now
    _no_shows(em)
    for task in watched_tasks(em.state):
        if task.due_at <= now:
            task_overdue(em, task)
    contact = no_contact_at(em.state)
    if contact is not None and contact <= now:
        no_contact(em)
    _weekly_checks(em)
    _plan_and_reviews(em)
    _aftercare(em)
    for authorization in pending_reminders(em.state):
        if authorization.remind_at <= now:
            em.emit(
                ev.AuthorizationExpiring,
                authorization_id=authorization.authorization_id,
                ends_at=authorization.ends_at,
            )


def _no_shows(em: Emitter) -> None:
    for session in pending_sessions(em.state):
        if no_show_at(em.state, session) <= em.now:
            em.emit(
                ev.AttendanceRecorded,
                session_id=session.session_id,
                status=AttendanceStatus.NO_SHOW,
                hours=0.0,
            )
            after_no_show(em, session.session_id)


def _weekly_checks(em: Emitter) -> None:
    minimum = em.program.intensity.min_weekly_hours
    week_end = week_check_at(em.state)
    while week_end is not None and week_end <= em.now:
        week_start = week_end - timedelta(days=7)
        hours = sum(
            s.attended_hours for s in em.state.sessions if week_start <= s.starts_at < week_end
        )
        em.emit(
            ev.WeeklyAttendanceChecked,
            week_start=week_start,
            week_end=week_end,
            attended_hours=hours,
            minimum_hours=minimum,
            below_minimum=hours < minimum,
        )
        week_end = week_check_at(em.state)


def _plan_and_reviews(em: Emitter) -> None:
    state, now = em.state, em.now
    plan_due = initial_plan_at(state)
    if plan_due is not None and plan_due <= now:
        em.emit(ev.InitialPlanOverdue, plan_due_at=plan_due)
    overdue = review_overdue_at(em.state)
    if overdue is not None and overdue <= now:
        em.emit(ev.PlanReviewOverdue, review_due_at=overdue)
    reminder = review_reminder_at(em.state)
    if reminder is not None and reminder <= now:
        em.emit(ev.PlanReviewDueSoon, review_due_at=em.state.review_due_at)
    hold_due = hold_review_at(em.state)
    if hold_due is not None and hold_due <= now:
        em.emit(ev.HoldReviewOverdue, review_due_at=hold_due)


def _aftercare(em: Emitter) -> None:
    level = em.program.aftercare.outreach_level
    for check_in in open_check_ins(em.state):
        if check_in.closes_at <= em.now:
            em.emit(ev.CheckInMissed, check_in=check_in.number, due_at=check_in.due_at)
            raise_task(
                em, level, EscalationTrigger.CHECK_IN_MISSED, kind=TaskKind.AFTERCARE_OUTREACH
            )
