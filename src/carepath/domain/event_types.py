"""The event classes, one per fact the episode records, all in the past tense.

`carepath.domain.events` gathers them into the one discriminated union; import them
from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from carepath.domain.actors import Actor
from carepath.domain.commands import ReferralSource
from carepath.domain.state import DeadlineRules, Stage
from carepath.domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    AttendanceStatus,
    AuthorizationFlag,
    ConsentScope,
    DischargeReason,
    EscalationTrigger,
    HoldKind,
    LevelOfCare,
    RecipientKind,
    RelapsePreventionPlan,
    ReviewOutcome,
    ScreeningFindings,
    SessionKind,
    StaffRecipient,
    TaskKind,
    TreatmentPlan,
)


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    seq: int = Field(ge=1, description="Position in the episode's stream, contiguous from 1.")
    occurred_at: datetime
    actor: Actor
    command_id: str
    schema_version: int = 1


# --- intake -------------------------------------------------------------------------


class ClientReferred(EventBase):
    type: Literal["client_referred"] = "client_referred"
    client_ref: str
    program_id: str
    referral_source: ReferralSource
    readmission_of: str | None = None


class ScreeningStarted(EventBase):
    type: Literal["screening_started"] = "screening_started"


class ScreeningRecorded(EventBase):
    type: Literal["screening_recorded"] = "screening_recorded"
    findings: ScreeningFindings
    eligible: bool


class ClientReferredOut(EventBase):
    type: Literal["client_referred_out"] = "client_referred_out"
    level_of_care: LevelOfCare
    summary: str


class AssessmentRecorded(EventBase):
    type: Literal["assessment_recorded"] = "assessment_recorded"
    asam_edition: AsamEdition
    asam_ratings: AsamRatings
    diagnoses: tuple[str, ...]
    recommended_level: LevelOfCare


class LevelOfCareOverridden(EventBase):
    type: Literal["level_of_care_overridden"] = "level_of_care_overridden"
    recommended_level: LevelOfCare
    justification: str


class ClientAdmitted(EventBase):
    type: Literal["client_admitted"] = "client_admitted"
    phase_id: str
    plan_due_at: datetime
    rules: DeadlineRules = DeadlineRules()


# --- plan, phases, reviews, transitions -------------------------------------------------


class TreatmentPlanRecorded(EventBase):
    type: Literal["treatment_plan_recorded"] = "treatment_plan_recorded"
    plan: TreatmentPlan
    revision: int = Field(ge=1)
    review_due_at: datetime


class PhaseAdvanced(EventBase):
    type: Literal["phase_advanced"] = "phase_advanced"
    from_phase: str
    to_phase: str


class PlanReviewCompleted(EventBase):
    type: Literal["plan_review_completed"] = "plan_review_completed"
    outcome: ReviewOutcome
    notes: str | None = None
    next_review_due_at: datetime


class EpisodePutOnHold(EventBase):
    type: Literal["episode_put_on_hold"] = "episode_put_on_hold"
    kind: HoldKind
    review_due_at: datetime
    resume_stage: Stage


class EpisodeResumed(EventBase):
    type: Literal["episode_resumed"] = "episode_resumed"
    stage: Stage
    held_since: datetime


class ClientSteppedUp(EventBase):
    type: Literal["client_stepped_up"] = "client_stepped_up"
    to_level: LevelOfCare
    intent_to_return: bool


class RelapsePreventionPlanRecorded(EventBase):
    type: Literal["relapse_prevention_plan_recorded"] = "relapse_prevention_plan_recorded"
    plan: RelapsePreventionPlan


class AftercarePlanRecorded(EventBase):
    type: Literal["aftercare_plan_recorded"] = "aftercare_plan_recorded"
    plan: AftercarePlan


class ClientSteppedDown(EventBase):
    type: Literal["client_stepped_down"] = "client_stepped_down"
    to_level: LevelOfCare
    check_ins_due: tuple[datetime, ...]
    check_in_window_days: int


class EpisodeDischarged(EventBase):
    type: Literal["episode_discharged"] = "episode_discharged"
    discharge_reason: DischargeReason
    summary: str


# --- sessions -----------------------------------------------------------------------


class SessionScheduled(EventBase):
    type: Literal["session_scheduled"] = "session_scheduled"
    session_id: str
    kind: SessionKind
    starts_at: datetime
    hours: float


class SessionRescheduled(EventBase):
    type: Literal["session_rescheduled"] = "session_rescheduled"
    session_id: str
    starts_at: datetime
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
    week_start: datetime
    week_end: datetime
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
    due_at: datetime
    notify: tuple[StaffRecipient, ...]
    escalated_from: str | None = None


class EscalationTaskOverdue(EventBase):
    type: Literal["escalation_task_overdue"] = "escalation_task_overdue"
    task_id: str
    level: int


class TaskResolved(EventBase):
    type: Literal["task_resolved"] = "task_resolved"
    task_id: str
    outcome: str


class InitialPlanOverdue(EventBase):
    type: Literal["initial_plan_overdue"] = "initial_plan_overdue"
    plan_due_at: datetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.SUPERVISOR,)


class PlanReviewDueSoon(EventBase):
    type: Literal["plan_review_due_soon"] = "plan_review_due_soon"
    review_due_at: datetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.PRIMARY_CLINICIAN,)


class PlanReviewOverdue(EventBase):
    type: Literal["plan_review_overdue"] = "plan_review_overdue"
    review_due_at: datetime
    notify: tuple[StaffRecipient, ...] = (
        StaffRecipient.PRIMARY_CLINICIAN,
        StaffRecipient.SUPERVISOR,
    )


class HoldReviewOverdue(EventBase):
    type: Literal["hold_review_overdue"] = "hold_review_overdue"
    review_due_at: datetime
    notify: tuple[StaffRecipient, ...] = (StaffRecipient.SUPERVISOR,)


# --- aftercare ------------------------------------------------------------------------


class CheckInCompleted(EventBase):
    type: Literal["check_in_completed"] = "check_in_completed"
    check_in: int


class CheckInMissed(EventBase):
    type: Literal["check_in_missed"] = "check_in_missed"
    check_in: int
    due_at: datetime


class RelapseReported(EventBase):
    type: Literal["relapse_reported"] = "relapse_reported"


class ClientReadmitted(EventBase):
    type: Literal["client_readmitted"] = "client_readmitted"
    new_episode_id: str


# --- consent and payer authorization ---------------------------------------------------


class ConsentRecorded(EventBase):
    type: Literal["consent_recorded"] = "consent_recorded"
    consent_id: str
    recipient_ref: str
    recipient_kind: RecipientKind
    scopes: tuple[ConsentScope, ...]
    expires_at: datetime


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
    starts_at: datetime
    ends_at: datetime
    remind_at: datetime


class AuthorizationExpiring(EventBase):
    type: Literal["authorization_expiring"] = "authorization_expiring"
    authorization_id: str
    ends_at: datetime
