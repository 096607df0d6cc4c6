"""`carepath up`: start and supervise the whole engine on one machine.

Starts what is not external (PostgreSQL, the Temporal dev server), applies migrations,
then runs the worker and the HTTP API in this process. SIGINT or SIGTERM stops everything
in reverse order; children die with this process even if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import structlog

from carepath.api.auth import build_authenticator, ensure_users_file
from carepath.domain.actors import Role
from carepath.workers.checkpoints import checkpoint_schedule
from carepath.workers.embedded_postgres import EmbeddedPostgres
from carepath.workers.embedded_temporal import EmbeddedTemporal
from carepath.workers.errors import StartupError
from carepath.workers.processes import require_free_port
from carepath.workers.runtime import api_server, open_runtime
from carepath.workers.settings import Settings
from carepath.workers.temporal import register_search_attributes
from carepath.workers.worker import build_notifications, build_worker

log = structlog.get_logger("carepath.up")


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir if needed and prove it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"data dir {path} is not writable ({exc.strerror or exc}); "
            "choose another with --data-dir or CAREPATH_DATA_DIR"
        ) from None
    return path.resolve()


async def run_up(settings: Settings) -> int:
    data_dir = prepare_data_dir(settings.data_dir)
    require_free_port(settings.api_host, settings.api_port, "the HTTP API", "CAREPATH_API_PORT")
    tokens: dict[Role, str] = {}
    if not settings.jwks_url:
        _, tokens = ensure_users_file(settings.effective_users_file)
    authenticator = build_authenticator(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data_dir, settings.postgres_port)
            stack.push_async_callback(postgres.stop)
            await postgres.start()
            database_url = postgres.url
        else:
            database_url = settings.database_url.get_secret_value()

        temporal_server: EmbeddedTemporal | None = None
        if settings.temporal_address is None:
            temporal_server = EmbeddedTemporal(
                data_dir, settings.temporal_port, settings.temporal_ui_port, ui=settings.temporal_ui
            )
            stack.push_async_callback(temporal_server.stop)
            temporal_server.start()

        runtime = await open_runtime(
            settings,
            settings.effective_temporal_address,
            database_url,
            connect_timeout=30.0 if temporal_server else settings.temporal_connect_timeout,
        )
        stack.push_async_callback(runtime.pool.close)
        if temporal_server is None:
            await register_search_attributes(runtime.temporal, settings.temporal_namespace)

        worker = build_worker(
            runtime.temporal,
            runtime.store,
            runtime.task_queue,
            build_notifications(settings, runtime.store),
        )
        await stack.enter_async_context(checkpoint_schedule(settings, runtime.pool))
        server = api_server(runtime, settings.api_host, settings.api_port, authenticator)
        tasks = {
            asyncio.create_task(worker.run(), name="worker"),
            asyncio.create_task(server.serve(), name="api"),
            asyncio.create_task(stop.wait(), name="signal"),
        }
        while not server.started and not any(t.done() for t in tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            _print_banner(settings, temporal_server, data_dir, tokens)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t.get_name() != "signal" and t.exception() is not None]
        print("carepath: stopping ...", file=sys.stderr, flush=True)
        server.should_exit = True
        await worker.shutdown()
        await asyncio.gather(
            *tasks - {t for t in tasks if t.get_name() == "signal"}, return_exceptions=True
        )
        for task in tasks:
            task.cancel()
        if failed:
            exc = failed[0].exception()
            raise StartupError(f"{failed[0].get_name()} stopped: {exc}")
    print("carepath: stopped; data kept in", data_dir, file=sys.stderr, flush=True)
    return 0


def _print_banner(
    settings: Settings,
    temporal: EmbeddedTemporal | None,
    data_dir: Path,
    tokens: dict[Role, str],
) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "CarePath is running.",
        f"  API            {api}",
        f"  OpenAPI docs   {api}/docs",
        f"  Health         {api}/healthz",
    ]
    if temporal is not None and temporal.ui_url:
        lines.append(f"  Temporal UI    {temporal.ui_url}")
    lines.append(f"  Temporal       {settings.effective_temporal_address}")
    lines.append(f"  Data dir       {data_dir}")
    if tokens:
        lines.append(
            f"Demo tokens (from {settings.effective_users_file}; export CAREPATH_TOKEN=...):"
        )
        lines += [f"  {role.value:<19}{token}" for role, token in tokens.items()]
    elif settings.jwks_url:
        lines.append(f"  Auth           JWTs verified against {settings.jwks_url}")
    lines.append(f"Press Ctrl-C to stop (or kill -TERM {os.getpid()}).")
    print("\n".join(lines), flush=True)
