"""Commands: what a user asks CarePath to do, in the imperative. Import them from here.

Every command carries its actor, a command id (the idempotency key: the same id is
applied once) and an optional free-text reason. All commands form one discriminated
union, `Command`, read through `COMMAND_ADAPTER`. The union is not written out: it is
every command a rule was registered for (`domain.rules`), in registration order, so a
new command joins it by having a rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias, Union

from pydantic import Field, TypeAdapter

from domain.command_base import CommandBase, Endpoint, ReferralSource
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
from domain.commands_intake import (
    AdmitClient,
    OverrideLevelOfCare,
    RecordAssessment,
    RecordScreening,
    ReferClient,
    ReferOut,
    StartScreening,
)
from domain.commands_plan import (
    AdvancePhase,
    CompletePlanReview,
    Discharge,
    PlaceOnHold,
    RecordAftercarePlan,
    RecordRelapsePreventionPlan,
    RecordTreatmentPlan,
    ResumeFromHold,
    StepDown,
    StepUp,
)
from domain.commands_programs import MigrateProgram

# isort: split
# The decider imports every rule module, and each rule registers its command as its module
# loads: after this import the registry is complete. It comes after the classes above so
# that a module loaded on the way may still import one of them from here.
from domain import decider  # noqa: F401
from domain.rules import registered

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
    "Endpoint",
    "MigrateProgram",
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

if TYPE_CHECKING:
    # Type checkers see the base class: every command has its fields and a `type` tag.
    Command: TypeAlias = CommandBase
else:
    Command = Annotated[
        Union[tuple(entry.command for entry in registered())],  # noqa: UP007 - built at run time
        Field(discriminator="type"),
    ]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
