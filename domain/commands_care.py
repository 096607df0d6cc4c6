"""Commands of day-to-day care: sessions, tasks, aftercare, consent, authorization, time."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from domain.actors import SYSTEM_ACTOR, Actor
from domain.command_base import CommandBase, Endpoint
from domain.vocabulary import (
    AttendanceStatus,
    ConsentScope,
    LevelOfCare,
    LongText,
    Moment,
    RecipientKind,
    Ref,
    SessionKind,
    items,
)

# The session the examples schedule, move, cancel and record attendance for.
_SESSION = "s-2026-01-05-am"

# --- sessions -----------------------------------------------------------------------


class ScheduleSession(CommandBase):
    """Schedule a session; the caller chooses the session id."""

    endpoint = Endpoint(
        "/sessions",
        example={
            "session_id": _SESSION,
            "kind": "group_skills",
            "starts_at": "2026-01-05T15:00:00Z",
            "hours": 3,
        },
    )

    type: Literal["schedule_session"] = "schedule_session"
    session_id: Ref
    kind: SessionKind
    starts_at: Moment
    hours: float = Field(gt=0, le=12)


class RescheduleSession(CommandBase):
    """Move a session that has no attendance yet; hours stay unless given."""

    endpoint = Endpoint(
        "/sessions/{session_id}/reschedule",
        example={"session_id": _SESSION, "starts_at": "2026-01-06T15:00:00Z"},
    )

    type: Literal["reschedule_session"] = "reschedule_session"
    session_id: Ref
    starts_at: Moment
    hours: float | None = Field(default=None, gt=0, le=12)


class CancelSession(CommandBase):
    """Cancel a session that has no attendance yet."""

    endpoint = Endpoint(
        "/sessions/{session_id}/cancel",
        example={"session_id": _SESSION, "reason": "facilitator ill"},
    )

    type: Literal["cancel_session"] = "cancel_session"
    session_id: Ref


class RecordAttendance(CommandBase):
    """Record attended, partial (with hours), excused or no-show for a session."""

    endpoint = Endpoint(
        "/sessions/{session_id}/attendance",
        example={"session_id": _SESSION, "status": "attended"},
    )

    type: Literal["record_attendance"] = "record_attendance"
    session_id: Ref
    status: AttendanceStatus
    hours: float | None = Field(default=None, gt=0, le=12)


class CorrectAttendance(CommandBase):
    """Replace a wrong attendance record by a correction; the reason is required."""

    endpoint = Endpoint(
        "/sessions/{session_id}/attendance-correction",
        example={
            "session_id": _SESSION,
            "status": "partial",
            "hours": 1.5,
            "reason": "left after the first half; recorded as attended by mistake",
        },
    )

    type: Literal["correct_attendance"] = "correct_attendance"
    session_id: Ref
    status: AttendanceStatus
    hours: float | None = Field(default=None, gt=0, le=12)


# --- escalation, aftercare ------------------------------------------------------------


class ResolveTask(CommandBase):
    """Close an escalation task; case reviews and above need a supervisor or director."""

    endpoint = Endpoint(
        "/tasks/{task_id}/resolution",
        example={"task_id": "t-1", "outcome": "reached by phone; attends Thursday"},
    )

    type: Literal["resolve_task"] = "resolve_task"
    task_id: Ref
    outcome: LongText


class RecordCheckIn(CommandBase):
    """Record an aftercare check-in (1-based, in the program's offset order) as completed."""

    endpoint = Endpoint("/check-ins", example={"check_in": 1})

    type: Literal["record_check_in"] = "record_check_in"
    # Any program's check-ins number far fewer; the bound keeps the number an ordinary int.
    check_in: int = Field(ge=1, le=1000)


class ReportRelapse(CommandBase):
    """Report a relapse in aftercare; opens a reassessment task."""

    endpoint = Endpoint("/relapse", example={"reason": "reported at the 30-day check-in"})

    type: Literal["report_relapse"] = "report_relapse"


class ReadmitClient(CommandBase):
    """Close this aftercare episode; the client is readmitted in the new episode named."""

    endpoint = Endpoint(
        "/readmission",
        example={
            "new_episode_id": "3f1c2a9e-readmit",
            "summary": "relapse after step-down; readmitted to IOP",
        },
    )

    type: Literal["readmit_client"] = "readmit_client"
    new_episode_id: Ref
    summary: LongText


# --- consent and payer authorization ---------------------------------------------------


class RecordConsent(CommandBase):
    """Record a client's consent to disclose (42 CFR Part 2): recipient, scopes, expiry."""

    endpoint = Endpoint(
        "/consents",
        example={
            "consent_id": "c-1",
            "recipient_ref": "family-contact-1",
            "recipient_kind": "family",
            "scopes": ["attendance"],
            "expires_at": "2026-12-31T23:59:59Z",
        },
    )

    type: Literal["record_consent"] = "record_consent"
    consent_id: Ref
    recipient_ref: Ref
    recipient_kind: RecipientKind
    scopes: tuple[ConsentScope, ...] = items(at_least=1)
    expires_at: Moment


class RevokeConsent(CommandBase):
    """Revoke a consent; notifications under it stop at once."""

    endpoint = Endpoint("/consents/{consent_id}/revocation", example={"consent_id": "c-1"})

    type: Literal["revoke_consent"] = "revoke_consent"
    consent_id: Ref


class NotifyParty(CommandBase):
    """Notify family or an external party; needs an active consent for recipient and scope."""

    endpoint = Endpoint(
        "/notifications",
        example={
            "recipient_ref": "family-contact-1",
            "recipient_kind": "family",
            "scope": "attendance",
        },
    )

    type: Literal["notify_party"] = "notify_party"
    recipient_ref: Ref
    recipient_kind: RecipientKind
    scope: ConsentScope


class RecordAuthorization(CommandBase):
    """Record a payer authorization: level of care, units (sessions) and dates."""

    endpoint = Endpoint(
        "/authorizations",
        example={
            "authorization_id": "auth-1",
            "payer_ref": "payer-17",
            "level_of_care": "iop",
            "units": 36,
            "starts_at": "2026-01-05T00:00:00Z",
            "ends_at": "2026-03-31T23:59:59Z",
        },
    )

    type: Literal["record_authorization"] = "record_authorization"
    authorization_id: Ref
    payer_ref: Ref
    level_of_care: LevelOfCare = LevelOfCare.IOP
    units: int = Field(ge=1, le=10_000, description="Authorized sessions.")
    starts_at: Moment
    ends_at: Moment


# --- time -----------------------------------------------------------------------------


class Tick(CommandBase):
    """The passage of time, issued by the system when `next_deadline` fires."""

    # No endpoint: only the workflow's timer issues ticks.
    endpoint = None

    type: Literal["tick"] = "tick"
    actor: Actor = SYSTEM_ACTOR
    now: Moment

    @model_validator(mode="before")
    @classmethod
    def _default_command_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "command_id" not in data and "now" in data:
            now = data["now"]
            stamp = now.isoformat() if hasattr(now, "isoformat") else str(now)
            return {**data, "command_id": f"tick:{stamp}"}
        return data
