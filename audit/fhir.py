"""The FHIR R4B form of an episode's record: a `collection` Bundle built from its stored events.

- EpisodeOfCare: status mapped from the stage (`episode_of_care_status`), statusHistory
  from every change of it;
- CarePlan: the treatment plan, one activity per session (a reference to its Appointment);
- Appointment per session: booked, fulfilled (attended or partial), noshow, cancelled
  (cancelled, or an excused absence, with that reason);
- Task per escalation: requested while open, failed once overdue, completed when resolved,
  cancelled if the episode closed with it open or a task one rung up superseded it;
- Observation for the assessment (once recorded): one component per ASAM dimension with
  the rating as its value, and the recommended level of care as the value, both coded
  and named in the edition the assessment records (`domain.asam`);
- Observation per judged week of attendance (episodes under the current rules): the hours
  attended, the program's weekly minimum as reference range, interpretation L (below)
  or N, the week as effective period and its local days in a note;
- Flag "below program intensity", active while the episode is open and its latest judged
  week fell below the minimum (current rules);
- Provenance: every resource above as target, one agent per actor who changed the record,
  each stored event as a source entity carrying its hash, and the chain's head as signature;
- AuditEvent: the export itself (who exported, when, which episode).

Resource ids are name-based UUIDs of the episode and the item, so exporting the same
record twice gives the same ids. Pure: the caller passes the export time and exporter.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain import asam
from domain.actors import Actor, Role
from domain.evolution import evolve_event
from domain.state import AttendanceWeek, EpisodeState, Session, Stage, Task
from domain.vocabulary import AsamEdition, AttendanceStatus, LevelOfCare
from domain.weeks import last_local_day, latest_judged, local_day
from store.chain import GENESIS_HASH
from store.records import StoredEvent

# Identifier systems for CarePath's own ids (URNs: no resolvable host is implied).
CLIENT_SYSTEM = "urn:carepath:client-ref"
USER_SYSTEM = "urn:carepath:user"
EPISODE_SYSTEM = "urn:carepath:episode"
SESSION_SYSTEM = "urn:carepath:session"
TASK_SYSTEM = "urn:carepath:task"
EVENT_SYSTEM = "urn:carepath:event"
PROGRAM_SYSTEM = "urn:carepath:program"
ASAM_SYSTEM = "urn:carepath:asam"
WEEK_SYSTEM = "urn:carepath:attendance-week"
CODE_SYSTEM = "urn:carepath:code"
UCUM = "http://unitsofmeasure.org"
_INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_ID_NAMESPACE = uuid.UUID("6f1c1b9e-52a4-4c55-9a8e-3c0f0e1a7d21")

# EpisodeOfCare.status of each stage; aftercare is the program's choice (`episode_of_care_status`).
_EPISODE_OF_CARE_STATUS = {
    Stage.REFERRED: "planned",
    Stage.SCREENING: "planned",
    Stage.ASSESSMENT: "planned",
    Stage.TREATMENT_PLANNING: "active",
    Stage.IN_PROGRAM: "active",
    Stage.ON_HOLD: "onhold",
    Stage.REFERRED_OUT: "cancelled",
    Stage.DISCHARGED: "finished",
}
_CLOSED_CAREPLAN = {Stage.REFERRED_OUT: "revoked", Stage.DISCHARGED: "completed"}
_PRIORITY = {1: "routine", 2: "urgent", 3: "asap"}


def _uuid(episode_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join((episode_id, *parts))))


def _url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _at(moment: datetime) -> str:
    return moment.isoformat()


def _patient(state: EpisodeState) -> dict[str, Any]:
    return {"type": "Patient", "identifier": {"system": CLIENT_SYSTEM, "value": state.client_ref}}


def _person(user_id: str, role: str) -> dict[str, Any]:
    kind = "Device" if role == Role.SYSTEM.value else "Practitioner"
    return {
        "type": kind,
        "identifier": {"system": USER_SYSTEM, "value": user_id},
        "display": f"{user_id} ({role})",
    }


def episode_of_care_status(state: EpisodeState, aftercare_status: str = "active") -> str:
    """EpisodeOfCare.status of the episode's stage; the program says whether aftercare is
    an active or a finished episode of care."""
    if state.stage is Stage.AFTERCARE:
        return aftercare_status
    return _EPISODE_OF_CARE_STATUS[state.stage]


def status_history(
    stored: Sequence[StoredEvent], aftercare_status: str
) -> list[tuple[str, datetime, datetime | None]]:
    """(FHIR status, from, until) for each stretch of the episode, from its events."""
    periods: list[tuple[str, datetime, datetime | None]] = []
    state: EpisodeState | None = None
    for stored_event in stored:
        state = evolve_event(state, stored_event.event)
        status = episode_of_care_status(state, aftercare_status)
        if periods and periods[-1][0] == status:
            continue
        if periods:
            last_status, started, _ = periods[-1]
            periods[-1] = (last_status, started, stored_event.occurred_at)
        periods.append((status, stored_event.occurred_at, None))
    return periods


def episode_of_care(
    state: EpisodeState, stored: Sequence[StoredEvent], aftercare_status: str
) -> dict[str, Any]:
    history = status_history(stored, aftercare_status)
    period: dict[str, str] = {"start": _at(state.referred_at)}
    if state.is_closed:
        period["end"] = _at(stored[-1].occurred_at)
    resource: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": _uuid(state.episode_id, "episode"),
        "identifier": [{"system": EPISODE_SYSTEM, "value": state.episode_id}],
        "status": episode_of_care_status(state, aftercare_status),
        "statusHistory": [
            {
                "status": status,
                "period": {"start": _at(start)} | ({"end": _at(end)} if end else {}),
            }
            for status, start, end in history
        ],
        "type": [{"coding": [{"system": PROGRAM_SYSTEM, "code": state.program_id}], "text": "IOP"}],
        "patient": _patient(state),
        "period": period,
    }
    if state.primary_clinician:
        resource["careManager"] = _person(state.primary_clinician, Role.CLINICIAN.value)
    return resource


def care_plan_status(state: EpisodeState) -> str:
    """request-status of the IOP treatment plan: it completes at step-down or discharge."""
    if state.plan is None:
        return _CLOSED_CAREPLAN.get(state.stage, "draft")
    if state.stage is Stage.ON_HOLD:
        return "on-hold"
    if state.stage is Stage.AFTERCARE:
        return "completed"
    return _CLOSED_CAREPLAN.get(state.stage, "active")


def care_plan(state: EpisodeState, stored: Sequence[StoredEvent]) -> dict[str, Any]:
    plan_events = [e for e in stored if e.event_type == "treatment_plan_recorded"]
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": _uuid(state.episode_id, "careplan"),
        "status": care_plan_status(state),
        "intent": "plan",
        "title": f"IOP treatment plan, revision {state.plan_revision}",
        "subject": _patient(state),
        "activity": [
            {"reference": {"reference": _url(_uuid(state.episode_id, "session", s.session_id))}}
            for s in state.sessions
        ],
    }
    if plan_events:
        resource["created"] = _at(plan_events[0].occurred_at)
    if state.plan is not None:
        resource["author"] = _person(state.plan.primary_clinician, Role.CLINICIAN.value)
        resource["description"] = "; ".join(
            f"{goal.area.value}: {goal.description}" for goal in state.plan.goals
        )
    if state.admitted_at is not None:
        resource["period"] = {"start": _at(state.admitted_at)}
    return resource


def appointment_status(session: Session) -> str:
    if session.cancelled or session.status is AttendanceStatus.EXCUSED:
        return "cancelled"
    if session.status is None:
        return "booked"
    if session.status is AttendanceStatus.NO_SHOW:
        return "noshow"
    return "fulfilled"


def appointment(state: EpisodeState, session: Session) -> dict[str, Any]:
    status = appointment_status(session)
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": _uuid(state.episode_id, "session", session.session_id),
        "identifier": [
            {"system": SESSION_SYSTEM, "value": f"{state.episode_id}/{session.session_id}"}
        ],
        "status": status,
        "appointmentType": {"text": session.kind.value},
        "description": f"IOP {session.kind.value.replace('_', ' ')} session",
        "start": _at(session.starts_at),
        "end": _at(session.ends_at),
        "minutesDuration": max(1, round(session.hours * 60)),
        "supportingInformation": [{"reference": _url(_uuid(state.episode_id, "careplan"))}],
        "participant": [
            {
                "actor": _patient(state),
                "required": "required",
                "status": "declined" if status == "cancelled" else "accepted",
            }
        ],
    }
    if session.status is AttendanceStatus.EXCUSED:
        resource["cancelationReason"] = {"text": "excused absence"}
    if session.status in (AttendanceStatus.ATTENDED, AttendanceStatus.PARTIAL):
        resource["comment"] = f"attended {session.attended_hours:g} of {session.hours:g} hours"
    return resource


def task_status(state: EpisodeState, task: Task) -> str:
    if task.resolved:
        return "completed"
    if state.is_closed or task.superseded_by is not None:
        return "cancelled"
    return "failed" if task.overdue else "requested"


def _business_status(item: Task) -> str:
    if item.resolved:
        return "resolved"
    if item.superseded_by is not None:
        return f"superseded by {item.superseded_by}"
    return "overdue" if item.overdue else "open"


def task(state: EpisodeState, item: Task) -> dict[str, Any]:
    business = _business_status(item)
    return {
        "resourceType": "Task",
        "id": _uuid(state.episode_id, "task", item.task_id),
        "identifier": [{"system": TASK_SYSTEM, "value": f"{state.episode_id}/{item.task_id}"}],
        "status": task_status(state, item),
        "businessStatus": {"text": business},
        "intent": "order",
        "priority": _PRIORITY.get(item.level, "stat"),
        "code": {"text": item.kind.value},
        "description": f"level {item.level} escalation: {item.kind.value.replace('_', ' ')}",
        "focus": {"reference": _url(_uuid(state.episode_id, "episode"))},
        "for": _patient(state),
        "authoredOn": _at(item.opened_at),
        "restriction": {"period": {"end": _at(item.due_at)}},
        "note": [{"text": "notify: " + ", ".join(r.value for r in item.notify)}],
    }


def asam_dimension_system(edition: AsamEdition) -> str:
    """The code system of `edition`'s dimensions (codes "1" to "6")."""
    return f"{ASAM_SYSTEM}:{edition.value}:dimension"


def asam_level_system(edition: AsamEdition) -> str:
    """The code system of `edition`'s levels of care (codes are level numbers, "2.1", "1-WM")."""
    return f"{ASAM_SYSTEM}:{edition.value}:level-of-care"


def level_of_care_concept(level: LevelOfCare, edition: AsamEdition) -> dict[str, Any]:
    """A level of care as a CodeableConcept: the edition's level number and name."""
    shown = asam.level_name(level, edition)
    return {
        "coding": [
            {"system": asam_level_system(edition), "code": shown.code, "display": shown.display}
        ],
        "text": shown.display,
    }


def assessment_observation(state: EpisodeState, stored: Sequence[StoredEvent]) -> dict[str, Any]:
    """The latest assessment: ratings per dimension and the recommended level of care."""
    assessment = state.assessment
    if assessment is None:  # pragma: no cover - bundle() exports it only once recorded
        raise ValueError("no assessment recorded")
    edition = assessment.asam_edition
    recorded = [e for e in stored if e.event_type == "assessment_recorded"]
    title = f"ASAM multidimensional assessment, {asam.EDITION_NAMES[edition]}"
    return {
        "resourceType": "Observation",
        "id": _uuid(state.episode_id, "assessment"),
        "status": "final",
        "code": {
            "coding": [{"system": ASAM_SYSTEM, "code": edition.value, "display": title}],
            "text": title,
        },
        "subject": _patient(state),
        "focus": [{"reference": _url(_uuid(state.episode_id, "episode"))}],
        "effectiveDateTime": _at(recorded[-1].occurred_at),
        "valueCodeableConcept": level_of_care_concept(assessment.recommended_level, edition),
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": asam_dimension_system(edition),
                            "code": str(r.dimension.number),
                            "display": r.dimension.name,
                        }
                    ],
                    "text": r.dimension.label,
                },
                "valueInteger": r.rating,
            }
            for r in asam.rated(edition, assessment.asam_ratings)
        ],
        "note": [{"text": "diagnoses (ICD-10-CM): " + ", ".join(assessment.diagnoses)}],
    }


def _hours(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "h", "system": UCUM, "code": "h"}


def _local_days(state: EpisodeState, week: AttendanceWeek) -> str:
    zone = state.rules.zone
    first, last = local_day(week.start, zone), last_local_day(week.end, zone)
    return f"{first.isoformat()}..{last.isoformat()} ({zone.key})"


def judged_weeks(state: EpisodeState) -> tuple[AttendanceWeek, ...]:
    """The weeks the export shows: those the weekly check judged, under the current rules
    (an export of an episode admitted before keeps its earlier form)."""
    if not state.rules.current:
        return ()
    return tuple(w for w in state.attendance_weeks if w.below_minimum is not None)


def intensity_observation(state: EpisodeState, week: AttendanceWeek) -> dict[str, Any]:
    """One judged week: hours attended against the program's weekly minimum."""
    below = bool(week.below_minimum)
    minimum = week.minimum_hours or 0.0
    return {
        "resourceType": "Observation",
        "id": _uuid(state.episode_id, "week", _at(week.start)),
        "identifier": [{"system": WEEK_SYSTEM, "value": f"{state.episode_id}/{_at(week.start)}"}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "therapy",
                        "display": "Therapy",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": CODE_SYSTEM,
                    "code": "weekly-attended-hours",
                    "display": "Treatment hours attended in a week of the program",
                }
            ],
            "text": "weekly attended treatment hours",
        },
        "subject": _patient(state),
        "focus": [{"reference": _url(_uuid(state.episode_id, "episode"))}],
        "effectivePeriod": {"start": _at(week.start), "end": _at(week.end)},
        "valueQuantity": _hours(week.attended_hours or 0.0),
        "interpretation": [
            {
                "coding": [
                    {
                        "system": _INTERPRETATION_SYSTEM,
                        "code": "L" if below else "N",
                        "display": "Low" if below else "Normal",
                    }
                ]
            }
        ],
        "referenceRange": [
            {"low": _hours(minimum), "text": f"program minimum: {minimum:g} hours a week"}
        ],
        "note": [{"text": f"local week {_local_days(state, week)}"}],
    }


def intensity_flag(state: EpisodeState) -> dict[str, Any] | None:
    """A Flag while the open episode's latest judged week fell below the minimum."""
    latest = latest_judged(state) if state.rules.current and not state.is_closed else None
    if latest is None or not latest.below_minimum:
        return None
    return {
        "resourceType": "Flag",
        "id": _uuid(state.episode_id, "flag", "below-intensity"),
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                        "display": "Clinical",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": CODE_SYSTEM,
                    "code": "below-intensity",
                    "display": "Below the program's weekly treatment intensity",
                }
            ],
            "text": (
                f"attended {latest.attended_hours or 0:g} of a minimum "
                f"{latest.minimum_hours or 0:g} hours in the week {_local_days(state, latest)}"
            ),
        },
        "subject": _patient(state),
        "period": {"start": _at(latest.end)},
    }


def provenance(
    state: EpisodeState, stored: Sequence[StoredEvent], targets: list[str], exported_at: datetime
) -> dict[str, Any]:
    actors = dict.fromkeys((e.actor_id, e.actor_role) for e in stored)
    head = stored[-1]
    chain = {
        "algorithm": "sha256(prev_hash || canonical_json(payload)), hex",
        "genesis": GENESIS_HASH,
        "head_seq": head.seq,
        "head_hash": head.hash,
    }
    return {
        "resourceType": "Provenance",
        "id": _uuid(state.episode_id, "provenance"),
        "target": [{"reference": url} for url in targets],
        "occurredPeriod": {"start": _at(stored[0].occurred_at), "end": _at(head.occurred_at)},
        "recorded": _at(head.recorded_at),
        "agent": [
            {"type": {"text": "author"}, "role": [{"text": role}], "who": _person(user, role)}
            for user, role in actors
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": EVENT_SYSTEM, "value": f"{e.episode_id}/{e.seq}"},
                    "display": f"seq {e.seq} {e.event_type} prev {e.prev_hash} sha256 {e.hash}",
                },
            }
            for e in stored
        ],
        "signature": [
            {
                "type": [
                    {
                        "system": "urn:iso-astm:E1762-95:2013",
                        "code": "1.2.840.10065.1.12.1.5",
                        "display": "Verification Signature",
                    }
                ],
                "when": _at(exported_at),
                "who": _person("carepath", Role.SYSTEM.value),
                "sigFormat": "application/json",
                "data": base64.b64encode(json.dumps(chain, sort_keys=True).encode()).decode(),
            }
        ],
    }


def audit_event(
    state: EpisodeState, stored: Sequence[StoredEvent], exporter: Actor, exported_at: datetime
) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": _uuid(state.episode_id, "export", exported_at.isoformat()),
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110106",
            "display": "Export",
        },
        "action": "R",
        "recorded": _at(exported_at),
        "outcome": "0",
        "agent": [
            {"who": _person(exporter.user_id, exporter.role.value), "requestor": True},
        ],
        "source": {"observer": {"display": "CarePath"}},
        "entity": [
            {
                "what": {"reference": _url(_uuid(state.episode_id, "episode"))},
                "description": (
                    f"export of episode {state.episode_id}: {len(stored)} events, "
                    f"head seq {stored[-1].seq} sha256 {stored[-1].hash}"
                ),
            }
        ],
    }


def bundle(
    stored: Sequence[StoredEvent],
    state: EpisodeState,
    *,
    exporter: Actor,
    exported_at: datetime,
    aftercare_status: str = "active",
) -> dict[str, Any]:
    """The whole record as one R4B `collection` Bundle (a JSON-ready dict)."""
    resources = [
        episode_of_care(state, stored, aftercare_status),
        care_plan(state, stored),
        *(appointment(state, s) for s in state.sessions),
        *(task(state, t) for t in state.tasks),
        *(intensity_observation(state, w) for w in judged_weeks(state)),
        *((flag,) if (flag := intensity_flag(state)) is not None else ()),
    ]
    if state.assessment is not None:
        resources.append(assessment_observation(state, stored))
    targets = [_url(r["id"]) for r in resources]
    resources.append(provenance(state, stored, targets, exported_at))
    resources.append(audit_event(state, stored, exporter, exported_at))
    return {
        "resourceType": "Bundle",
        "id": _uuid(state.episode_id, "bundle", exported_at.isoformat()),
        "type": "collection",
        "timestamp": _at(exported_at),
        "entry": [{"fullUrl": _url(r["id"]), "resource": r} for r in resources],
    }
