"""The FHIR R4B form of an episode's record: a `collection` Bundle built from its stored events.

- Patient: the client, an identifier only (`client_ref` in the configured identifier
  system, CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM); every resource about the client
  references it (`urn:uuid:` of its entry) and also names it by that identifier;
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

Every resource is built as an R4B model of `fhir.resources` (so a field that R4B does not
know, or a value of the wrong type, fails here and not at the receiver); `as_json` gives
the JSON form, times written as the record holds them. Resource ids are name-based UUIDs
of the episode and the item (the Patient's: of its identifier, the same for every
episode of the client), so exporting the same record twice gives the same ids. Pure: the
caller passes the export time and exporter.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.appointment import Appointment, AppointmentParticipant
from fhir.resources.R4B.auditevent import (
    AuditEvent,
    AuditEventAgent,
    AuditEventEntity,
    AuditEventSource,
)
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.careplan import CarePlan, CarePlanActivity
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.episodeofcare import EpisodeOfCare, EpisodeOfCareStatusHistory
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.observation import (
    Observation,
    ObservationComponent,
    ObservationReferenceRange,
)
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent, ProvenanceEntity
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.signature import Signature
from fhir.resources.R4B.task import Task as FhirTask
from fhir.resources.R4B.task import TaskRestriction

from domain import asam
from domain.actors import Actor, Role
from domain.evolution import evolve_event
from domain.state import AttendanceWeek, EpisodeState, Session, Stage, Task
from domain.vocabulary import AsamEdition, AttendanceStatus, LevelOfCare
from domain.weeks import last_local_day, latest_judged, local_day
from store.chain import GENESIS_HASH
from store.records import StoredEvent

# Identifier systems for CarePath's own ids (URNs: no resolvable host is implied).
# The client's is the default of CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM: a receiving EHR
# that knows `client_ref` under its own system (an MRN's) configures that one instead.
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


def episode_of_care_id(episode_id: str) -> str:
    """The EpisodeOfCare's id of an episode."""
    return _uuid(episode_id, "episode")


def care_plan_id(episode_id: str) -> str:
    """The CarePlan's id of an episode."""
    return _uuid(episode_id, "careplan")


def _url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _at(moment: datetime) -> str:
    return moment.isoformat()


def _json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()  # the record's own offset, as the export always wrote it
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and "." not in str(value)
            else float(value)
        )
    if isinstance(value, bytes):
        return value.decode("ascii")  # base64Binary: the model keeps the encoded text
    return value


def as_json(resource: Resource) -> dict[str, Any]:
    """A resource's JSON form (the model's dict): the fields that are set, times with the
    offset they were recorded with."""
    document: dict[str, Any] = _json_value(resource.model_dump(mode="python", exclude_none=True))
    return document


def _concept(text: str) -> CodeableConcept:
    return CodeableConcept(text=text)


def _coded(system: str, code: str, display: str | None = None) -> Coding:
    return Coding(system=system, code=code, display=display)


def patient_id(client_ref: str, system: str = CLIENT_SYSTEM) -> str:
    """The Patient's id: the same for every episode of the client (name-based on the identifier)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"patient|{system}|{client_ref}"))


def patient(state: EpisodeState, system: str = CLIENT_SYSTEM) -> Patient:
    """The client, as little as a receiver needs to match them: the identifier only."""
    return Patient(
        id=patient_id(state.client_ref, system),
        identifier=[Identifier(system=system, value=state.client_ref)],
    )


def _patient(state: EpisodeState, system: str) -> Reference:
    return Reference(
        reference=_url(patient_id(state.client_ref, system)),
        type="Patient",
        identifier=Identifier(system=system, value=state.client_ref),
    )


def _person(user_id: str, role: str) -> Reference:
    kind = "Device" if role == Role.SYSTEM.value else "Practitioner"
    return Reference(
        type=kind,
        identifier=Identifier(system=USER_SYSTEM, value=user_id),
        display=f"{user_id} ({role})",
    )


def _ref(url: str) -> Reference:
    return Reference(reference=url)


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
    state: EpisodeState,
    stored: Sequence[StoredEvent],
    aftercare_status: str,
    patient_system: str = CLIENT_SYSTEM,
) -> EpisodeOfCare:
    history = status_history(stored, aftercare_status)
    return EpisodeOfCare(
        id=_uuid(state.episode_id, "episode"),
        identifier=[Identifier(system=EPISODE_SYSTEM, value=state.episode_id)],
        status=episode_of_care_status(state, aftercare_status),
        statusHistory=[
            EpisodeOfCareStatusHistory(status=status, period=Period(start=start, end=end))
            for status, start, end in history
        ],
        type=[
            CodeableConcept(
                coding=[_coded(PROGRAM_SYSTEM, state.program_id)],
                text="IOP",
            )
        ],
        patient=_patient(state, patient_system),
        period=Period(
            start=state.referred_at,
            end=stored[-1].occurred_at if state.is_closed else None,
        ),
        careManager=(
            _person(state.primary_clinician, Role.CLINICIAN.value)
            if state.primary_clinician
            else None
        ),
    )


def care_plan_status(state: EpisodeState) -> str:
    """request-status of the IOP treatment plan: it completes at step-down or discharge."""
    if state.plan is None:
        return _CLOSED_CAREPLAN.get(state.stage, "draft")
    if state.stage is Stage.ON_HOLD:
        return "on-hold"
    if state.stage is Stage.AFTERCARE:
        return "completed"
    return _CLOSED_CAREPLAN.get(state.stage, "active")


def care_plan(
    state: EpisodeState, stored: Sequence[StoredEvent], patient_system: str = CLIENT_SYSTEM
) -> CarePlan:
    plan_events = [e for e in stored if e.event_type == "treatment_plan_recorded"]
    plan = state.plan
    return CarePlan(
        id=_uuid(state.episode_id, "careplan"),
        status=care_plan_status(state),
        intent="plan",
        title=f"IOP treatment plan, revision {state.plan_revision}",
        subject=_patient(state, patient_system),
        activity=[
            CarePlanActivity(reference=_ref(_url(_uuid(state.episode_id, "session", s.session_id))))
            for s in state.sessions
        ],
        created=plan_events[0].occurred_at if plan_events else None,
        author=_person(plan.primary_clinician, Role.CLINICIAN.value) if plan else None,
        description=(
            "; ".join(f"{goal.area.value}: {goal.description}" for goal in plan.goals)
            if plan
            else None
        ),
        period=Period(start=state.admitted_at) if state.admitted_at is not None else None,
    )


def appointment_status(session: Session) -> str:
    if session.cancelled or session.status is AttendanceStatus.EXCUSED:
        return "cancelled"
    if session.status is None:
        return "booked"
    if session.status is AttendanceStatus.NO_SHOW:
        return "noshow"
    return "fulfilled"


def appointment(
    state: EpisodeState, session: Session, patient_system: str = CLIENT_SYSTEM
) -> Appointment:
    status = appointment_status(session)
    attended = session.status in (AttendanceStatus.ATTENDED, AttendanceStatus.PARTIAL)
    return Appointment(
        id=_uuid(state.episode_id, "session", session.session_id),
        identifier=[
            Identifier(system=SESSION_SYSTEM, value=f"{state.episode_id}/{session.session_id}")
        ],
        status=status,
        cancelationReason=(
            _concept("excused absence") if session.status is AttendanceStatus.EXCUSED else None
        ),
        appointmentType=_concept(session.kind.value),
        description=f"IOP {session.kind.value.replace('_', ' ')} session",
        supportingInformation=[_ref(_url(_uuid(state.episode_id, "careplan")))],
        start=session.starts_at,
        end=session.ends_at,
        minutesDuration=max(1, round(session.hours * 60)),
        comment=(
            f"attended {session.attended_hours:g} of {session.hours:g} hours" if attended else None
        ),
        participant=[
            AppointmentParticipant(
                actor=_patient(state, patient_system),
                required="required",
                status="declined" if status == "cancelled" else "accepted",
            )
        ],
    )


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


def task(state: EpisodeState, item: Task, patient_system: str = CLIENT_SYSTEM) -> FhirTask:
    return FhirTask(
        id=_uuid(state.episode_id, "task", item.task_id),
        identifier=[Identifier(system=TASK_SYSTEM, value=f"{state.episode_id}/{item.task_id}")],
        status=task_status(state, item),
        businessStatus=_concept(_business_status(item)),
        intent="order",
        priority=_PRIORITY.get(item.level, "stat"),
        code=_concept(item.kind.value),
        description=f"level {item.level} escalation: {item.kind.value.replace('_', ' ')}",
        focus=_ref(_url(_uuid(state.episode_id, "episode"))),
        for_fhir=_patient(state, patient_system),
        authoredOn=item.opened_at,
        restriction=TaskRestriction(period=Period(end=item.due_at)),
        note=[Annotation(text="notify: " + ", ".join(r.value for r in item.notify))],
    )


def asam_dimension_system(edition: AsamEdition) -> str:
    """The code system of `edition`'s dimensions (codes "1" to "6")."""
    return f"{ASAM_SYSTEM}:{edition.value}:dimension"


def asam_level_system(edition: AsamEdition) -> str:
    """The code system of `edition`'s levels of care (codes are level numbers, "2.1", "1-WM")."""
    return f"{ASAM_SYSTEM}:{edition.value}:level-of-care"


def level_of_care_concept(level: LevelOfCare, edition: AsamEdition) -> CodeableConcept:
    """A level of care as a CodeableConcept: the edition's level number and name."""
    shown = asam.level_name(level, edition)
    return CodeableConcept(
        coding=[_coded(asam_level_system(edition), shown.code, shown.display)],
        text=shown.display,
    )


def assessment_observation(
    state: EpisodeState, stored: Sequence[StoredEvent], patient_system: str = CLIENT_SYSTEM
) -> Observation:
    """The latest assessment: ratings per dimension and the recommended level of care."""
    assessment = state.assessment
    if assessment is None:  # pragma: no cover - bundle() exports it only once recorded
        raise ValueError("no assessment recorded")
    edition = assessment.asam_edition
    recorded = [e for e in stored if e.event_type == "assessment_recorded"]
    title = f"ASAM multidimensional assessment, {asam.EDITION_NAMES[edition]}"
    return Observation(
        id=_uuid(state.episode_id, "assessment"),
        status="final",
        code=CodeableConcept(coding=[_coded(ASAM_SYSTEM, edition.value, title)], text=title),
        subject=_patient(state, patient_system),
        focus=[_ref(_url(_uuid(state.episode_id, "episode")))],
        effectiveDateTime=recorded[-1].occurred_at,
        valueCodeableConcept=level_of_care_concept(assessment.recommended_level, edition),
        note=[Annotation(text="diagnoses (ICD-10-CM): " + ", ".join(assessment.diagnoses))],
        component=[
            ObservationComponent(
                code=CodeableConcept(
                    coding=[
                        _coded(
                            asam_dimension_system(edition),
                            str(r.dimension.number),
                            r.dimension.name,
                        )
                    ],
                    text=r.dimension.label,
                ),
                valueInteger=r.rating,
            )
            for r in asam.rated(edition, assessment.asam_ratings)
        ],
    )


def _hours(value: float) -> Quantity:
    return Quantity(value=value, unit="h", system=UCUM, code="h")


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


def intensity_observation(
    state: EpisodeState, week: AttendanceWeek, patient_system: str = CLIENT_SYSTEM
) -> Observation:
    """One judged week: hours attended against the program's weekly minimum."""
    below = bool(week.below_minimum)
    minimum = week.minimum_hours or 0.0
    return Observation(
        id=_uuid(state.episode_id, "week", _at(week.start)),
        identifier=[Identifier(system=WEEK_SYSTEM, value=f"{state.episode_id}/{_at(week.start)}")],
        status="final",
        category=[
            CodeableConcept(
                coding=[
                    _coded(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "therapy",
                        "Therapy",
                    )
                ]
            )
        ],
        code=CodeableConcept(
            coding=[
                _coded(
                    CODE_SYSTEM,
                    "weekly-attended-hours",
                    "Treatment hours attended in a week of the program",
                )
            ],
            text="weekly attended treatment hours",
        ),
        subject=_patient(state, patient_system),
        focus=[_ref(_url(_uuid(state.episode_id, "episode")))],
        effectivePeriod=Period(start=week.start, end=week.end),
        valueQuantity=_hours(week.attended_hours or 0.0),
        interpretation=[
            CodeableConcept(
                coding=[
                    _coded(
                        _INTERPRETATION_SYSTEM,
                        "L" if below else "N",
                        "Low" if below else "Normal",
                    )
                ]
            )
        ],
        note=[Annotation(text=f"local week {_local_days(state, week)}")],
        referenceRange=[
            ObservationReferenceRange(
                low=_hours(minimum), text=f"program minimum: {minimum:g} hours a week"
            )
        ],
    )


def intensity_flag(state: EpisodeState, patient_system: str = CLIENT_SYSTEM) -> Flag | None:
    """A Flag while the open episode's latest judged week fell below the minimum."""
    latest = latest_judged(state) if state.rules.current and not state.is_closed else None
    if latest is None or not latest.below_minimum:
        return None
    return Flag(
        id=_uuid(state.episode_id, "flag", "below-intensity"),
        status="active",
        category=[
            CodeableConcept(
                coding=[
                    _coded(
                        "http://terminology.hl7.org/CodeSystem/flag-category",
                        "clinical",
                        "Clinical",
                    )
                ]
            )
        ],
        code=CodeableConcept(
            coding=[
                _coded(
                    CODE_SYSTEM,
                    "below-intensity",
                    "Below the program's weekly treatment intensity",
                )
            ],
            text=(
                f"attended {latest.attended_hours or 0:g} of a minimum "
                f"{latest.minimum_hours or 0:g} hours in the week {_local_days(state, latest)}"
            ),
        ),
        subject=_patient(state, patient_system),
        period=Period(start=latest.end),
    )


def provenance(
    state: EpisodeState, stored: Sequence[StoredEvent], targets: list[str], exported_at: datetime
) -> Provenance:
    actors = dict.fromkeys((e.actor_id, e.actor_role) for e in stored)
    head = stored[-1]
    chain = {
        "algorithm": "sha256(prev_hash || canonical_json(payload)), hex",
        "genesis": GENESIS_HASH,
        "head_seq": head.seq,
        "head_hash": head.hash,
    }
    return Provenance(
        id=_uuid(state.episode_id, "provenance"),
        target=[_ref(url) for url in targets],
        occurredPeriod=Period(start=stored[0].occurred_at, end=head.occurred_at),
        recorded=head.recorded_at,
        agent=[
            ProvenanceAgent(type=_concept("author"), role=[_concept(role)], who=_person(user, role))
            for user, role in actors
        ],
        entity=[
            ProvenanceEntity(
                role="source",
                what=Reference(
                    identifier=Identifier(system=EVENT_SYSTEM, value=f"{e.episode_id}/{e.seq}"),
                    display=f"seq {e.seq} {e.event_type} prev {e.prev_hash} sha256 {e.hash}",
                ),
            )
            for e in stored
        ],
        signature=[
            Signature(
                type=[
                    _coded(
                        "urn:iso-astm:E1762-95:2013",
                        "1.2.840.10065.1.12.1.5",
                        "Verification Signature",
                    )
                ],
                when=exported_at,
                who=_person("carepath", Role.SYSTEM.value),
                sigFormat="application/json",
                data=base64.b64encode(json.dumps(chain, sort_keys=True).encode()),
            )
        ],
    )


def audit_event(
    state: EpisodeState, stored: Sequence[StoredEvent], exporter: Actor, exported_at: datetime
) -> AuditEvent:
    return AuditEvent(
        id=_uuid(state.episode_id, "export", exported_at.isoformat()),
        type=_coded("http://dicom.nema.org/resources/ontology/DCM", "110106", "Export"),
        action="R",
        recorded=exported_at,
        outcome="0",
        agent=[AuditEventAgent(who=_person(exporter.user_id, exporter.role.value), requestor=True)],
        source=AuditEventSource(observer=Reference(display="CarePath")),
        entity=[
            AuditEventEntity(
                what=_ref(_url(_uuid(state.episode_id, "episode"))),
                description=(
                    f"export of episode {state.episode_id}: {len(stored)} events, "
                    f"head seq {stored[-1].seq} sha256 {stored[-1].hash}"
                ),
            )
        ],
    )


def bundle(
    stored: Sequence[StoredEvent],
    state: EpisodeState,
    *,
    exporter: Actor,
    exported_at: datetime,
    aftercare_status: str = "active",
    patient_system: str = CLIENT_SYSTEM,
) -> Bundle:
    """The whole record as one R4B `collection` Bundle."""
    system = patient_system
    resources: list[Resource] = [
        episode_of_care(state, stored, aftercare_status, system),
        patient(state, system),
        care_plan(state, stored, system),
        *(appointment(state, s, system) for s in state.sessions),
        *(task(state, t, system) for t in state.tasks),
        *(intensity_observation(state, w, system) for w in judged_weeks(state)),
        *((flag,) if (flag := intensity_flag(state, system)) is not None else ()),
    ]
    if state.assessment is not None:
        resources.append(assessment_observation(state, stored, system))
    targets = [_url(str(r.id)) for r in resources]
    resources.append(provenance(state, stored, targets, exported_at))
    resources.append(audit_event(state, stored, exporter, exported_at))
    return Bundle(
        id=_uuid(state.episode_id, "bundle", exported_at.isoformat()),
        type="collection",
        timestamp=exported_at,
        entry=[BundleEntry(fullUrl=_url(str(r.id)), resource=r) for r in resources],
    )
