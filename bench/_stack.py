"""A throwaway stack for benchmarks: embedded PostgreSQL and a Temporal dev server."""

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
from store.migrations import migrate
from workers.settings import SEARCH_ATTRIBUTES
from workers.temporal import DATA_CONVERTER


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
                pool = await create_pool(postgres.url, max_size=20)
                try:
                    await migrate(pool)
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
