"""`carepath worker`, `carepath api`, `carepath codec-server`, `carepath db migrate`: one
role each, external servers.

These are what containers run (docker-compose.yml), and what `carepath up` runs as its
supervised child processes. The checkpoint schedule runs in the worker role only, so a
stack takes its checkpoints from its workers whichever way it was started.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import structlog
import uvicorn

from api.auth import Authenticator, build_authenticator
from api.codec_routes import codec_app
from cli.db import owner_database_url
from cli.runtime import api_server, open_runtime
from store.access_log import AccessLog
from store.db import create_pool
from store.migrations import migrate
from store.projections import running_projector
from workers.checkpoints import checkpoint_schedule
from workers.errors import StartupError
from workers.heap import set_aside_live_objects
from workers.metrics import metrics_server, sdk_metrics_runtime
from workers.payload_codec import EncryptionCodec, payload_keyring
from workers.settings import Settings
from workers.tracing import Tracing, tracing_from_environment
from workers.worker import build_notifications, build_worker

log = structlog.get_logger("carepath.serve")


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise StartupError(
            "no database configured: set CAREPATH_DATABASE_URL (or use `carepath up`, "
            "which starts an embedded PostgreSQL)"
        )
    return settings.database_url.get_secret_value()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _owner_url(settings: Settings) -> str | None:
    """Set explicitly, the worker and the API migrate as the owner; else they only check."""
    return settings.database_owner_url.get_secret_value() if settings.database_owner_url else None


@contextlib.contextmanager
def _traced(role: str) -> Iterator[Tracing | None]:
    """The role's tracing while the block runs, if the OTEL_* variables turn it on (SQL
    statements included); what is buffered is exported on the way out."""
    tracing = tracing_from_environment(role)
    if tracing is None:
        yield None
        return
    log.info("tracing_on", service=tracing.service_name)
    try:
        with tracing.statements():
            yield tracing
    finally:
        tracing.shutdown()


async def run_worker(settings: Settings) -> int:
    with _traced("worker") as tracing:
        return await _run_worker(settings, tracing)


async def _run_worker(settings: Settings, tracing: Tracing | None) -> int:
    runtime = await open_runtime(
        settings,
        settings.effective_temporal_address,
        _database_url(settings),
        owner_url=_owner_url(settings),
        sdk_metrics=sdk_metrics_runtime(),
        tracing=tracing,
    )
    try:
        worker = build_worker(
            runtime.temporal,
            runtime.store,
            runtime.task_queue,
            build_notifications(settings, runtime.store),
            max_cached_workflows=settings.worker_max_cached_workflows,
            sandboxed=settings.workflow_sandbox,
            new_work_limit=settings.worker_new_work_limit,
        )
        stop = _stop_on_signals()
        log.info("startup_objects_set_aside", objects=set_aside_live_objects())
        async with (
            metrics_server(
                settings.worker_metrics_host,
                settings.worker_metrics_port,
                runtime.sdk_metrics_url,
                runtime.pool,
            ) as metrics_url,
            worker,
            checkpoint_schedule(settings, runtime.pool),
            running_projector(
                runtime.pool,
                listen_dsn=_database_url(settings),
                # The append activity's store hands its batches to the projector beside it.
                recent=runtime.store.keep_recent_events(),
            ),
        ):
            log.info("worker_started", task_queue=runtime.task_queue, metrics=metrics_url)
            await stop.wait()
    finally:
        await runtime.pool.close()
    return 0


async def run_api(settings: Settings) -> int:
    authenticator = build_authenticator(settings)
    with _traced("api") as tracing:
        return await _run_api(settings, authenticator, tracing)


async def _run_api(
    settings: Settings, authenticator: Authenticator, tracing: Tracing | None
) -> int:
    runtime = await open_runtime(
        settings,
        settings.effective_temporal_address,
        _database_url(settings),
        owner_url=_owner_url(settings),
        sdk_metrics=sdk_metrics_runtime(),
        tracing=tracing,
    )
    try:
        server = api_server(runtime, settings.api_host, settings.api_port, authenticator)
        stop = _stop_on_signals()
        log.info("startup_objects_set_aside", objects=set_aside_live_objects())
        serve = asyncio.create_task(server.serve())
        await asyncio.wait(
            {serve, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await serve
    finally:
        await runtime.pool.close()
    return 0


async def run_codec_server(settings: Settings) -> int:
    """The codec endpoints alone; they need the payload keys, the users and the database
    (for the access log), not Temporal."""
    authenticator = build_authenticator(settings)
    codec = EncryptionCodec(payload_keyring(settings))
    pool = await create_pool(_database_url(settings), settings.db_pool_min, settings.db_pool_max)
    try:
        app = codec_app(codec, authenticator, AccessLog(pool), settings.effective_codec_ui_origin)
        config = uvicorn.Config(
            app,
            host=settings.codec_server_host,
            port=settings.codec_server_port,
            log_config=None,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        log.info(
            "codec_server_started",
            url=f"http://{settings.codec_server_host}:{settings.codec_server_port}",
        )
        await server.serve()
    finally:
        await pool.close()
    return 0


async def run_migrate(settings: Settings) -> int:
    """As the schema's owner: CAREPATH_DATABASE_OWNER_URL, else CAREPATH_DATABASE_URL, else
    the embedded server's owner role (the server must run: `carepath up`)."""
    pool = await create_pool(owner_database_url(settings))
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'schema already current'}")
    return 0
