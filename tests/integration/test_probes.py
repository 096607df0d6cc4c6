"""The probes over real servers: /livez checks nothing, /readyz checks all three, quickly.

The app runs over ASGI against the session's dev server and a fresh database; a task
queue nobody polls stands for a stopped worker, a closed pool for a stopped PostgreSQL,
and a TCP listener that never replies for a Temporal frontend that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_users import users_authenticator
from temporalio.client import Client

from api.health_routes import CHECK_TIMEOUT_S
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from workers.temporal import PLAIN_CONVERTER

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@contextlib.asynccontextmanager
async def _client_of(
    temporal: Client, pool: Pool, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(
        temporal, EventStore(pool, chain_key=CHAIN_KEY), task_queue, users_authenticator()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
        yield http


@contextlib.contextmanager
def _silent_listener() -> Iterator[str]:
    """host:port of a listener that accepts connections and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


class TestLiveness:
    async def test_livez_answers_while_postgres_is_down(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await db_pool.close()

        response = await api.get("/livez", headers={"Authorization": ""})

        assert response.status_code == 200
        assert response.json() == {"status": "alive"}


class TestReadiness:
    async def test_ready_with_both_servers_and_a_polling_worker(
        self, api: httpx.AsyncClient
    ) -> None:
        api.headers.pop("Authorization", None)

        response = await api.get("/readyz")

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ready"
        assert all(body[check]["ok"] for check in ("temporal", "postgres", "worker"))

    async def test_a_task_queue_nobody_polls_is_503_naming_the_worker(
        self, temporal_client: Client, db_pool: Pool
    ) -> None:
        queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
        async with _client_of(temporal_client, db_pool, queue) as http:
            ready = await http.get("/readyz")
            live = await http.get("/livez")
            health = await http.get("/healthz")

        assert live.status_code == 200
        assert ready.status_code == 503
        assert ready.headers["content-type"] == PROBLEM
        assert ready.headers["retry-after"] == "5"
        problem = ready.json()
        assert problem["title"] == "ServiceUnavailable"
        assert problem["detail"].startswith("not ready: worker:")
        assert queue in problem["detail"]
        checks = {c["check"]: c["ok"] for c in problem["errors"]}
        assert checks == {"temporal": True, "postgres": True, "worker": False}
        assert health.status_code == 503
        assert health.json()["worker"]["ok"] is False
        assert health.json()["status"] == "unavailable"

    async def test_postgres_down_is_503_naming_postgres(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await db_pool.close()

        response = await api.get("/readyz")

        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        assert "postgres:" in response.json()["detail"]
        assert "worker:" not in response.json()["detail"]

    async def test_a_temporal_that_never_replies_is_reported_not_waited_for(
        self, db_pool: Pool
    ) -> None:
        # A probe that waited on the silent server would never answer; one that gives up
        # after its checks' timeouts answers. How fast it answers is not asserted here (a
        # busy machine stretches it): the bound only catches a probe that waits forever.
        with _silent_listener() as address:
            hanging = await Client.connect(address, data_converter=PLAIN_CONVERTER, lazy=True)
            async with _client_of(hanging, db_pool, "carepath-episodes") as http:
                response = await asyncio.wait_for(http.get("/readyz"), timeout=CHECK_TIMEOUT_S * 10)

        assert response.status_code == 503
        checks = {c["check"]: c["ok"] for c in response.json()["errors"]}
        assert checks == {"temporal": False, "postgres": True, "worker": False}


class TestOpenness:
    async def test_probes_need_no_token_and_leave_no_access_record(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        api.headers.pop("Authorization", None)
        before = await db_pool.fetchval("SELECT count(*) FROM access_log")

        statuses = [(await api.get(path)).status_code for path in ("/livez", "/readyz")]

        assert statuses == [200, 200]
        assert await db_pool.fetchval("SELECT count(*) FROM access_log") == before

    async def test_openapi_lists_the_probes_without_security(self, api: httpx.AsyncClient) -> None:
        paths = (await api.get("/openapi.json")).json()["paths"]

        for path in ("/livez", "/readyz", "/healthz"):
            assert "security" not in paths[path]["get"], path
        assert "application/problem+json" in paths["/readyz"]["get"]["responses"]["503"]["content"]
