"""The API at its edges: Temporal without a worker, PostgreSQL gone, the access log failing.

Each outage is answered with a problem document the caller can act on: 503 with
`Retry-After`, within the Temporal deadline, never a hang and never plain text. And a
command that was applied is never answered as failed because its access record could
not be written.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from api_driver import Driver, command_url, example, new_id, now_iso
from api_users import bearer, users_authenticator
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.worker import Worker

from devstack.embedded_postgres import EmbeddedPostgres
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from workers.worker import build_worker

pytestmark = pytest.mark.integration

# Short, so the test waits little; the setting's default is 10 s.
RPC_TIMEOUT = 1.0
# How much later than the deadline the answer may come on a busy machine.
SLACK = 2.0


def _problem_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem: dict[str, Any] = response.json()
    return problem


@dataclass
class Stack:
    """The API with a short Temporal deadline, and the worker to start when a test wants it."""

    http: httpx.AsyncClient
    worker: Callable[[], AbstractAsyncContextManager[Worker]]


@pytest.fixture
async def stack(temporal_client: Client, db_pool: Pool) -> AsyncIterator[Stack]:
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(
        temporal_client, store, task_queue, users_authenticator(), rpc_timeout=RPC_TIMEOUT
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://carepath.test", headers=bearer("director")
    ) as http:
        yield Stack(http, lambda: build_worker(temporal_client, store, task_queue))


class TestNoWorker:
    async def test_a_command_is_503_within_the_deadline_and_its_retry_applies_once(
        self, stack: Stack, db_pool: Pool
    ) -> None:
        async with stack.worker():
            episode_id = await Driver(stack.http).at("in_program")
        url = command_url(episode_id, "schedule_session")
        body = example("schedule_session", session_id="s-retry", starts_at=now_iso(60))
        key = {"Idempotency-Key": new_id("schedule")}

        started = time.monotonic()
        response = await stack.http.post(url, json=body, headers=key)
        waited = time.monotonic() - started

        problem = _problem_503(response)
        assert problem["title"] == "TemporalTimeout"
        assert "same Idempotency-Key is safe" in problem["detail"]
        assert RPC_TIMEOUT * 0.9 <= waited <= RPC_TIMEOUT + SLACK, waited
        async with stack.worker():
            retried = await stack.http.post(url, json=body, headers=key)
        assert retried.status_code == 200, retried.text
        stored = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE episode_id = $1 "
            "AND event_type = 'session_scheduled'",
            episode_id,
        )
        assert stored == 1

    async def test_a_referral_is_503_within_the_deadline(self, stack: Stack) -> None:
        referral = {"client_ref": "MRN-7001", "program_id": "adult-iop", "referral_source": "self"}

        started = time.monotonic()
        response = await stack.http.post(
            "/episodes", json=referral, headers={"Idempotency-Key": new_id("refer")}
        )
        waited = time.monotonic() - started

        assert _problem_503(response)["title"] == "TemporalTimeout"
        assert waited <= RPC_TIMEOUT + SLACK, waited

    async def test_a_read_is_503_within_the_deadline(self, stack: Stack) -> None:
        async with stack.worker():
            episode_id = await Driver(stack.http).at("referred")

        started = time.monotonic()
        response = await stack.http.get(f"/episodes/{episode_id}")

        assert _problem_503(response)["title"] == "TemporalTimeout"
        assert time.monotonic() - started <= RPC_TIMEOUT + SLACK


@contextlib.asynccontextmanager
async def _database_gone(
    embedded_postgres: EmbeddedPostgres, fresh_database_url: str
) -> AsyncIterator[None]:
    """What PostgreSQL dying looks like to the pools: their connections are cut and no
    new one is accepted, until the block ends."""
    database = fresh_database_url.rsplit("/", 1)[-1]
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()


class TestDatabaseGone:
    async def test_every_read_is_a_503_problem_never_a_plain_500(
        self,
        api: httpx.AsyncClient,
        embedded_postgres: EmbeddedPostgres,
        fresh_database_url: str,
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        async with _database_gone(embedded_postgres, fresh_database_url):
            answers = [
                await api.get(f"/episodes/{episode_id}/events"),
                await api.get("/caseload", params={"clinician_id": "cal.clinician"}),
                await api.get(f"/episodes/{episode_id}"),
            ]

        # The route's own answer names the cause; its access record waits in the spool.
        assert [_problem_503(answer)["title"] for answer in answers] == ["DatabaseUnavailable"] * 3

    async def test_a_command_is_a_503_within_the_deadline_and_its_retry_applies_once(
        self,
        stack: Stack,
        db_pool: Pool,
        embedded_postgres: EmbeddedPostgres,
        fresh_database_url: str,
    ) -> None:
        # The API reads nothing from PostgreSQL for a command: the worker's append meets
        # the outage, and keeps trying while the caller is told to send the command again.
        async with stack.worker():
            episode_id = await Driver(stack.http).at("in_program")
            url = command_url(episode_id, "schedule_session")
            body = example("schedule_session", session_id="s-gone", starts_at=now_iso(60))
            key = {"Idempotency-Key": new_id("schedule")}
            async with _database_gone(embedded_postgres, fresh_database_url):
                started = time.monotonic()
                response = await stack.http.post(url, json=body, headers=key)
                waited = time.monotonic() - started

            problem = _problem_503(response)
            assert problem["title"] == "TemporalTimeout"
            assert waited <= RPC_TIMEOUT + SLACK, waited
            retried = await _until_answered(stack.http, url, body, key)

        assert retried.status_code == 200, retried.text
        stored = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE episode_id = $1 "
            "AND event_type = 'session_scheduled'",
            episode_id,
        )
        assert stored == 1


async def _until_answered(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], key: dict[str, str]
) -> httpx.Response:
    """Send the command again (same key) until it is answered other than with a timeout:
    the first attempt's append may still be waiting out its retry interval."""
    for _ in range(30):
        response = await http.post(url, json=body, headers=key)
        if response.status_code != 503:
            return response
    return response


class TestAccessLogFailing:
    async def test_an_applied_command_keeps_its_answer_and_its_record_is_written_later(
        self, owner_pool: Pool, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        episode_id = await driver.at("in_program")
        await owner_pool.execute(
            "CREATE FUNCTION refuse_access() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$"
        )
        await owner_pool.execute(
            "CREATE TRIGGER refuse_access BEFORE INSERT ON access_log "
            "FOR EACH ROW EXECUTE FUNCTION refuse_access()"
        )
        key = new_id("schedule")
        body = example("schedule_session", session_id="s-logged-late", starts_at=now_iso(60))

        with capture_logs() as logs:
            applied = await api.post(
                command_url(episode_id, "schedule_session"),
                json=body,
                headers={"Idempotency-Key": key},
            )
            read = await api.get(f"/episodes/{episode_id}")
        await owner_pool.execute("DROP TRIGGER refuse_access ON access_log")
        after = await api.get(f"/episodes/{episode_id}")

        assert applied.status_code == 200, applied.text
        assert [e["type"] for e in applied.json()["events"]] == ["session_scheduled"]
        spooled = [e for e in logs if e["event"] == "access_record_spooled"]
        assert [(e["log_level"], e["access_command_id"]) for e in spooled] == [("error", key)]
        # A read whose access cannot be recorded still hands out nothing.
        _problem_503(read)
        assert after.status_code == 200, after.text
        rows = await db_pool.fetch(
            "SELECT at, method, outcome, command_id FROM access_log "
            "WHERE episode_id = $1 ORDER BY id",
            episode_id,
        )
        late = [r for r in rows if r["command_id"] == key]
        assert [(r["method"], r["outcome"]) for r in late] == [("POST", "success")]
        # Written after the trigger was gone, stamped with the time of the command.
        assert late[0]["at"] < rows[-1]["at"]
        assert rows[-1]["method"] == "GET"
