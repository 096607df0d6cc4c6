"""Commands: what a user asks CarePath to do, in the imperative.

Every command carries its actor, a command id (the idempotency key: the same id is
applied once) and an optional free-text reason. All commands form one discriminated
union, `Command`, read through `COMMAND_ADAPTER`; import them from here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from domain.command_base import CommandBase, ReferralSource
from domain.commands_care import (
    CancelSession,
    CorrectAttendance,
    NotifyParty,
    ReadmitClient,
    RecordAttendance,
    RecordAuthorization,
    RecordCheckIn,
    RecordConsent,
    ReportRelapse,
    RescheduleSession,
    ResolveTask,
    RevokeConsent,
    ScheduleSession,
    Tick,
)
from domain.commands_pathway import (
    AdmitClient,
    AdvancePhase,
    CompletePlanReview,
    Discharge,
    OverrideLevelOfCare,
    PlaceOnHold,
    RecordAftercarePlan,
    RecordAssessment,
    RecordRelapsePreventionPlan,
    RecordScreening,
    RecordTreatmentPlan,
    ReferClient,
    ReferOut,
    ResumeFromHold,
    StartScreening,
    StepDown,
    StepUp,
)

__all__ = [
    "COMMAND_ADAPTER",
    "AdmitClient",
    "AdvancePhase",
    "CancelSession",
    "Command",
    "CommandBase",
    "CompletePlanReview",
    "CorrectAttendance",
    "Discharge",
    "NotifyParty",
    "OverrideLevelOfCare",
    "PlaceOnHold",
    "ReadmitClient",
    "RecordAftercarePlan",
    "RecordAssessment",
    "RecordAttendance",
    "RecordAuthorization",
    "RecordCheckIn",
    "RecordConsent",
    "RecordRelapsePreventionPlan",
    "RecordScreening",
    "RecordTreatmentPlan",
    "ReferClient",
    "ReferOut",
    "ReferralSource",
    "ReportRelapse",
    "RescheduleSession",
    "ResolveTask",
    "ResumeFromHold",
    "RevokeConsent",
    "ScheduleSession",
    "StartScreening",
    "StepDown",
    "StepUp",
    "Tick",
]

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
