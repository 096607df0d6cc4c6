"""Decisions about sessions: schedule, reschedule, cancel, attendance and its corrections.

A wrong attendance record is never edited: a correction event replaces it, and the
escalation ladder and authorization check see the corrected record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    AttendanceAlreadyRecorded,
    AttendanceNotRecorded,
    DuplicateId,
    InvalidCommand,
    ReasonRequired,
    SessionBackdatedTooFar,
    SessionClosed,
    SessionNotStarted,
    SessionOverlap,
    SessionTooShort,
    UnknownReference,
)
from domain.escalation import after_no_show
from domain.horizons import SESSION
from domain.local_text import local_time, span
from domain.roles import CLINICAL, FRONT_DESK
from domain.rules import rule
from domain.state import TREATMENT_STAGES, Session, Stage
from domain.vocabulary import BILLABLE_ATTENDANCE, AttendanceStatus, AuthorizationFlag

# Corrections may arrive late: after a hold began or after step-down.
_CORRECTABLE = frozenset({*TREATMENT_STAGES, Stage.ON_HOLD, Stage.AFTERCARE})


def _session(em: Emitter, session_id: str) -> Session:
    session = em.state.session(session_id)
    if session is None:
        raise UnknownReference(
            f"episode {em.state.episode_id} has no session {session_id!r}: schedule it first"
        )
    return session


def _open_session(em: Emitter, session_id: str, action: str) -> Session:
    session = _session(em, session_id)
    if session.cancelled or session.status is not None:
        state = "cancelled" if session.cancelled else "already has attendance recorded"
        raise SessionClosed(
            f"session {session_id!r} {state}: cannot {action}; schedule a new session instead"
        )
    return session


def _attended_hours(status: AttendanceStatus, hours: float | None, session: Session) -> float:
    if status is AttendanceStatus.PARTIAL:
        if hours is None or hours >= session.hours:
            raise InvalidCommand(
                f"partial attendance needs the hours attended, less than the session's "
                f"{session.hours} h: give hours, or record the session as attended"
            )
        return hours
    if hours is not None:
        raise InvalidCommand("give hours only for partial attendance: leave hours empty")
    return session.hours if status is AttendanceStatus.ATTENDED else 0.0


def _check_session_guards(em: Emitter, session_id: str, starts_at: datetime, hours: float) -> None:
    """Under the current rules: a session lasts at least the program's shortest session,
    starts no further back than its backdate window, and overlaps none of the client's
    other non-cancelled sessions."""
    state = em.state
    if not state.rules.current:
        return
    attendance, zone = em.program.attendance, state.rules.zone
    length = timedelta(hours=hours)
    if length < attendance.min_session:
        raise SessionTooShort(
            f"a session of {span(length)} is shorter than {em.program.id}'s shortest session "
            f"of {span(attendance.min_session)}: give it at least that many hours"
        )
    earliest = em.now - attendance.backdate_window
    if starts_at < earliest:
        raise SessionBackdatedTooFar(
            f"starts_at {local_time(starts_at, zone)} is more than "
            f"{span(attendance.backdate_window)} in the past: a session may be entered "
            f"late only if it started from {local_time(earliest, zone)} on; check the date"
        )
    ends_at = starts_at + length
    for other in state.sessions:
        if other.cancelled or other.session_id == session_id:
            continue
        if starts_at < other.ends_at and other.starts_at < ends_at:
            raise SessionOverlap(
                f"the session would overlap session {other.session_id!r} "
                f"({local_time(other.starts_at, zone)} to {local_time(other.ends_at, zone)}): "
                "choose another time, or move or cancel that session first"
            )


@rule(c.ScheduleSession, roles=FRONT_DESK)
def schedule_session(em: Emitter, cmd: c.ScheduleSession) -> None:
    em.require_stage(TREATMENT_STAGES, "schedule a session")
    SESSION.check(em.now, cmd.starts_at, "starts_at")
    if em.state.session(cmd.session_id) is not None:
        raise DuplicateId(
            f"session {cmd.session_id!r} already exists: use a new session id, "
            "or reschedule the existing session"
        )
    _check_session_guards(em, cmd.session_id, cmd.starts_at, cmd.hours)
    em.emit(
        ev.SessionScheduled,
        session_id=cmd.session_id,
        kind=cmd.kind,
        starts_at=cmd.starts_at,
        hours=cmd.hours,
    )


@rule(c.RescheduleSession, roles=FRONT_DESK)
def reschedule_session(em: Emitter, cmd: c.RescheduleSession) -> None:
    em.require_stage(TREATMENT_STAGES, "reschedule a session")
    SESSION.check(em.now, cmd.starts_at, "starts_at")
    session = _open_session(em, cmd.session_id, "reschedule it")
    hours = cmd.hours or session.hours
    _check_session_guards(em, session.session_id, cmd.starts_at, hours)
    em.emit(
        ev.SessionRescheduled,
        session_id=session.session_id,
        starts_at=cmd.starts_at,
        hours=hours,
    )


@rule(c.CancelSession, roles=FRONT_DESK)
def cancel_session(em: Emitter, cmd: c.CancelSession) -> None:
    em.require_stage(TREATMENT_STAGES, "cancel a session")
    session = _open_session(em, cmd.session_id, "cancel it")
    em.emit(ev.SessionCancelled, session_id=session.session_id)


@rule(c.RecordAttendance, roles=CLINICAL)
def record_attendance(em: Emitter, cmd: c.RecordAttendance) -> None:
    em.require_stage(TREATMENT_STAGES, "record attendance")
    session = _session(em, cmd.session_id)
    if session.status is not None:
        raise AttendanceAlreadyRecorded(
            f"attendance for session {cmd.session_id!r} is already recorded as "
            f"{session.status.value}: correct it with a reason instead"
        )
    if session.cancelled:
        raise SessionClosed(
            f"session {cmd.session_id!r} was cancelled: schedule a new session to record it"
        )
    if em.now < session.starts_at:
        raise SessionNotStarted(
            f"session {cmd.session_id!r} starts at {session.starts_at.isoformat()}: "
            "record attendance once it has started"
        )
    hours = _attended_hours(cmd.status, cmd.hours, session)
    em.emit(ev.AttendanceRecorded, session_id=session.session_id, status=cmd.status, hours=hours)
    consequences(em, session.session_id, cmd.status, previous=None)


@rule(c.CorrectAttendance, roles=CLINICAL)
def correct_attendance(em: Emitter, cmd: c.CorrectAttendance) -> None:
    em.require_stage(_CORRECTABLE, "correct attendance")
    if not cmd.reason:
        raise ReasonRequired("a correction needs a reason: say why the earlier record was wrong")
    session = _session(em, cmd.session_id)
    if session.status is None:
        raise AttendanceNotRecorded(
            f"session {cmd.session_id!r} has no attendance recorded: record it instead"
        )
    hours = _attended_hours(cmd.status, cmd.hours, session)
    if cmd.status is session.status and hours == session.attended_hours:
        raise InvalidCommand(
            f"session {cmd.session_id!r} is already recorded as {session.status.value}: "
            "nothing to correct"
        )
    em.emit(
        ev.AttendanceCorrected,
        session_id=session.session_id,
        status=cmd.status,
        hours=hours,
        previous_status=session.status,
        previous_hours=session.attended_hours,
    )
    consequences(em, session.session_id, cmd.status, previous=session.status)


def consequences(
    em: Emitter,
    session_id: str,
    status: AttendanceStatus,
    previous: AttendanceStatus | None,
) -> None:
    """Escalate a no-show; check a billable session against the payer's authorizations."""
    if status is AttendanceStatus.NO_SHOW and em.state.stage in TREATMENT_STAGES:
        after_no_show(em, session_id)
    if status in BILLABLE_ATTENDANCE and previous not in BILLABLE_ATTENDANCE:
        check_authorization(em, session_id)


def check_authorization(em: Emitter, session_id: str) -> None:
    """Flag a billable session no authorization covers, or one beyond the authorized units."""
    state = em.state
    if not state.authorizations:
        return  # no payer authorization is tracked for this episode
    session = _session(em, session_id)
    level = em.program.level_of_care
    covering = tuple(
        a for a in state.authorizations if a.level_of_care is level and a.covers(session.starts_at)
    )
    if not covering:
        em.emit(
            ev.SessionBeyondAuthorization,
            session_id=session_id,
            flag=AuthorizationFlag.NO_AUTHORIZATION_COVERS_DATE,
        )
        return
    used = sum(
        1
        for s in state.sessions
        if s.status in BILLABLE_ATTENDANCE and any(a.covers(s.starts_at) for a in covering)
    )
    if used > sum(a.units for a in covering):
        em.emit(
            ev.SessionBeyondAuthorization,
            session_id=session_id,
            flag=AuthorizationFlag.UNITS_EXHAUSTED,
            authorization_ids=tuple(a.authorization_id for a in covering),
        )
