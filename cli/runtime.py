"""Connecting to the servers and building the long-lived parts of a CarePath process.

`carepath up`, `carepath worker`, `carepath api` and the tests all wire the same way:
connect Temporal, open the pool, apply migrations, load the program definitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from temporalio.client import Client

from api.app import ApiResources, create_app
from api.auth import Authenticator
from domain.programs import ProgramCatalog
from programs import load_catalog
from store.chain_seal import seal_legacy_chains
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.migrations import migrate
from workers.checkpoints import checkpoint_key, require_chain_key
from workers.settings import DEFAULT_TEMPORAL_RPC_TIMEOUT, Settings
from workers.temporal import connect


@dataclass(frozen=True)
class Runtime:
    temporal: Client
    pool: Pool
    store: EventStore
    programs: ProgramCatalog
    task_queue: str
    # Signs and checks checkpoints; None means the audit endpoints check hash chains only.
    checkpoint_key: bytes | None = None
    # Seconds the API waits for Temporal per call (CAREPATH_TEMPORAL_RPC_TIMEOUT).
    rpc_timeout: float = DEFAULT_TEMPORAL_RPC_TIMEOUT

    @property
    def chain_key(self) -> bytes:
        """The key of the events' hash chain (the store's)."""
        return self.store.chain_key

    def api_resources(self, authenticator: Authenticator) -> ApiResources:
        return ApiResources(
            temporal=self.temporal,
            store=self.store,
            programs=self.programs,
            task_queue=self.task_queue,
            authenticator=authenticator,
            checkpoint_key=self.checkpoint_key,
            rpc_timeout=self.rpc_timeout,
        )


async def open_runtime(
    settings: Settings, temporal_address: str, database_url: str, *, connect_timeout: float = 10.0
) -> Runtime:
    """Connect to both servers, apply pending migrations and seal the plain-hash chains
    stored before migration 0014 (once); the caller closes `pool`."""
    programs = load_catalog(settings.programs_dir)
    temporal = await connect(temporal_address, settings.temporal_namespace, timeout=connect_timeout)
    pool = await create_pool(database_url, settings.db_pool_min, settings.db_pool_max)
    try:
        await migrate(pool)
        # After both servers answered, so a failed start reports only its one-line cause.
        key = checkpoint_key(settings, required=False)
        chain = require_chain_key(settings)
        await seal_legacy_chains(pool, chain)
    except BaseException:
        await pool.close()
        raise
    return Runtime(
        temporal=temporal,
        pool=pool,
        store=EventStore(pool, chain_key=chain),
        programs=programs,
        task_queue=settings.temporal_task_queue,
        checkpoint_key=key,
        rpc_timeout=settings.temporal_rpc_timeout,
    )


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the supervising process decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_server(
    runtime: Runtime, host: str, port: int, authenticator: Authenticator
) -> uvicorn.Server:
    app = create_app(runtime.api_resources(authenticator))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off")
    return _ApiServer(config)
