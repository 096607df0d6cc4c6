"""Who acts on an episode: a user id and a role. Roles decide what a user may do."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.vocabulary import Ref


class Role(StrEnum):
    INTAKE_COORDINATOR = "intake_coordinator"
    CLINICIAN = "clinician"
    SUPERVISOR = "supervisor"
    CLINICAL_DIRECTOR = "clinical_director"
    AUDITOR = "auditor"
    SYSTEM = "system"


class Actor(BaseModel):
    """The person (or the system's timers) behind a command and the events it produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: Ref
    role: Role


SYSTEM_ACTOR = Actor(user_id="carepath-timers", role=Role.SYSTEM)
