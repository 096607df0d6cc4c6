"""The access log as FHIR R4B AuditEvents, in a collection Bundle.

One AuditEvent per access record: a RESTful operation (type `rest`) whose subtype is the
FHIR interaction (read, search-type, create, update, operation), the user as the
requesting agent with their CarePath role, the episode as the entity, and the outcome
(0 success, 4 refused or invalid, 8 server failure).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from store.access_log import AccessRecord

_AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
USER_SYSTEM = "urn:carepath:user"
EPISODE_SYSTEM = "urn:carepath:episode"

_ACTION_CODE = {"read": "R", "create": "C", "update": "U", "export": "E"}
_OUTCOME_CODE = {
    "success": "0",
    "denied": "4",
    "unauthenticated": "4",
    "not_found": "4",
    "invalid": "4",
    "conflict": "4",
    "error": "8",
}


def _interaction(record: AccessRecord) -> str:
    if record.action == "create":
        return "create"
    if record.action == "update":
        return "update"
    if record.action == "export":
        return "operation"
    return "read" if record.episode_id else "search-type"


def _instant(moment: datetime | None) -> str:
    # Access times come from a timestamptz column, so they carry their offset.
    return (moment or datetime.now(UTC)).isoformat()


def audit_event(record: AccessRecord) -> dict[str, Any]:
    """One access record as an R4B AuditEvent (JSON form)."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _PARTICIPATION, "code": "humanuser"}]},
        "role": [{"text": record.role}],
        "who": {"identifier": {"system": USER_SYSTEM, "value": record.user_id}},
        "requestor": True,
    }
    if record.client_ip:
        agent["network"] = {"address": record.client_ip, "type": "2"}
    entity: dict[str, Any] = {
        "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": f"{record.method} {record.resource}",
    }
    if record.episode_id:
        entity["what"] = {
            "type": "EpisodeOfCare",
            "identifier": {"system": EPISODE_SYSTEM, "value": record.episode_id},
        }
    if record.command_id:
        entity["detail"] = [{"type": "command_id", "valueString": record.command_id}]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": _AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": _INTERACTION, "code": _interaction(record)}],
        "action": _ACTION_CODE[record.action],
        "recorded": _instant(record.at),
        "outcome": _OUTCOME_CODE[record.outcome],
        "outcomeDesc": f"{record.outcome} (HTTP {record.status})",
        "agent": [agent],
        "source": {
            "site": "CarePath API",
            "observer": {"display": "CarePath API"},
            "type": [{"system": _SOURCE_TYPE, "code": "3", "display": "Web Server"}],
        },
        "entity": [entity],
    }
    if record.id is not None:
        event["id"] = f"access-{record.id}"
    return event


def audit_bundle(records: list[AccessRecord], exported_at: datetime) -> dict[str, Any]:
    """The records as a FHIR R4B `collection` Bundle of AuditEvents."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _instant(exported_at),
        "entry": [{"resource": audit_event(record)} for record in records],
    }
