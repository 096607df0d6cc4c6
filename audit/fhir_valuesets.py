"""The FHIR R4B value sets the export's coded fields must come from, and a check of a bundle.

Written out as constants (from the R4B specification) so the check does not depend on a
terminology server: every status, intent, priority, action and role in an exported
bundle must be a code of its required value set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

BUNDLE_TYPE = frozenset(
    {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    }
)
# http://hl7.org/fhir/ValueSet/episode-of-care-status
EPISODE_OF_CARE_STATUS = frozenset(
    {"planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error"}
)
# http://hl7.org/fhir/ValueSet/request-status (CarePlan.status)
REQUEST_STATUS = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
# http://hl7.org/fhir/ValueSet/care-plan-intent
CARE_PLAN_INTENT = frozenset({"proposal", "plan", "order", "option", "directive"})
# http://hl7.org/fhir/ValueSet/appointmentstatus
APPOINTMENT_STATUS = frozenset(
    {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    }
)
# http://hl7.org/fhir/ValueSet/participationstatus
PARTICIPATION_STATUS = frozenset({"accepted", "declined", "tentative", "needs-action"})
# http://hl7.org/fhir/ValueSet/task-status
TASK_STATUS = frozenset(
    {
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)
# http://hl7.org/fhir/ValueSet/task-intent
TASK_INTENT = frozenset(
    {
        "unknown",
        "proposal",
        "plan",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
# http://hl7.org/fhir/ValueSet/request-priority
REQUEST_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
# http://hl7.org/fhir/ValueSet/observation-status
OBSERVATION_STATUS = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
# http://hl7.org/fhir/ValueSet/provenance-entity-role
PROVENANCE_ENTITY_ROLE = frozenset({"derivation", "revision", "quotation", "source", "removal"})
# http://hl7.org/fhir/ValueSet/audit-event-action and audit-event-outcome
AUDIT_EVENT_ACTION = frozenset({"C", "R", "U", "D", "E"})
AUDIT_EVENT_OUTCOME = frozenset({"0", "4", "8", "12"})

# The v3 ObservationInterpretation codes the weekly-hours observation uses.
OBSERVATION_INTERPRETATION = frozenset({"L", "N"})
FLAG_STATUS = frozenset({"active", "inactive", "entered-in-error"})

# resourceType -> (dotted path to a code, allowed codes); a path step over a list visits each item.
CODED_FIELDS: Mapping[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "Bundle": (("type", BUNDLE_TYPE),),
    "EpisodeOfCare": (
        ("status", EPISODE_OF_CARE_STATUS),
        ("statusHistory.status", EPISODE_OF_CARE_STATUS),
    ),
    "CarePlan": (("status", REQUEST_STATUS), ("intent", CARE_PLAN_INTENT)),
    "Appointment": (
        ("status", APPOINTMENT_STATUS),
        ("participant.status", PARTICIPATION_STATUS),
    ),
    "Task": (
        ("status", TASK_STATUS),
        ("intent", TASK_INTENT),
        ("priority", REQUEST_PRIORITY),
    ),
    "Observation": (
        ("status", OBSERVATION_STATUS),
        ("interpretation.coding.code", OBSERVATION_INTERPRETATION),
    ),
    "Flag": (("status", FLAG_STATUS),),
    "Provenance": (("entity.role", PROVENANCE_ENTITY_ROLE),),
    "AuditEvent": (("action", AUDIT_EVENT_ACTION), ("outcome", AUDIT_EVENT_OUTCOME)),
}


def _values(node: Any, steps: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, steps)
        return
    if not steps:
        yield node
        return
    if isinstance(node, Mapping) and steps[0] in node:
        yield from _values(node[steps[0]], steps[1:])


def code_problems(bundle: Mapping[str, Any]) -> list[str]:
    """Every coded field of the bundle and its resources that is not in its value set."""
    resources = [bundle, *(entry["resource"] for entry in bundle.get("entry", ()))]
    problems: list[str] = []
    for resource in resources:
        kind = resource.get("resourceType", "?")
        for path, allowed in CODED_FIELDS.get(kind, ()):
            for value in _values(resource, path.split(".")):
                if value not in allowed:
                    problems.append(f"{kind}/{resource.get('id')}: {path} {value!r} not allowed")
    return problems
