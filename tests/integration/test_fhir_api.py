"""The read-only /fhir endpoints on a real Temporal dev server and PostgreSQL.

An adult-program episode is driven through the workflow and projected; the FHIR reads
must give the resources of the episode's export, to auditors only, each request in the
access log, refusals as OperationOutcomes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_users import bearer, users_authenticator
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.operationoutcome import OperationOutcome
from temporalio.client import Client
from test_audit import Stack, drive_episode

from audit.fhir import CLIENT_SYSTEM
from audit.fhir_valuesets import code_problems
from store.db import Pool
from store.event_store import EventStore
from store.projections import Projector
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from workers.worker import build_worker
from workflows.client import EpisodeClient

pytestmark = pytest.mark.integration

AUDITOR = bearer("auditor")
FHIR_JSON = "application/fhir+json"


@pytest.fixture
async def stack(temporal_client: Client, db_pool: Pool) -> AsyncIterator[Stack]:
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(temporal_client, store, task_queue, users_authenticator())
    async with build_worker(temporal_client, store, task_queue):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
            yield Stack(store, EpisodeClient(temporal_client, task_queue), http, temporal_client)


@pytest.fixture
async def exported(stack: Stack, db_pool: Pool) -> dict[str, Any]:
    """A driven, projected episode's FHIR export (the Bundle's JSON)."""
    driven = await drive_episode(stack.episodes)
    await Projector(db_pool).catch_up()
    response = await stack.http.get(
        f"/audit/episodes/{driven.episode_id}/export", params={"format": "fhir"}, headers=AUDITOR
    )
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def only(document: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = [
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == kind
    ]
    return resource


class TestFhirExportWithPatient:
    async def test_given_an_episode_when_exported_then_the_bundle_with_its_patient_validates(
        self, exported: dict[str, Any]
    ) -> None:
        bundle = Bundle.model_validate(exported)

        assert code_problems(exported) == []
        patient = only(exported, "Patient")
        assert set(patient) == {"resourceType", "id", "identifier"}
        assert patient["identifier"][0]["system"] == CLIENT_SYSTEM
        reference = f"urn:uuid:{patient['id']}"
        assert only(exported, "EpisodeOfCare")["patient"]["reference"] == reference
        assert only(exported, "CarePlan")["subject"]["reference"] == reference
        appointments = [
            r.resource
            for r in bundle.entry or []
            if r.resource.get_resource_type() == "Appointment"
        ]
        assert appointments
        assert {a.participant[0].actor.reference for a in appointments} == {reference}


class TestFhirEndpoints:
    async def test_given_no_token_when_metadata_is_read_then_a_capability_statement_answers(
        self, stack: Stack
    ) -> None:
        response = await stack.http.get("/fhir/metadata")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith(FHIR_JSON)
        statement = CapabilityStatement.model_validate(response.json())
        (rest,) = statement.rest or []
        offered = {(r.type, i.code) for r in rest.resource or [] for i in r.interaction or []}
        assert offered == {
            ("EpisodeOfCare", "read"),
            ("EpisodeOfCare", "search-type"),
            ("CarePlan", "search-type"),
        }

    async def test_given_an_export_when_its_episode_of_care_is_read_then_it_is_the_same_resource(
        self, stack: Stack, exported: dict[str, Any]
    ) -> None:
        episode = only(exported, "EpisodeOfCare")

        response = await stack.http.get(f"/fhir/EpisodeOfCare/{episode['id']}", headers=AUDITOR)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith(FHIR_JSON)
        assert response.json() == episode
        EpisodeOfCare.model_validate(response.json())

    async def test_given_the_patient_when_episodes_are_searched_then_the_episode_is_found(
        self, stack: Stack, exported: dict[str, Any]
    ) -> None:
        episode, patient = only(exported, "EpisodeOfCare"), only(exported, "Patient")
        identifier = patient["identifier"][0]

        by_reference = await stack.http.get(
            "/fhir/EpisodeOfCare", params={"patient": f"Patient/{patient['id']}"}, headers=AUDITOR
        )
        by_identifier = await stack.http.get(
            "/fhir/EpisodeOfCare",
            params={"patient": f"{identifier['system']}|{identifier['value']}"},
            headers=AUDITOR,
        )
        nobody = await stack.http.get(
            "/fhir/EpisodeOfCare", params={"patient": f"{CLIENT_SYSTEM}|nobody"}, headers=AUDITOR
        )

        for response in (by_reference, by_identifier):
            assert response.status_code == 200
            bundle = Bundle.model_validate(response.json())
            assert (bundle.type, bundle.total) == ("searchset", 1)
            assert [e["resource"] for e in response.json()["entry"]] == [episode]
        assert nobody.json()["total"] == 0

    async def test_given_the_episode_when_care_plans_are_searched_then_its_plan_is_found(
        self, stack: Stack, exported: dict[str, Any]
    ) -> None:
        episode, plan = only(exported, "EpisodeOfCare"), only(exported, "CarePlan")

        response = await stack.http.get(
            "/fhir/CarePlan",
            params={"episode-of-care": f"EpisodeOfCare/{episode['id']}"},
            headers=AUDITOR,
        )

        assert response.status_code == 200
        bundle = Bundle.model_validate(response.json())
        assert bundle.total == 1
        assert response.json()["entry"][0]["resource"] == plan

    async def test_given_a_clinician_or_an_unknown_episode_then_an_operation_outcome_answers(
        self, stack: Stack, exported: dict[str, Any]
    ) -> None:
        episode = only(exported, "EpisodeOfCare")

        outside = await stack.http.get(
            f"/fhir/EpisodeOfCare/{episode['id']}", headers=bearer("teen_clinician")
        )
        inside = await stack.http.get(
            f"/fhir/EpisodeOfCare/{episode['id']}", headers=bearer("clinician")
        )
        unknown = await stack.http.get(f"/fhir/EpisodeOfCare/{uuid.uuid4()}", headers=AUDITOR)
        anonymous = await stack.http.get(f"/fhir/EpisodeOfCare/{episode['id']}")
        malformed = await stack.http.get("/fhir/CarePlan", headers=AUDITOR)

        # As the audit export: only auditors, whatever their programs.
        answers = [(r.status_code, r) for r in (outside, inside, unknown, anonymous, malformed)]
        assert [status for status, _ in answers] == [403, 403, 404, 401, 400]
        for _, response in answers:
            assert response.headers["content-type"].startswith(FHIR_JSON)
            outcome = OperationOutcome.model_validate(response.json())
            assert outcome.issue[0].severity == "error"
        assert OperationOutcome.model_validate(unknown.json()).issue[0].code == "not-found"

    async def test_given_fhir_requests_then_each_is_in_the_access_log(
        self, stack: Stack, db_pool: Pool, exported: dict[str, Any]
    ) -> None:
        episode = only(exported, "EpisodeOfCare")
        start = await db_pool.fetchval("SELECT coalesce(max(id), 0) FROM access_log")
        paths = [
            "/fhir/metadata",
            f"/fhir/EpisodeOfCare/{episode['id']}",
            "/fhir/EpisodeOfCare",
            "/fhir/CarePlan",
        ]

        await stack.http.get(paths[0])
        await stack.http.get(paths[1], headers=AUDITOR)
        await stack.http.get(paths[2], params={"patient": "x|y"}, headers=AUDITOR)
        await stack.http.get(paths[3], headers=bearer("clinician"))

        rows = await db_pool.fetch(
            "SELECT path, user_id, outcome, status, episode_id FROM access_log "
            "WHERE id > $1 ORDER BY id",
            start,
        )
        assert [(r["path"], r["user_id"], r["outcome"], r["status"]) for r in rows] == [
            (paths[0], "(unauthenticated)", "success", 200),
            (paths[1], "ada.auditor", "success", 200),
            (paths[2], "ada.auditor", "success", 200),
            (paths[3], "cal.clinician", "denied", 403),
        ]
        assert rows[1]["episode_id"] is not None
