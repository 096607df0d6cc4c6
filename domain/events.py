"""Events: what happened to an episode, in the past tense.

Events are frozen, carry a `type` tag and a `schema_version`, and live in one
discriminated union read through one module-level `TypeAdapter`. A tag is never
renamed; a field is added with a default, or an upcaster lifts old payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from domain.event_types import (
    AftercarePlanRecorded,
    AssessmentRecorded,
    ClientAdmitted,
    ClientReferred,
    ClientReferredOut,
    ClientSteppedDown,
    ClientSteppedUp,
    EpisodeDischarged,
    EpisodePutOnHold,
    EpisodeResumed,
    EventBase,
    LevelOfCareOverridden,
    PhaseAdvanced,
    PlanReviewCompleted,
    RelapsePreventionPlanRecorded,
    ScreeningRecorded,
    ScreeningStarted,
    TreatmentPlanRecorded,
)
from domain.event_types_care import (
    AttendanceCorrected,
    AttendanceRecorded,
    AuthorizationExpiring,
    AuthorizationRecorded,
    CheckInCompleted,
    CheckInMissed,
    ClientReadmitted,
    ConsentRecorded,
    ConsentRevoked,
    EscalationRaised,
    EscalationTaskOverdue,
    EscalationTaskSuperseded,
    HoldReviewOverdue,
    InitialPlanOverdue,
    PartyNotified,
    PhaseReviewDue,
    PlanReviewDueSoon,
    PlanReviewOverdue,
    RelapseReported,
    SessionBeyondAuthorization,
    SessionCancelled,
    SessionRescheduled,
    SessionScheduled,
    TaskResolved,
    WeeklyAttendanceChecked,
)
from domain.event_types_programs import ProgramMigrated

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "UPCASTERS",
    "AftercarePlanRecorded",
    "AssessmentRecorded",
    "AttendanceCorrected",
    "AttendanceRecorded",
    "AuthorizationExpiring",
    "AuthorizationRecorded",
    "CheckInCompleted",
    "CheckInMissed",
    "ClientAdmitted",
    "ClientReadmitted",
    "ClientReferred",
    "ClientReferredOut",
    "ClientSteppedDown",
    "ClientSteppedUp",
    "ConsentRecorded",
    "ConsentRevoked",
    "EpisodeDischarged",
    "EpisodePutOnHold",
    "EpisodeResumed",
    "EscalationRaised",
    "EscalationTaskOverdue",
    "EscalationTaskSuperseded",
    "Event",
    "EventBase",
    "HoldReviewOverdue",
    "InitialPlanOverdue",
    "LevelOfCareOverridden",
    "PartyNotified",
    "PhaseAdvanced",
    "PhaseReviewDue",
    "PlanReviewCompleted",
    "PlanReviewDueSoon",
    "PlanReviewOverdue",
    "ProgramMigrated",
    "RelapsePreventionPlanRecorded",
    "RelapseReported",
    "ScreeningRecorded",
    "ScreeningStarted",
    "SessionBeyondAuthorization",
    "SessionCancelled",
    "SessionRescheduled",
    "SessionScheduled",
    "TaskResolved",
    "TreatmentPlanRecorded",
    "Upcaster",
    "WeeklyAttendanceChecked",
    "current_schema_version",
    "dump_event",
    "load_event",
    "load_event_json",
]

Event = Annotated[
    ClientReferred
    | ScreeningStarted
    | ScreeningRecorded
    | ClientReferredOut
    | AssessmentRecorded
    | LevelOfCareOverridden
    | ClientAdmitted
    | TreatmentPlanRecorded
    | PhaseAdvanced
    | PlanReviewCompleted
    | EpisodePutOnHold
    | EpisodeResumed
    | ClientSteppedUp
    | RelapsePreventionPlanRecorded
    | AftercarePlanRecorded
    | ClientSteppedDown
    | EpisodeDischarged
    | SessionScheduled
    | SessionRescheduled
    | SessionCancelled
    | AttendanceRecorded
    | AttendanceCorrected
    | SessionBeyondAuthorization
    | WeeklyAttendanceChecked
    | EscalationRaised
    | EscalationTaskOverdue
    | EscalationTaskSuperseded
    | TaskResolved
    | InitialPlanOverdue
    | PlanReviewDueSoon
    | PlanReviewOverdue
    | HoldReviewOverdue
    | CheckInCompleted
    | CheckInMissed
    | RelapseReported
    | ClientReadmitted
    | ConsentRecorded
    | ConsentRevoked
    | PartyNotified
    | AuthorizationRecorded
    | AuthorizationExpiring
    | PhaseReviewDue
    | ProgramMigrated,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: tuple[type[EventBase], ...] = tuple(cls for cls in EventBase.__subclasses__())

# Upcasters lift a stored payload of an older schema version to the current one.
# Keyed by (type, from_version); each returns the payload at from_version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def current_schema_version(event_type: str) -> int:
    """The schema version new events of this type are written with."""
    version = 1
    while (event_type, version) in UPCASTERS:
        version += 1
    return version


def load_event(payload: Mapping[str, Any]) -> Event:
    """Validate a stored event payload, upcasting it first if it predates the current schema."""
    data = dict(payload)
    event_type = str(data.get("type", ""))
    version = int(data.get("schema_version", 1))
    while (event_type, version) in UPCASTERS:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
        data["schema_version"] = version
    return EVENT_ADAPTER.validate_python(data)


def load_event_json(text: str | bytes) -> Event:
    """`load_event` of a payload still in its stored JSON text.

    Parsed and validated in one pass when no upcaster is registered (3.9 against 1.9 µs
    an event, the largest share of folding a stored stream); otherwise decoded first, so
    that an older payload is lifted before it is validated."""
    if UPCASTERS:
        return load_event(json.loads(text))
    return EVENT_ADAPTER.validate_json(text)


def dump_event(event: Event) -> dict[str, Any]:
    """The JSON-compatible form of an event, as stored and sent over the wire."""
    payload: dict[str, Any] = EVENT_ADAPTER.dump_python(event, mode="json")
    return payload
