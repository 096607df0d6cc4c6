"""`carepath up`: start and supervise the whole engine on one machine.

The local stack (`devstack`) starts what is not external (PostgreSQL, the Temporal dev
server); this module applies migrations, then runs the worker and the HTTP API in this
process. SIGINT or SIGTERM stops everything in reverse order; children die with this process even if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import structlog

from api.auth import build_authenticator, ensure_users_file
from cli.runtime import api_server, open_runtime
from devstack.embedded_temporal import EmbeddedTemporal
from devstack.processes import require_free_port
from devstack.stack import local_servers, prepare_data_dir
from domain.actors import Role
from workers.checkpoints import checkpoint_schedule
from workers.errors import StartupError
from workers.settings import Settings
from workers.temporal import register_search_attributes
from workers.worker import build_notifications, build_worker

log = structlog.get_logger("carepath.up")


async def run_up(settings: Settings) -> int:
    # The users file lives in the data dir: prove it writable before anything else.
    prepare_data_dir(settings.data_dir)
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
        servers = await stack.enter_async_context(local_servers(settings))
        temporal_server, data_dir = servers.temporal, servers.data_dir
        runtime = await open_runtime(
            settings,
            settings.effective_temporal_address,
            servers.database_url,
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
