"""Commands that move an episode along the pathway: intake, plan, phases, transitions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domain.command_base import CommandBase, ReferralSource
from domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    DischargeReason,
    HoldKind,
    Icd10Code,
    LevelOfCare,
    Ref,
    RelapsePreventionPlan,
    ReviewOutcome,
    ScreeningFindings,
    ShortText,
    TreatmentPlan,
)

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
    """Move to the program's next phase (e.g. stabilization -> skills)."""

    type: Literal["advance_phase"] = "advance_phase"


class CompletePlanReview(CommandBase):
    """Record a periodic plan review and restart the review clock.

    An advance-phase outcome advances the phase; step-down, step-up and discharge
    outcomes are carried out by their own commands, which need plans, a summary or a
    supervisor.
    """

    type: Literal["complete_plan_review"] = "complete_plan_review"
    outcome: ReviewOutcome
    notes: ShortText | None = None


class PlaceOnHold(CommandBase):
    """Pause the episode (e.g. a short hospitalization); absence escalation is paused."""

    type: Literal["place_on_hold"] = "place_on_hold"
    kind: HoldKind
    review_days: int | None = Field(default=None, ge=1, le=90)


class ResumeFromHold(CommandBase):
    """End the hold; paused clocks (tasks, plan and review due dates) restart."""

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
    """Record the relapse-prevention plan that step-down requires."""

    type: Literal["record_relapse_prevention_plan"] = "record_relapse_prevention_plan"
    plan: RelapsePreventionPlan


class RecordAftercarePlan(CommandBase):
    """Record the aftercare plan (therapy, peer support, resources) step-down requires."""

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
