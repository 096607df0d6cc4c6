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
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.migrations import migrate, migrate_url
from workers.checkpoints import checkpoint_key
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
    settings: Settings,
    temporal_address: str,
    database_url: str,
    *,
    connect_timeout: float = 10.0,
    owner_url: str | None = None,
) -> Runtime:
    """Connect to both servers and apply pending migrations; the caller closes `pool`.

    The pool connects to `database_url` (the application's role). Migrations run as the
    owner at `owner_url` when given; without it the pool's role applies them, which the
    application's role cannot: it only confirms that the schema is current.
    """
    programs = load_catalog(settings.programs_dir)
    temporal = await connect(temporal_address, settings.temporal_namespace, timeout=connect_timeout)
    if owner_url is not None and owner_url != database_url:
        await migrate_url(owner_url)
    pool = await create_pool(database_url, settings.db_pool_min, settings.db_pool_max)
    try:
        await migrate(pool)
        # After both servers answered, so a failed start reports only its one-line cause.
        key = checkpoint_key(settings, required=False)
    except BaseException:
        await pool.close()
        raise
    return Runtime(
        temporal=temporal,
        pool=pool,
        store=EventStore(pool),
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
