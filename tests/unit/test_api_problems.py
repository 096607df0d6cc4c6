"""Outages as problem documents, and access records that wait for the database.

A small app with the API's problem handlers and its access-log middleware, over a fake
access log: what reaches the caller when a route meets a database error, an outage of
Temporal or an unforeseen fault, and what happens to the access record when it cannot
be written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from api.access import AccessLogMiddleware, AccessSpool
from api.problems import install_problem_handlers
from store.access_log import AccessRecord
from store.errors import DatabaseUnavailable
from workflows.client import TemporalTimeout

FAULTS: dict[str, Exception] = {
    "internal-client": asyncpg.InternalClientError("cannot switch to state 12"),
    "connection": asyncpg.PostgresConnectionError("connection was closed"),
    "interface": asyncpg.InterfaceError("pool is closed"),
    "refused": ConnectionRefusedError(111, "Connection refused"),
    "pool-timeout": TimeoutError(),
    "server": asyncpg.exceptions.AdminShutdownError("terminating connection"),
}


class FakeAccessLog:
    """Keeps records in memory; refuses them while `down`."""

    def __init__(self) -> None:
        self.records: list[AccessRecord] = []
        self.down = False

    async def record(self, entry: AccessRecord) -> None:
        if self.down:
            raise DatabaseUnavailable("the access log could not be written (test)")
        self.records.append(entry)


def _app(access_log: FakeAccessLog) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(AccessLogMiddleware, access_log=access_log)

    @app.get("/fault/{name}")
    async def fault(name: str) -> None:
        raise FAULTS[name]

    @app.post("/command")
    async def command() -> dict[str, str]:
        return {"applied": "yes"}

    @app.get("/read")
    async def read() -> dict[str, str]:
        return {"record": "data"}

    @app.post("/timeout")
    async def timeout() -> None:
        raise TemporalTimeout("Temporal did not answer within 1 s")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
def access_log() -> FakeAccessLog:
    return FakeAccessLog()


@pytest.fixture
async def http(access_log: FakeAccessLog) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(access_log), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


class TestOutages:
    @pytest.mark.parametrize("name", sorted(FAULTS))
    async def test_a_database_error_is_a_503_problem_with_retry_after(
        self, http: httpx.AsyncClient, name: str
    ) -> None:
        response = await http.get(f"/fault/{name}")

        problem = _problem(response, 503)
        assert problem["title"] == "DatabaseUnavailable"
        assert response.headers["retry-after"] == "5"

    async def test_a_temporal_timeout_tells_the_caller_a_retry_with_its_key_is_safe(
        self, http: httpx.AsyncClient
    ) -> None:
        with_key = await http.post("/timeout", headers={"Idempotency-Key": "k-1"})
        without_key = await http.post("/timeout")

        assert "same Idempotency-Key is safe" in _problem(with_key, 503)["detail"]
        assert "had no Idempotency-Key" in _problem(without_key, 503)["detail"]
        assert with_key.headers["retry-after"] == "5"

    async def test_an_unforeseen_fault_is_a_500_problem_not_plain_text(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        response = await http.get("/bug")

        assert _problem(response, 500)["title"] == "InternalError"
        assert [r.status for r in access_log.records] == [500]


class TestAccessLogDown:
    async def test_an_applied_command_keeps_its_answer_and_its_record_waits(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        access_log.down = True
        with capture_logs() as logs:
            response = await http.post("/command")

        assert response.status_code == 200
        assert response.json() == {"applied": "yes"}
        assert [(e["event"], e["log_level"]) for e in logs] == [("access_record_spooled", "error")]
        assert logs[0]["access_path"] == "/command"

    async def test_a_read_hands_out_nothing_when_its_access_cannot_be_recorded(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        access_log.down = True

        response = await http.get("/read")

        assert _problem(response, 503)["title"] == "ServiceUnavailable"
        assert "record" not in response.json()
        assert response.headers["retry-after"] == "5"

    async def test_an_error_answer_keeps_its_cause(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        access_log.down = True

        response = await http.get("/fault/interface")

        assert _problem(response, 503)["title"] == "DatabaseUnavailable"

    async def test_waiting_records_are_written_first_with_their_own_time(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        access_log.down = True
        await http.post("/command")
        access_log.down = False

        await http.get("/read")

        assert [(r.method, r.path) for r in access_log.records] == [
            ("POST", "/command"),
            ("GET", "/read"),
        ]
        late = access_log.records[0].at
        assert late is not None
        assert late <= datetime.now(UTC)
        assert access_log.records[1].at is None  # the database's clock


class TestSpool:
    async def test_a_full_spool_drops_its_oldest_record_and_says_so(self) -> None:
        access_log = FakeAccessLog()
        access_log.down = True
        spool = AccessSpool(access_log, limit=2)  # type: ignore[arg-type]
        records = [
            AccessRecord("u", "clinician", "update", "/x", "success", 200, "POST", f"/x/{i}")
            for i in range(3)
        ]

        with capture_logs() as logs:
            for record in records:
                await spool.write_or_keep(record)
        access_log.down = False
        await spool.write(records[0])

        assert "access_spool_full" in [e["event"] for e in logs]
        assert [r.path for r in access_log.records] == ["/x/1", "/x/2", "/x/0"]
        assert spool.pending == 0

    async def test_control_characters_in_a_path_never_reach_the_record(
        self, http: httpx.AsyncClient, access_log: FakeAccessLog
    ) -> None:
        await http.get("/read%00%1b")

        assert "\x00" not in access_log.records[0].path
        assert "\x1b" not in access_log.records[0].path
