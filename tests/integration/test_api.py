"""The HTTP API against a real Temporal dev server and a real PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.client import Client

from store.db import Pool
from workflows.messages import workflow_id_for

pytestmark = pytest.mark.integration

REFERRAL = {"client_ref": "MRN-2002", "program_id": "adult-iop", "referral_source": "self"}


async def _event_rows(pool: Pool) -> int:
    count = await pool.fetchval("SELECT count(*) FROM events")
    assert isinstance(count, int)
    return count


async def _workflow_count(client: Client) -> int:
    return len([w async for w in client.list_workflows("WorkflowType = 'CarePathway'")])


class TestReferThroughApi:
    """POST /episodes starts the workflow and the referral is stored before the answer."""

    async def test_referral_returns_201_with_the_referred_state(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post("/episodes", json=REFERRAL)

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["workflow_id"] == workflow_id_for(body["episode_id"])
        assert body["state"]["stage"] == "referred"
        assert body["state"]["program_id"] == "adult-iop"

    async def test_referral_is_in_postgres_and_in_the_events_endpoint(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        episode_id = (await api.post("/episodes", json=REFERRAL)).json()["episode_id"]

        row = await db_pool.fetchrow(
            "SELECT seq, event_type FROM events WHERE episode_id = $1", episode_id
        )
        events = (await api.get(f"/episodes/{episode_id}/events")).json()["events"]

        assert row is not None
        assert (row["seq"], row["event_type"]) == (1, "client_referred")
        assert [(e["seq"], e["type"]) for e in events] == [(1, "client_referred")]
        assert events[0]["payload"]["client_ref"] == "MRN-2002"

    async def test_get_episode_returns_the_workflow_state(self, api: httpx.AsyncClient) -> None:
        episode_id = (await api.post("/episodes", json=REFERRAL)).json()["episode_id"]

        response = await api.get(f"/episodes/{episode_id}")

        assert response.status_code == 200
        assert response.json()["state"]["client_ref"] == "MRN-2002"
        assert response.json()["state"]["referral_source"] == "self"


class TestBadInput:
    """Bad input gets a 4xx problem document and starts or writes nothing."""

    async def test_unknown_program_is_422_and_starts_nothing(
        self, api: httpx.AsyncClient, db_pool: Pool, temporal_client: Client
    ) -> None:
        before = await _workflow_count(temporal_client)

        response = await api.post("/episodes", json={**REFERRAL, "program_id": "no-such-program"})

        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["title"] == "UnknownProgram"
        assert "adult-iop" in problem["detail"]
        assert await _event_rows(db_pool) == 0
        assert await _workflow_count(temporal_client) == before

    @pytest.mark.parametrize("missing", ["client_ref", "program_id", "referral_source"])
    async def test_missing_field_is_422_naming_the_field(
        self, api: httpx.AsyncClient, db_pool: Pool, missing: str
    ) -> None:
        body = {k: v for k, v in REFERRAL.items() if k != missing}

        response = await api.post("/episodes", json=body)

        assert response.status_code == 422
        assert missing in response.json()["detail"]
        assert await _event_rows(db_pool) == 0

    async def test_malformed_json_is_400(self, api: httpx.AsyncClient, db_pool: Pool) -> None:
        response = await api.post(
            "/episodes", content=b'{"client_ref": ', headers={"content-type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["title"] == "MalformedJson"
        assert await _event_rows(db_pool) == 0

    async def test_unknown_referral_source_is_422(self, api: httpx.AsyncClient) -> None:
        response = await api.post("/episodes", json={**REFERRAL, "referral_source": "psychic"})

        assert response.status_code == 422
        assert "referral_source" in response.json()["detail"]

    async def test_unknown_episode_is_404_on_state_and_events(self, api: httpx.AsyncClient) -> None:
        unknown = str(uuid.uuid4())

        state = await api.get(f"/episodes/{unknown}")
        events = await api.get(f"/episodes/{unknown}/events")

        assert (state.status_code, events.status_code) == (404, 404)
        assert state.json()["title"] == "EpisodeNotFound"
        assert unknown in events.json()["detail"]


class TestHealth:
    async def test_healthz_reports_both_servers_ok(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/healthz")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["temporal"]["ok"]
        assert body["postgres"]["ok"]

    async def test_healthz_is_503_when_postgres_is_gone(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await db_pool.close()

        response = await api.get("/healthz")

        assert response.status_code == 503
        assert response.json()["postgres"]["ok"] is False
        assert response.json()["temporal"]["ok"] is True

    async def test_openapi_document_lists_the_episode_routes(self, api: httpx.AsyncClient) -> None:
        paths = (await api.get("/openapi.json")).json()["paths"]

        assert {
            "/episodes",
            "/episodes/{episode_id}",
            "/episodes/{episode_id}/events",
            "/healthz",
        } <= set(paths)
