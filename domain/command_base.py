"""The base every command shares: actor, command id (the idempotency key) and reason."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.actors import Actor


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
