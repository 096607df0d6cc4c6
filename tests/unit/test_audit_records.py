"""The pure side of the audit commands: as-of selection, state diffs, exports, the FHIR bundle.

Histories are produced by the real decider (tests/unit/domain_scenario.py) and hash-chained
exactly as the event store does it, so no server is needed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from domain_scenario import AUDITOR, DAY, HOUR, SUPERVISOR, T0, Episode
from fhir.resources.R4B.bundle import Bundle

from audit import fhir
from audit.asof import diff_states, fold_stored, select_as_of
from audit.errors import InvalidAsOf, UnknownExportFormat
from audit.export import ExportFormat, parse_format, render
from audit.fhir_valuesets import (
    APPOINTMENT_STATUS,
    EPISODE_OF_CARE_STATUS,
    TASK_STATUS,
    code_problems,
)
from audit.verify import check_stream
from domain import commands as c
from domain.events import Event, dump_event
from domain.state import Stage
from domain.vocabulary import FIRST_RULES, DischargeReason
from store.chain import GENESIS_HASH, keyed_chain_hash
from store.records import StoredEvent
from testing.keys import CHAIN_KEY

EXPORTED_AT = T0 + 60 * DAY


def chained(history: list[Event]) -> list[StoredEvent]:
    """The events as the store would hold them: hash-chained, recorded a second later."""
    out: list[StoredEvent] = []
    prev = GENESIS_HASH
    for event in history:
        payload = json.loads(json.dumps(dump_event(event)))
        digest = keyed_chain_hash(CHAIN_KEY, prev, payload)
        out.append(
            StoredEvent(
                episode_id=event.episode_id,
                seq=event.seq,
                event_type=event.type,
                schema_version=event.schema_version,
                payload=payload,
                occurred_at=event.occurred_at,
                recorded_at=event.occurred_at + timedelta(seconds=1),
                actor_id=event.actor.user_id,
                actor_role=event.actor.role.value,
                command_id=event.command_id,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    return out


def busy_episode() -> Episode:
    """Admitted, four sessions (attended, excused, no-show, cancelled), an escalation, discharged."""
    ep = Episode().in_program()
    ep.advance(HOUR)
    for index in range(5):
        ep.session(f"s{index}", T0 + (index + 1) * DAY)
    ep.advance(2 * DAY)
    ep.attendance("s0", "attended")
    ep.advance(DAY)
    ep.attendance("s1", "excused")
    ep.advance(DAY)
    ep.attendance("s2", "no_show")
    ep.run(ep.make(c.CancelSession, session_id="s3", reason="holiday"))
    ep.advance(DAY)
    ep.run(
        ep.make(
            c.Discharge,
            actor=SUPERVISOR,
            discharge_reason=DischargeReason.AGAINST_ADVICE,
            summary="left the program",
        )
    )
    return ep


def fhir_bundle(ep: Episode) -> dict[str, Any]:
    text = render(chained(ep.history), ExportFormat.FHIR, exporter=AUDITOR, exported_at=EXPORTED_AT)
    document: dict[str, Any] = json.loads(text)
    return document


def resources(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == kind]


class TestAsOf:
    def test_selects_the_events_that_occurred_at_or_before_the_moment(self) -> None:
        stored = chained(busy_episode().history)
        moment = stored[5].occurred_at

        selected = select_as_of(stored, moment)

        assert selected[-1].occurred_at == moment
        assert all(e.occurred_at <= moment for e in selected)
        assert stored[len(selected)].occurred_at > moment

    def test_a_moment_before_the_referral_selects_nothing(self) -> None:
        stored = chained(busy_episode().history)

        assert select_as_of(stored, T0 - DAY) == []
        assert fold_stored([]) is None

    def test_a_time_without_offset_is_refused(self) -> None:
        with pytest.raises(InvalidAsOf, match="add one"):
            select_as_of([], T0.replace(tzinfo=None))


class TestDiffStates:
    def test_equal_states_have_no_difference(self) -> None:
        ep = busy_episode()

        assert diff_states(ep.state, fold_stored(chained(ep.history))) == []

    def test_names_each_differing_field_by_path(self) -> None:
        ep = busy_episode()
        state = ep.s
        sessions = (state.sessions[0].model_copy(update={"hours": 9.0}), *state.sessions[1:])
        changed = state.model_copy(update={"stage": Stage.IN_PROGRAM, "sessions": sessions})

        differences = diff_states(state, changed)

        assert [(d.path, d.stored, d.live) for d in differences] == [
            ("stage", "discharged", "in_program"),
            ("sessions[0].hours", 3.0, 9.0),
        ]

    def test_a_missing_state_differs_as_a_whole(self) -> None:
        assert [d.path for d in diff_states(None, busy_episode().s)] == ["(state)"]


class TestVerify:
    def test_a_changed_payload_is_named_by_its_seq(self) -> None:
        stored = chained(busy_episode().history)
        bad = dataclasses.replace(stored[3], payload={**stored[3].payload, "command_id": "x"})

        report = check_stream("ep-1", [*stored[:3], bad, *stored[4:]], chain_key=CHAIN_KEY)

        assert (report.ok, report.first_bad_seq) == (False, 4)
        assert report.reason is not None
        assert "hash mismatch" in report.reason
        assert "seq 4" in report.describe()


class TestFlatExports:
    def test_jsonl_has_one_record_per_event_with_its_hash(self) -> None:
        stored = chained(busy_episode().history)

        lines = render(stored, ExportFormat.JSONL, exporter=AUDITOR, exported_at=EXPORTED_AT)

        records = [json.loads(line) for line in lines.splitlines()]
        assert [r["seq"] for r in records] == [e.seq for e in stored]
        assert [r["hash"] for r in records] == [e.hash for e in stored]

    def test_csv_payload_rehashes_to_the_stored_chain(self) -> None:
        stored = chained(busy_episode().history)

        text = render(stored, ExportFormat.CSV, exporter=AUDITOR, exported_at=EXPORTED_AT)

        prev = GENESIS_HASH
        rows = list(csv.DictReader(io.StringIO(text)))
        for row in rows:
            assert row["prev_hash"] == prev
            assert keyed_chain_hash(CHAIN_KEY, prev, json.loads(row["payload"])) == row["hash"]
            prev = row["hash"]
        assert len(rows) == len(stored)

    def test_an_unknown_format_names_the_known_ones(self) -> None:
        with pytest.raises(UnknownExportFormat, match="jsonl, csv, fhir"):
            parse_format("xml")


class TestEpisodeOfCareStatus:
    def test_stages_map_to_fhir_episode_of_care_status(self) -> None:
        assert fhir.episode_of_care_status(Episode().referred().s) == "planned"
        assert fhir.episode_of_care_status(Episode().in_program().s) == "active"

    def test_every_stage_maps_into_the_value_set(self) -> None:
        state = Episode().referred().s
        for stage in Stage:
            status = fhir.episode_of_care_status(state.model_copy(update={"stage": stage}))
            assert status in EPISODE_OF_CARE_STATUS

    def test_aftercare_status_comes_from_the_program(self) -> None:
        ep = Episode().in_aftercare()
        program = ep.catalog.get(ep.s.program_id)
        assert fhir.episode_of_care_status(ep.s, program.aftercare.fhir_status) == "active"
        assert fhir.episode_of_care_status(ep.s, "finished") == "finished"


class TestFhirBundle:
    def test_validates_against_the_r4b_models_and_value_sets(self) -> None:
        document = fhir_bundle(busy_episode())

        Bundle.model_validate(document)
        assert code_problems(document) == []

    def test_appointments_show_each_attendance_outcome(self) -> None:
        document = fhir_bundle(busy_episode())

        statuses = {
            a["identifier"][0]["value"].split("/")[1]: a["status"]
            for a in resources(document, "Appointment")
        }
        assert statuses == {
            "s0": "fulfilled",
            "s1": "cancelled",
            "s2": "noshow",
            "s3": "cancelled",
            "s4": "booked",
        }
        assert set(statuses.values()) <= APPOINTMENT_STATUS

    def test_episode_status_history_follows_the_stages(self) -> None:
        document = fhir_bundle(busy_episode())

        (episode,) = resources(document, "EpisodeOfCare")
        history = [h["status"] for h in episode["statusHistory"]]
        assert history == ["planned", "active", "finished"]
        assert episode["status"] == "finished"
        assert "end" not in episode["statusHistory"][-1]["period"]
        assert set(history) <= EPISODE_OF_CARE_STATUS

    def test_escalations_become_tasks_and_provenance_carries_the_chain(self) -> None:
        ep = busy_episode()
        document = fhir_bundle(ep)

        tasks = resources(document, "Task")
        assert tasks, "the no-show opens an outreach task"
        # The episode closed with the task open: it can no longer be done.
        assert {t["status"] for t in tasks} == {"cancelled"}
        assert {t["status"] for t in tasks} <= TASK_STATUS
        (provenance,) = resources(document, "Provenance")
        head = chained(ep.history)[-1]
        assert head.hash in provenance["entity"][-1]["what"]["display"]
        assert len(provenance["target"]) == len(document["entry"]) - 2
        (audit,) = resources(document, "AuditEvent")
        assert audit["agent"][0]["who"]["identifier"]["value"] == AUDITOR.user_id

    def test_a_status_outside_its_value_set_is_reported(self) -> None:
        document = fhir_bundle(busy_episode())
        resources(document, "Appointment")[0]["status"] = "attended"

        assert code_problems(document) == [
            f"Appointment/{resources(document, 'Appointment')[0]['id']}: status 'attended' "
            "not allowed"
        ]

    def test_care_plan_follows_the_episode(self) -> None:
        ep = Episode().referred()
        assert fhir.care_plan_status(ep.s) == "draft"
        ep = Episode().in_program()
        assert fhir.care_plan_status(ep.s) == "active"
        ep = Episode().in_aftercare()
        assert fhir.care_plan_status(ep.s) == "completed"
        assert fhir_bundle(ep)["entry"][0]["resource"]["status"] == "active"


def weekly_observations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The Observations of judged weeks (the export also holds the ASAM assessment's)."""
    return [
        o
        for o in resources(document, "Observation")
        if any(cd["code"] == "weekly-attended-hours" for cd in o["code"]["coding"])
    ]


def short_week_episode(**kwargs: Any) -> Episode:
    """In program, 3 of the adult minimum 9 hours attended in the first week, judged."""
    ep = Episode(**kwargs).in_program()
    ep.session("s0", T0 + DAY)
    ep.now = T0 + DAY + 3 * HOUR
    ep.attendance("s0", "attended")
    ep.tick(T0 + 8 * DAY)
    return ep


class TestFhirIntensity:
    def test_given_a_judged_short_week_then_it_is_an_observation_with_the_minimum_as_range(
        self,
    ) -> None:
        document = fhir_bundle(short_week_episode())

        Bundle.model_validate(document)
        assert code_problems(document) == []
        (week,) = weekly_observations(document)
        assert week["valueQuantity"]["value"] == 3
        assert week["referenceRange"][0]["low"]["value"] == 9
        assert week["interpretation"][0]["coding"][0]["code"] == "L"
        assert week["effectivePeriod"] == {
            "start": (T0 - 9 * HOUR).isoformat(),
            "end": (T0 - 9 * HOUR + 7 * DAY).isoformat(),
        }
        assert week["note"][0]["text"] == "local week 2026-01-05..2026-01-11 (UTC)"

    def test_given_the_latest_week_below_minimum_then_the_episode_carries_an_active_flag(
        self,
    ) -> None:
        document = fhir_bundle(short_week_episode())

        (flag,) = resources(document, "Flag")
        assert flag["status"] == "active"
        assert flag["code"]["coding"][0]["code"] == "below-intensity"
        assert "attended 3 of a minimum 9 hours" in flag["code"]["text"]
        (provenance,) = resources(document, "Provenance")
        assert {"reference": f"urn:uuid:{flag['id']}"} in provenance["target"]

    def test_given_a_week_at_the_minimum_then_it_reads_normal_and_no_flag_is_raised(
        self,
    ) -> None:
        ep = Episode().in_program()
        for index in range(3):
            ep.session(f"s{index}", T0 + (index + 1) * DAY)
            ep.now = T0 + (index + 1) * DAY + 3 * HOUR
            ep.attendance(f"s{index}", "attended")
        ep.tick(T0 + 8 * DAY)

        document = fhir_bundle(ep)

        (week,) = weekly_observations(document)
        assert week["interpretation"][0]["coding"][0]["code"] == "N"
        assert resources(document, "Flag") == []

    def test_given_the_episode_closed_then_no_flag_remains(self) -> None:
        ep = short_week_episode()
        ep.run(
            ep.make(
                c.Discharge,
                actor=SUPERVISOR,
                discharge_reason=DischargeReason.AGAINST_ADVICE,
                summary="left the program",
            )
        )

        document = fhir_bundle(ep)

        assert len(weekly_observations(document)) == 1
        assert resources(document, "Flag") == []

    def test_given_the_first_rules_then_the_export_keeps_its_earlier_form(self) -> None:
        document = fhir_bundle(short_week_episode(rules_revision=FIRST_RULES))

        assert weekly_observations(document) == resources(document, "Flag") == []


class TestFhirPatient:
    def test_given_an_episode_when_exported_then_a_patient_with_the_identifier_only_is_referenced(
        self,
    ) -> None:
        document = fhir_bundle(busy_episode())

        Bundle.model_validate(document)
        (patient,) = resources(document, "Patient")
        assert patient["identifier"] == [{"system": fhir.CLIENT_SYSTEM, "value": "client-123"}]
        reference = f"urn:uuid:{patient['id']}"
        assert f"urn:uuid:{patient['id']}" in {e["fullUrl"] for e in document["entry"]}
        (episode,) = resources(document, "EpisodeOfCare")
        (plan,) = resources(document, "CarePlan")
        assert episode["patient"]["reference"] == plan["subject"]["reference"] == reference
        assert {
            a["participant"][0]["actor"]["reference"] for a in resources(document, "Appointment")
        } == {reference}

    def test_given_another_identifier_system_then_the_patient_and_its_references_use_it(
        self,
    ) -> None:
        text = render(
            chained(busy_episode().history),
            ExportFormat.FHIR,
            exporter=AUDITOR,
            exported_at=EXPORTED_AT,
            patient_system="urn:oid:2.16.840.1.113883.19.5",
        )
        document = json.loads(text)

        (patient,) = resources(document, "Patient")
        (episode,) = resources(document, "EpisodeOfCare")
        assert patient["identifier"][0]["system"] == "urn:oid:2.16.840.1.113883.19.5"
        assert episode["patient"]["identifier"]["system"] == "urn:oid:2.16.840.1.113883.19.5"
        assert patient["id"] != fhir.patient_id("client-123")

    def test_given_two_episodes_of_one_client_then_they_share_the_patient_id(self) -> None:
        assert fhir.patient_id("client-123") == fhir.patient_id("client-123")
        assert fhir.patient_id("client-123") != fhir.patient_id("client-124")
