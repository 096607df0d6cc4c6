"""Commands: what a user asks CarePath to do, in the imperative.

Every command carries its actor, a command id (the idempotency key: the same id is
applied once) and an optional free-text reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carepath.domain.actors import Actor


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


Command = Annotated[ReferClient, Field(discriminator="type")]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
