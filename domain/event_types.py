"""The event base and the pathway's event classes (intake, plan, phases, transitions).

`domain.events` gathers them into the one discriminated union; import them
from there. Every moment an event carries is timezone-aware (`AwareDatetime`): a stored
event never leaves a reader to guess its offset. Events depend only on the vocabulary and
the actor model, so the stored record never changes shape because state or commands do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.actors import Actor
from domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    DeadlineRules,
    DischargeReason,
    HoldKind,
    LevelOfCare,
    ReferralSource,
    RelapsePreventionPlan,
    ReviewOutcome,
    ScreeningFindings,
    Stage,
    TreatmentPlan,
    later_field,
)


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    seq: int = Field(ge=1, description="Position in the episode's stream, contiguous from 1.")
    occurred_at: AwareDatetime
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
    # The version of the program the episode was referred under and its definition's
    # digest (`domain.programs.program_digest`); unset in histories recorded before
    # programs had versions.
    program_version: int | None = later_field()
    program_digest: str | None = later_field()


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
    plan_due_at: AwareDatetime
    rules: DeadlineRules = DeadlineRules()


# --- plan, phases, reviews, transitions -------------------------------------------------


class TreatmentPlanRecorded(EventBase):
    type: Literal["treatment_plan_recorded"] = "treatment_plan_recorded"
    plan: TreatmentPlan
    revision: int = Field(ge=1)
    review_due_at: AwareDatetime


class PhaseAdvanced(EventBase):
    type: Literal["phase_advanced"] = "phase_advanced"
    from_phase: str
    to_phase: str
    # Under the current rules: why the phase was advanced before the program's earliest
    # advance (`Phase.earliest_advance`); unset for an advance on time.
    early_reason: str | None = later_field()


class PlanReviewCompleted(EventBase):
    type: Literal["plan_review_completed"] = "plan_review_completed"
    outcome: ReviewOutcome
    notes: str | None = None
    next_review_due_at: AwareDatetime


class EpisodePutOnHold(EventBase):
    type: Literal["episode_put_on_hold"] = "episode_put_on_hold"
    kind: HoldKind
    review_due_at: AwareDatetime
    resume_stage: Stage


class EpisodeResumed(EventBase):
    type: Literal["episode_resumed"] = "episode_resumed"
    stage: Stage
    held_since: AwareDatetime


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
    check_ins_due: tuple[AwareDatetime, ...]
    check_in_window_days: int
    check_in_window: timedelta | None = later_field()


class EpisodeDischarged(EventBase):
    type: Literal["episode_discharged"] = "episode_discharged"
    discharge_reason: DischargeReason
    summary: str
