"""Commands after admission: treatment plan, phases, plan reviews, hold, step-up,
the plans step-down requires, step-down and discharge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domain.command_base import CommandBase, Endpoint
from domain.vocabulary import (
    AftercarePlan,
    DischargeReason,
    HoldKind,
    LevelOfCare,
    LongText,
    RelapsePreventionPlan,
    ReviewOutcome,
    TreatmentPlan,
)


class RecordTreatmentPlan(CommandBase):
    """Record the treatment plan (first version, or a revision)."""

    endpoint = Endpoint(
        "/treatment-plan",
        example={
            "plan": {
                "problems": [{"problem_id": "p1", "description": "alcohol use disorder, moderate"}],
                "goals": [
                    {
                        "area": "coping_strategies",
                        "description": "use urge surfing",
                        "problem_ids": ["p1"],
                    },
                    {"area": "aftercare_readiness", "description": "join a peer support group"},
                ],
                "modalities": ["cbt", "twelve_step_facilitation", "psychoeducation"],
                "weekly_schedule": [
                    {"weekday": 0, "hours": 3.0, "kinds": ["group_process"]},
                    {"weekday": 1, "hours": 3.0, "kinds": ["group_process"]},
                    {"weekday": 2, "hours": 3.0, "kinds": ["group_process"]},
                ],
                "care_team": [
                    {"user_id": "cal.clinician", "discipline": "therapist"},
                    {"user_id": "pat.psychiatrist", "discipline": "psychiatrist"},
                ],
                "primary_clinician": "cal.clinician",
            }
        },
    )

    type: Literal["record_treatment_plan"] = "record_treatment_plan"
    plan: TreatmentPlan


class AdvancePhase(CommandBase):
    """Move to the program's next phase (e.g. stabilization -> skills)."""

    endpoint = Endpoint("/phase-advance", example={"reason": "stabilization goals met"})

    type: Literal["advance_phase"] = "advance_phase"


class CompletePlanReview(CommandBase):
    """Record a periodic plan review and restart the review clock.

    An advance-phase outcome advances the phase; step-down, step-up and discharge
    outcomes are carried out by their own commands, which need plans, a summary or a
    supervisor.
    """

    endpoint = Endpoint(
        "/plan-reviews", example={"outcome": "continue", "notes": "attending all groups"}
    )

    type: Literal["complete_plan_review"] = "complete_plan_review"
    outcome: ReviewOutcome
    notes: LongText | None = None


class PlaceOnHold(CommandBase):
    """Pause the episode (e.g. a short hospitalization); absence escalation is paused."""

    endpoint = Endpoint("/hold", example={"kind": "hospitalization", "review_days": 7})

    type: Literal["place_on_hold"] = "place_on_hold"
    kind: HoldKind
    review_days: int | None = Field(default=None, ge=1, le=90)


class ResumeFromHold(CommandBase):
    """End the hold; paused clocks (tasks, plan and review due dates) restart."""

    endpoint = Endpoint("/hold/resume", example={})

    type: Literal["resume_from_hold"] = "resume_from_hold"


class StepUp(CommandBase):
    """Move the client to a higher level of care, on hold if they are to return."""

    endpoint = Endpoint("/step-up", example={"to_level": "php", "intent_to_return": True})

    type: Literal["step_up"] = "step_up"
    to_level: LevelOfCare
    intent_to_return: bool
    summary: LongText | None = Field(
        default=None, description="The discharge summary; required when not returning."
    )


class RecordRelapsePreventionPlan(CommandBase):
    """Record the relapse-prevention plan that step-down requires."""

    endpoint = Endpoint(
        "/relapse-prevention-plan",
        example={
            "plan": {
                "triggers": ["payday", "old neighbourhood"],
                "coping_strategies": ["call sponsor", "urge surfing"],
            }
        },
    )

    type: Literal["record_relapse_prevention_plan"] = "record_relapse_prevention_plan"
    plan: RelapsePreventionPlan


class RecordAftercarePlan(CommandBase):
    """Record the aftercare plan (therapy, peer support, resources) step-down requires."""

    endpoint = Endpoint(
        "/aftercare-plan",
        example={
            "plan": {
                "continued_therapy": "weekly outpatient CBT",
                "peer_support": ["AA"],
                "community_resources": ["YMCA"],
            }
        },
    )

    type: Literal["record_aftercare_plan"] = "record_aftercare_plan"
    plan: AftercarePlan


class StepDown(CommandBase):
    """Step down to standard outpatient care and start aftercare."""

    endpoint = Endpoint("/step-down", example={"to_level": "outpatient"})

    type: Literal["step_down"] = "step_down"
    to_level: LevelOfCare = LevelOfCare.OUTPATIENT


class Discharge(CommandBase):
    """Discharge the client; the summary is required. Nothing is accepted afterwards."""

    endpoint = Endpoint(
        "/discharge",
        example={
            "discharge_reason": "completed",
            "summary": "completed all three phases; aftercare plan in place",
        },
    )

    type: Literal["discharge"] = "discharge"
    discharge_reason: DischargeReason
    summary: LongText
