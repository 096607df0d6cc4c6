"""Event classes of day-to-day care: sessions, escalation and deadlines, aftercare,
consent and authorization. Import them from `domain.events`."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from domain.event_types import EventBase
from domain.vocabulary import (
    AttendanceStatus,
    AuthorizationFlag,
    ConsentScope,
    EscalationTrigger,
    LevelOfCare,
    RecipientKind,
    SessionKind,
    StaffRecipient,
    TaskKind,
    later_field,
)

# --- sessions -----------------------------------------------------------------------


class SessionScheduled(EventBase):
    type: Literal["session_scheduled"] = "session_scheduled"
    session_id: str
    kind: SessionKind
    starts_at: AwareDatetime
    hours: float


class SessionRescheduled(EventBase):
    type: Literal["session_rescheduled"] = "session_rescheduled"
    session_id: str
    starts_at: AwareDatetime
    hours: float


class SessionCancelled(EventBase):
    type: Literal["session_cancelled"] = "session_cancelled"
    session_id: str


class AttendanceRecorded(EventBase):
    type: Literal["attendance_recorded"] = "attendance_recorded"
    session_id: str
    status: AttendanceStatus
    hours: float = Field(ge=0, description="Hours attended: 0 for excused and no-show.")


class AttendanceCorrected(EventBase):
    type: Literal["attendance_corrected"] = "attendance_corrected"
    session_id: str
    status: AttendanceStatus
    hours: float = Field(ge=0)
    previous_status: AttendanceStatus
    previous_hours: float = Field(ge=0)


class SessionBeyondAuthorization(EventBase):
    type: Literal["session_beyond_authorization"] = "session_beyond_authorization"
    session_id: str
    flag: AuthorizationFlag
    authorization_ids: tuple[str, ...] = ()


class WeeklyAttendanceChecked(EventBase):
    type: Literal["weekly_attendance_checked"] = "weekly_attendance_checked"
    week_start: AwareDatetime
    week_end: AwareDatetime
    attended_hours: float
    minimum_hours: float
    below_minimum: bool


# --- escalation and deadlines ---------------------------------------------------------


class EscalationRaised(EventBase):
    """A task for staff with a due time, and the staff to notify."""

    type: Literal["escalation_raised"] = "escalation_raised"
    task_id: str
    level: int = Field(ge=1)
    task_kind: TaskKind
    trigger: EscalationTrigger
    due_at: AwareDatetime
    notify: tuple[StaffRecipient, ...]
    escalated_from: str | None = None
    # What the task is about (`domain.escalation.concern_of`): at most one task per
    # concern is open. Set under the current rules only.
    concern: str | None = later_field()


class EscalationTaskOverdue(EventBase):
    type: Literal["escalation_task_overdue"] = "escalation_task_overdue"
    task_id: str
    level: int


class EscalationTaskSuperseded(EventBase):
    """An open task closed because its concern moved up a rung: `superseded_by` is the
    higher task that replaces it (current rules; that task names this one in
    `escalated_from`). No notice of its own: the higher task's raising notifies."""

    type: Literal["escalation_task_superseded"] = "escalation_task_superseded"
    task_id: str
    level: int
    superseded_by: str


class TaskResolved(EventBase):
    type: Literal["task_resolved"] = "task_resolved"
    task_id: str
    outcome: str


class InitialPlanOverdue(EventBase):
    type: Literal["initial_plan_overdue"] = "initial_plan_overdue"
    plan_due_at: AwareDatetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.SUPERVISOR,)


class PlanReviewDueSoon(EventBase):
    type: Literal["plan_review_due_soon"] = "plan_review_due_soon"
    review_due_at: AwareDatetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.PRIMARY_CLINICIAN,)


class PlanReviewOverdue(EventBase):
    type: Literal["plan_review_overdue"] = "plan_review_overdue"
    review_due_at: AwareDatetime
    notify: tuple[StaffRecipient, ...] = (
        StaffRecipient.PRIMARY_CLINICIAN,
        StaffRecipient.SUPERVISOR,
    )


class PhaseReviewDue(EventBase):
    """A phase's planned duration is up (counted from admission or the last phase
    advance, paused while on hold): the primary clinician reviews whether to advance."""

    type: Literal["phase_review_due"] = "phase_review_due"
    phase_id: str
    planned_end: AwareDatetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.PRIMARY_CLINICIAN,)


class HoldReviewOverdue(EventBase):
    type: Literal["hold_review_overdue"] = "hold_review_overdue"
    review_due_at: AwareDatetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.SUPERVISOR,)


# --- aftercare ------------------------------------------------------------------------


class CheckInCompleted(EventBase):
    type: Literal["check_in_completed"] = "check_in_completed"
    check_in: int
    # Under the current rules: why a check-in outside its window was recorded anyway.
    outside_window_reason: str | None = later_field()


class CheckInMissed(EventBase):
    type: Literal["check_in_missed"] = "check_in_missed"
    check_in: int
    due_at: AwareDatetime


class RelapseReported(EventBase):
    type: Literal["relapse_reported"] = "relapse_reported"


class ClientReadmitted(EventBase):
    type: Literal["client_readmitted"] = "client_readmitted"
    new_episode_id: str
    # Under the current rules: a supervisor's reason for readmitting while the
    # reassessment task was still open.
    reassessment_override: str | None = later_field()


# --- consent and payer authorization ---------------------------------------------------


class ConsentRecorded(EventBase):
    type: Literal["consent_recorded"] = "consent_recorded"
    consent_id: str
    recipient_ref: str
    recipient_kind: RecipientKind
    scopes: tuple[ConsentScope, ...]
    expires_at: AwareDatetime


class ConsentRevoked(EventBase):
    type: Literal["consent_revoked"] = "consent_revoked"
    consent_id: str


class PartyNotified(EventBase):
    type: Literal["party_notified"] = "party_notified"
    consent_id: str
    recipient_ref: str
    recipient_kind: RecipientKind
    scope: ConsentScope


class AuthorizationRecorded(EventBase):
    type: Literal["authorization_recorded"] = "authorization_recorded"
    authorization_id: str
    payer_ref: str
    level_of_care: LevelOfCare
    units: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    remind_at: AwareDatetime


class AuthorizationExpiring(EventBase):
    type: Literal["authorization_expiring"] = "authorization_expiring"
    authorization_id: str
    ends_at: AwareDatetime
