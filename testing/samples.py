"""Sample clinical content for demos, benchmarks and tests: a typical adult IOP admission.

Nothing here is real client data; references are synthetic. The builders return domain
commands, so whatever uses them goes through the decider like any staff action.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from domain import commands as c
from domain.actors import Actor, Role
from domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    CareTeamMember,
    Discipline,
    Goal,
    GoalArea,
    LevelOfCare,
    Modality,
    Problem,
    RelapsePreventionPlan,
    ScheduleBlock,
    ScreeningFindings,
    SessionKind,
    TreatmentPlan,
)

INTAKE = Actor(user_id="ivy.intake", role=Role.INTAKE_COORDINATOR)
CLINICIAN = Actor(user_id="cal.clinician", role=Role.CLINICIAN)
SUPERVISOR = Actor(user_id="sue.supervisor", role=Role.SUPERVISOR)
DIRECTOR = Actor(user_id="dan.director", role=Role.CLINICAL_DIRECTOR)

ELIGIBLE = ScreeningFindings(
    moderate_symptoms=True,
    stable_supportive_living_environment=True,
    reliable_transportation=True,
    motivated_for_treatment=True,
    able_to_participate_in_groups=True,
    severe_crisis=False,
    active_intoxication_needing_withdrawal_management=False,
    imminent_danger_to_self_or_others=False,
)
RATINGS = AsamRatings(
    acute_intoxication_withdrawal=1,
    biomedical=0,
    emotional_behavioral_cognitive=2,
    readiness_to_change=2,
    relapse_continued_use=2,
    recovery_environment=1,
)
RELAPSE_PREVENTION = RelapsePreventionPlan(
    triggers=("payday", "old neighbourhood"), coping_strategies=("call sponsor", "urge surfing")
)
AFTERCARE = AftercarePlan(
    continued_therapy="weekly outpatient CBT", peer_support=("AA",), community_resources=("YMCA",)
)


def treatment_plan(
    primary: str = CLINICIAN.user_id, hours: float = 3, days: int = 3
) -> TreatmentPlan:
    """A plan of `days` program days a week (Mon, Tue, ...) of `hours` each."""
    return TreatmentPlan(
        problems=(Problem(problem_id="p1", description="alcohol use disorder, moderate"),),
        goals=(
            Goal(
                area=GoalArea.COPING_STRATEGIES, description="use urge surfing", problem_ids=("p1",)
            ),
            Goal(area=GoalArea.AFTERCARE_READINESS, description="join a peer support group"),
        ),
        modalities=(Modality.CBT, Modality.TWELVE_STEP_FACILITATION, Modality.PSYCHOEDUCATION),
        weekly_schedule=tuple(ScheduleBlock(weekday=d, hours=hours) for d in range(days)),
        care_team=(
            CareTeamMember(user_id=primary, discipline=Discipline.THERAPIST),
            CareTeamMember(user_id="pat.psychiatrist", discipline=Discipline.PSYCHIATRIST),
        ),
        primary_clinician=primary,
    )


class CommandIds:
    """Unique command ids with a readable prefix."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._counter: Iterator[int] = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


def referral(
    ids: CommandIds, client_ref: str = "MRN-000001", program_id: str = "adult-iop"
) -> c.ReferClient:
    return c.ReferClient(
        command_id=ids(),
        actor=INTAKE,
        client_ref=client_ref,
        program_id=program_id,
        referral_source=c.ReferralSource.PRIMARY_CARE,
    )


def admission(ids: CommandIds, primary: str = CLINICIAN.user_id) -> list[c.Command]:
    """From a referred episode to one in the program with a treatment plan."""
    return [
        c.RecordScreening(command_id=ids(), actor=INTAKE, findings=ELIGIBLE),
        c.RecordAssessment(
            command_id=ids(),
            actor=CLINICIAN,
            asam_edition=AsamEdition.THIRD,
            asam_ratings=RATINGS,
            diagnoses=("F10.20",),
            recommended_level=LevelOfCare.IOP,
        ),
        c.AdmitClient(command_id=ids(), actor=CLINICIAN),
        c.RecordTreatmentPlan(command_id=ids(), actor=CLINICIAN, plan=treatment_plan(primary)),
    ]


def session(
    ids: CommandIds, session_id: str, starts_at: datetime, hours: float = 3
) -> c.ScheduleSession:
    return c.ScheduleSession(
        command_id=ids(),
        actor=CLINICIAN,
        session_id=session_id,
        kind=SessionKind.GROUP_SKILLS,
        starts_at=starts_at,
        hours=hours,
    )


# The request examples on the command classes (`Endpoint.example`) are dated around this
# Monday; the decider judges dates against its own clock (`domain.horizons`).
EXAMPLE_DAY = datetime(2026, 1, 5, tzinfo=UTC)


def dated_example(example: dict[str, Any], today: datetime) -> dict[str, Any]:
    """`example` with every moment in it moved by as far as `today` is from EXAMPLE_DAY,
    so that a test sending it to a running episode works on any day."""
    shift = today - EXAMPLE_DAY

    def moved(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: moved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [moved(item) for item in value]
        if isinstance(value, str) and value[:4].isdigit() and "T" in value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            return (moment + shift).isoformat() if moment.tzinfo is not None else value
        return value

    result: dict[str, Any] = moved(example)
    return result
