"""Commands: what a user asks CarePath to do, in the imperative.

Every command carries its actor, a command id (the idempotency key: the same id is
applied once) and an optional free-text reason. All commands form one discriminated
union, `Command`, read through `COMMAND_ADAPTER`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from carepath.domain.actors import SYSTEM_ACTOR, Actor
from carepath.domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    AttendanceStatus,
    ConsentScope,
    DischargeReason,
    HoldKind,
    Icd10Code,
    LevelOfCare,
    Moment,
    RecipientKind,
    Ref,
    RelapsePreventionPlan,
    ReviewOutcome,
    ScreeningFindings,
    SessionKind,
    ShortText,
    TreatmentPlan,
)


class ReferralSource(StrEnum):
    SELF = "self"
    INPATIENT_STEP_DOWN = "inpatient_step_down"
    PHP_STEP_DOWN = "php_step_down"
    EMERGENCY_DEPARTMENT = "emergency_department"
    PRIMARY_CARE = "primary_care"
    COURT = "court"
    OTHER = "other"


class CommandBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str = Field(min_length=1, max_length=200)
    actor: Actor
    reason: str | None = Field(default=None, max_length=2000)


# --- intake -------------------------------------------------------------------------


class ReferClient(CommandBase):
    """Refer a client to a program; this opens the episode of care."""

    type: Literal["refer_client"] = "refer_client"
    client_ref: str = Field(
        min_length=1,
        max_length=100,
        description="An opaque reference to the client in the provider's records (never a name).",
    )
    program_id: str = Field(min_length=1, max_length=100)
    referral_source: ReferralSource
    readmission_of: Ref | None = Field(
        default=None, description="The earlier episode this referral readmits from, if any."
    )


class StartScreening(CommandBase):
    """Begin the eligibility screening of a referred client."""

    type: Literal["start_screening"] = "start_screening"


class RecordScreening(CommandBase):
    """Record the eligibility screening; a client who is not eligible is referred out."""

    type: Literal["record_screening"] = "record_screening"
    findings: ScreeningFindings
    referred_out_to: LevelOfCare | None = Field(
        default=None, description="Required when not eligible: the higher level of care."
    )


class ReferOut(CommandBase):
    """Refer the client to another level of care before admission; closes the episode."""

    type: Literal["refer_out"] = "refer_out"
    level_of_care: LevelOfCare
    summary: ShortText


class RecordAssessment(CommandBase):
    """Record the biopsychosocial assessment: ASAM ratings, diagnoses, recommended level."""

    type: Literal["record_assessment"] = "record_assessment"
    asam_edition: AsamEdition
    asam_ratings: AsamRatings
    diagnoses: tuple[Icd10Code, ...] = Field(min_length=1, max_length=20)
    recommended_level: LevelOfCare


class OverrideLevelOfCare(CommandBase):
    """Admit despite a recommended level other than the program's (supervisors only)."""

    type: Literal["override_level_of_care"] = "override_level_of_care"
    justification: ShortText


class AdmitClient(CommandBase):
    """Admit an assessed client to the program's first phase."""

    type: Literal["admit_client"] = "admit_client"


# --- plan, phases, reviews, transitions -------------------------------------------------


class RecordTreatmentPlan(CommandBase):
    """Record the treatment plan (first version, or a revision)."""

    type: Literal["record_treatment_plan"] = "record_treatment_plan"
    plan: TreatmentPlan


class AdvancePhase(CommandBase):
    type: Literal["advance_phase"] = "advance_phase"


class CompletePlanReview(CommandBase):
    type: Literal["complete_plan_review"] = "complete_plan_review"
    outcome: ReviewOutcome
    notes: ShortText | None = None


class PlaceOnHold(CommandBase):
    """Pause the episode (e.g. a short hospitalization); absence escalation is paused."""

    type: Literal["place_on_hold"] = "place_on_hold"
    kind: HoldKind
    review_days: int | None = Field(default=None, ge=1, le=90)


class ResumeFromHold(CommandBase):
    type: Literal["resume_from_hold"] = "resume_from_hold"


class StepUp(CommandBase):
    """Move the client to a higher level of care, on hold if they are to return."""

    type: Literal["step_up"] = "step_up"
    to_level: LevelOfCare
    intent_to_return: bool
    summary: ShortText | None = Field(
        default=None, description="The discharge summary; required when not returning."
    )


class RecordRelapsePreventionPlan(CommandBase):
    type: Literal["record_relapse_prevention_plan"] = "record_relapse_prevention_plan"
    plan: RelapsePreventionPlan


class RecordAftercarePlan(CommandBase):
    type: Literal["record_aftercare_plan"] = "record_aftercare_plan"
    plan: AftercarePlan


class StepDown(CommandBase):
    """Step down to standard outpatient care and start aftercare."""

    type: Literal["step_down"] = "step_down"
    to_level: LevelOfCare = LevelOfCare.OUTPATIENT


class Discharge(CommandBase):
    """Discharge the client; the summary is required. Nothing is accepted afterwards."""

    type: Literal["discharge"] = "discharge"
    discharge_reason: DischargeReason
    summary: ShortText


# --- sessions -----------------------------------------------------------------------


class ScheduleSession(CommandBase):
    type: Literal["schedule_session"] = "schedule_session"
    session_id: Ref
    kind: SessionKind
    starts_at: Moment
    hours: float = Field(gt=0, le=12)


class RescheduleSession(CommandBase):
    type: Literal["reschedule_session"] = "reschedule_session"
    session_id: Ref
    starts_at: Moment
    hours: float | None = Field(default=None, gt=0, le=12)


class CancelSession(CommandBase):
    type: Literal["cancel_session"] = "cancel_session"
    session_id: Ref


class RecordAttendance(CommandBase):
    """Record attended, partial (with hours), excused or no-show for a session."""

    type: Literal["record_attendance"] = "record_attendance"
    session_id: Ref
    status: AttendanceStatus
    hours: float | None = Field(default=None, gt=0, le=12)


class CorrectAttendance(CommandBase):
    """Replace a wrong attendance record by a correction; the reason is required."""

    type: Literal["correct_attendance"] = "correct_attendance"
    session_id: Ref
    status: AttendanceStatus
    hours: float | None = Field(default=None, gt=0, le=12)


# --- escalation, aftercare ------------------------------------------------------------


class ResolveTask(CommandBase):
    type: Literal["resolve_task"] = "resolve_task"
    task_id: Ref
    outcome: ShortText


class RecordCheckIn(CommandBase):
    """Record an aftercare check-in (1-based, in the program's offset order) as completed."""

    type: Literal["record_check_in"] = "record_check_in"
    check_in: int = Field(ge=1)


class ReportRelapse(CommandBase):
    type: Literal["report_relapse"] = "report_relapse"


class ReadmitClient(CommandBase):
    """Close this aftercare episode; the client is readmitted in the new episode named."""

    type: Literal["readmit_client"] = "readmit_client"
    new_episode_id: Ref
    summary: ShortText


# --- consent and payer authorization ---------------------------------------------------


class RecordConsent(CommandBase):
    type: Literal["record_consent"] = "record_consent"
    consent_id: Ref
    recipient_ref: Ref
    recipient_kind: RecipientKind
    scopes: tuple[ConsentScope, ...] = Field(min_length=1)
    expires_at: Moment


class RevokeConsent(CommandBase):
    type: Literal["revoke_consent"] = "revoke_consent"
    consent_id: Ref


class NotifyParty(CommandBase):
    """Notify family or an external party; needs an active consent for recipient and scope."""

    type: Literal["notify_party"] = "notify_party"
    recipient_ref: Ref
    recipient_kind: RecipientKind
    scope: ConsentScope


class RecordAuthorization(CommandBase):
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


Command = Annotated[
    ReferClient
    | StartScreening
    | RecordScreening
    | ReferOut
    | RecordAssessment
    | OverrideLevelOfCare
    | AdmitClient
    | RecordTreatmentPlan
    | AdvancePhase
    | CompletePlanReview
    | PlaceOnHold
    | ResumeFromHold
    | StepUp
    | RecordRelapsePreventionPlan
    | RecordAftercarePlan
    | StepDown
    | Discharge
    | ScheduleSession
    | RescheduleSession
    | CancelSession
    | RecordAttendance
    | CorrectAttendance
    | ResolveTask
    | RecordCheckIn
    | ReportRelapse
    | ReadmitClient
    | RecordConsent
    | RevokeConsent
    | NotifyParty
    | RecordAuthorization
    | Tick,
    Field(discriminator="type"),
]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
