"""Commands from referral to admission: screening, referral out, assessment, override, admit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from domain.command_base import CommandBase, Endpoint, ReferralSource
from domain.vocabulary import (
    ASAM_FOURTH_EDITION_FIELDS,
    AsamEdition,
    AsamRatings,
    Icd10Code,
    LevelOfCare,
    LongText,
    Ref,
    ScreeningFindings,
    items,
)


class ReferClient(CommandBase):
    """Refer a client to a program; this opens the episode of care."""

    # No endpoint under an episode: POST /episodes takes the referral and opens one.
    endpoint = None

    type: Literal["refer_client"] = "refer_client"
    client_ref: Ref = Field(
        max_length=100,
        description="An opaque reference to the client in the provider's records (never a name).",
    )
    program_id: Ref = Field(max_length=100)
    referral_source: ReferralSource
    readmission_of: Ref | None = Field(
        default=None, description="The earlier episode this referral readmits from, if any."
    )


class StartScreening(CommandBase):
    """Begin the eligibility screening of a referred client."""

    endpoint = Endpoint("/screening/start", example={"reason": "referral documents received"})

    type: Literal["start_screening"] = "start_screening"


class RecordScreening(CommandBase):
    """Record the eligibility screening; a client who is not eligible is referred out."""

    endpoint = Endpoint(
        "/screening",
        example={
            "findings": {
                "moderate_symptoms": True,
                "stable_supportive_living_environment": True,
                "reliable_transportation": True,
                "motivated_for_treatment": True,
                "able_to_participate_in_groups": True,
                "severe_crisis": False,
                "active_intoxication_needing_withdrawal_management": False,
                "imminent_danger_to_self_or_others": False,
            }
        },
    )

    type: Literal["record_screening"] = "record_screening"
    findings: ScreeningFindings
    referred_out_to: LevelOfCare | None = Field(
        default=None, description="Required when not eligible: the higher level of care."
    )


class ReferOut(CommandBase):
    """Refer the client to another level of care before admission; closes the episode."""

    endpoint = Endpoint(
        "/refer-out",
        example={
            "level_of_care": "php",
            "summary": "needs daily structure: referred to a level 2.5 program",
        },
    )

    type: Literal["refer_out"] = "refer_out"
    level_of_care: LevelOfCare
    summary: LongText


class RecordAssessment(CommandBase):
    """Record the biopsychosocial assessment: ASAM ratings, diagnoses, recommended level."""

    endpoint = Endpoint(
        "/assessment",
        example={
            "asam_edition": "asam-criteria-3",
            "asam_ratings": {
                "acute_intoxication_withdrawal": 1,
                "biomedical": 0,
                "emotional_behavioral_cognitive": 2,
                "readiness_to_change": 2,
                "relapse_continued_use": 2,
                "recovery_environment": 1,
            },
            "diagnoses": ["F10.20"],
            "recommended_level": "iop",
        },
    )

    type: Literal["record_assessment"] = "record_assessment"
    asam_edition: AsamEdition
    asam_ratings: AsamRatings = Field(
        description=(
            "The rating of each dimension by its number in the recorded edition: the "
            "field names are the 3rd edition's; a 4th-edition assessment may give the "
            "4th edition's names instead (see domain/asam.py)."
        )
    )
    diagnoses: tuple[Icd10Code, ...] = items(at_least=1)
    recommended_level: LevelOfCare

    @model_validator(mode="before")
    @classmethod
    def _names_of_the_edition(cls, data: Any) -> Any:
        """A 3rd-edition assessment may not use the 4th edition's dimension names: they
        name other content under the same numbers (dimension 4 is not readiness)."""
        if not isinstance(data, dict) or data.get("asam_edition") != AsamEdition.THIRD.value:
            return data
        ratings = data.get("asam_ratings")
        if isinstance(ratings, dict):
            foreign = sorted(set(ratings) & set(ASAM_FOURTH_EDITION_FIELDS))
            if foreign:
                raise ValueError(
                    f"{', '.join(foreign)}: 4th-edition dimension names in a 3rd-edition "
                    "assessment; use the 3rd edition's names or record asam-criteria-4"
                )
        return data


class OverrideLevelOfCare(CommandBase):
    """Admit despite a recommended level other than the program's (supervisors only)."""

    endpoint = Endpoint(
        "/level-of-care-override",
        example={
            "justification": "PHP waitlist of 3 weeks; IOP with weekly psychiatry review meanwhile"
        },
    )

    type: Literal["override_level_of_care"] = "override_level_of_care"
    justification: LongText


class AdmitClient(CommandBase):
    """Admit an assessed client to the program's first phase."""

    endpoint = Endpoint("/admission", example={})

    type: Literal["admit_client"] = "admit_client"
