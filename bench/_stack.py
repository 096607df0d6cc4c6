"""A throwaway stack for benchmarks: embedded PostgreSQL and a Temporal dev server."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_port
from store.db import Pool, create_pool
from store.migrations import migrate_url
from testing.stack import start_dev_server


@dataclass
class Stack:
    env: WorkflowEnvironment
    pool: Pool
    postgres: EmbeddedPostgres


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp), free_port())
        await postgres.start()
        try:
            env = await start_dev_server()
            try:
                await migrate_url(postgres.owner_url)
                pool = await create_pool(postgres.url, max_size=20)
                try:
                    yield Stack(env=env, pool=pool, postgres=postgres)
                finally:
                    await pool.close()
            finally:
                await env.shutdown()
        finally:
            await postgres.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
