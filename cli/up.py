"""`carepath up`: the whole engine on one machine, as a tree of supervised processes.

The worker and the API run as their own processes (`carepath worker`, `carepath api`,
exactly what containers run), so a crashed worker leaves the API answering and is
restarted, and a wedged API cannot stall the workflows. This process is only the
supervisor (`devstack.supervisor`): it starts the embedded servers that no setting points
elsewhere, applies the migrations and registers the search attributes once, starts the
two roles against those servers, prints the banner when `/readyz` first answers 200,
and restarts whatever dies. SIGINT or SIGTERM stops the tree in reverse order within
about ten seconds; the children die with this process even if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from api.auth import DEMO_TOKENS_FILE, build_authenticator, ensure_users_file
from api.codec_routes import CODEC_PREFIX
from cli.runtime import open_runtime
from devstack.embedded_temporal import EmbeddedTemporal
from devstack.files import PRIVATE_UMASK
from devstack.processes import describe_exit, require_free_port
from devstack.stack import LocalServers, prepare_data_dir, start_local_servers
from devstack.supervisor import ChildProcess, Supervisor
from domain.actors import Role
from workers.errors import StartupError
from workers.payload_codec import KEYS_FILE as PAYLOAD_KEYS_FILE
from workers.settings import Settings
from workers.temporal import register_search_attributes
from workers.worker import notification_channel

log = structlog.get_logger("carepath.up")

# Seconds each role may take to stop on SIGTERM before it is killed. The API finishes the
# requests in flight; the worker finishes its workflow tasks and leaves activities to
# Temporal's retries.
API_STOP_S = 3.0
WORKER_STOP_S = 3.0
# While waiting for the first 200 from /readyz, how often to say what is still missing.
_READY_REPORT_EVERY_S = 15.0


@dataclass(frozen=True)
class _Stack:
    servers: LocalServers
    api_url: str


async def run_up(settings: Settings) -> int:
    # Whatever this process and its children create (the Temporal dev server's database,
    # logs, keys) is readable by its owner only.
    os.umask(PRIVATE_UMASK)
    # The users file lives in the data dir: prove it writable before anything else.
    data_dir = prepare_data_dir(settings.data_dir)
    require_free_port(settings.api_host, settings.api_port, "the HTTP API", "CAREPATH_API_PORT")
    if settings.worker_metrics_port:
        require_free_port(
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            "the worker's metrics",
            "CAREPATH_WORKER_METRICS_PORT",
        )
    tokens: dict[Role, str] = {}
    if not settings.jwks_url:
        # Tokens come back only when the file is created: it keeps their digests only.
        _, tokens = ensure_users_file(
            settings.effective_users_file, settings.data_dir / DEMO_TOKENS_FILE
        )
    # The children would fail on these too, but here the error is one line and nothing runs.
    build_authenticator(settings)
    notification_channel(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    supervisor = Supervisor()
    stopped = asyncio.create_task(stop.wait(), name="signal")
    try:
        # Start-up races the signal: Ctrl-C while PostgreSQL starts stops at once too.
        startup = asyncio.create_task(_start(settings, data_dir, supervisor), name="startup")
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done():
            stack = startup.result()
            _print_banner(settings, stack, tokens)
            supervisor.watch()
            await stopped
        else:
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        print("carepath: stopping ...", file=sys.stderr, flush=True)
    finally:
        stopped.cancel()
        await supervisor.shutdown()
    print("carepath: stopped; data kept in", data_dir, file=sys.stderr, flush=True)
    return 0


async def _start(settings: Settings, data_dir: Path, supervisor: Supervisor) -> _Stack:
    api_url = f"http://{_local_host(settings.api_host)}:{settings.api_port}"
    servers = await start_local_servers(settings, supervisor, codec_endpoint=api_url + CODEC_PREFIX)
    temporal_address = settings.effective_temporal_address
    # Migrations run here, once, before either role starts (theirs then find nothing to do).
    runtime = await open_runtime(
        settings,
        temporal_address,
        servers.database_url,
        connect_timeout=30.0 if servers.temporal else settings.temporal_connect_timeout,
        owner_url=servers.owner_database_url,
    )
    try:
        if servers.temporal is None:
            await register_search_attributes(runtime.temporal, settings.temporal_namespace)
    finally:
        await runtime.pool.close()

    env = {
        **os.environ,
        "CAREPATH_DATA_DIR": str(data_dir),
        "CAREPATH_DATABASE_URL": servers.database_url,
        "CAREPATH_TEMPORAL_ADDRESS": temporal_address,
        "CAREPATH_USERS_FILE": str(settings.effective_users_file.resolve()),
    }
    if runtime.checkpoint_key is not None:
        # With the embedded PostgreSQL the key is generated into the data dir; the
        # children see an external database, so they are handed the key itself.
        env["CAREPATH_CHECKPOINT_KEY"] = runtime.checkpoint_key.decode("utf-8")
    if servers.temporal is not None and settings.payload_keys is None:
        # The children see an external Temporal: they are pointed at the keys file that
        # was generated into the data dir (or the configured one).
        env["CAREPATH_PAYLOAD_KEYS_FILE"] = str(
            (settings.payload_keys_file or data_dir / PAYLOAD_KEYS_FILE).resolve()
        )
    # Likewise the chain key, and where checkpoints are published (the data dir's default).
    env["CAREPATH_CHAIN_KEY"] = runtime.chain_key.decode("utf-8")
    env["CAREPATH_CHECKPOINT_DIR"] = str(settings.effective_checkpoint_dir.resolve())
    for handed in [name for name in env if name.startswith("CAREPATH_")]:
        # A value handed over here replaces the file it may have come from
        # (workers.secret_files refuses a setting given both ways).
        env.pop(f"{handed}_FILE", None)
    for role, stop_timeout_s in (("worker", WORKER_STOP_S), ("api", API_STOP_S)):
        await supervisor.start(
            role, ChildProcess(_role_argv(role), env), stop_timeout_s=stop_timeout_s
        )

    await _wait_until_ready(api_url, supervisor)
    return _Stack(servers, api_url)


def _role_argv(role: str) -> list[str]:
    """`carepath <role>` with this interpreter, so the child runs this very installation."""
    return [sys.executable, "-m", "cli.main", role]


def _local_host(host: str) -> str:
    """Where this machine reaches a server that listens on `host`, as a URL's host part."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{reachable}]" if ":" in reachable else reachable


async def _wait_until_ready(api_url: str, supervisor: Supervisor) -> None:
    """Return when /readyz answers 200; a child that dies meanwhile fails the start-up."""
    # httpx logs every request at info: a line per probe would bury the banner.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    reported = time.monotonic()
    missing = "the API does not answer yet"
    async with httpx.AsyncClient(base_url=api_url, timeout=5.0) as http:
        while True:
            exited = supervisor.exited()
            if exited:
                name, code = exited[0]
                raise StartupError(
                    f"{name} exited during start-up ({describe_exit(code)}); "
                    "its error is above this line"
                )
            try:
                answer = await http.get("/readyz")
            except httpx.HTTPError:
                pass
            else:
                if answer.status_code == 200:
                    return
                missing = _problem_detail(answer)
            if time.monotonic() - reported >= _READY_REPORT_EVERY_S:
                log.warning("waiting_for_readiness", missing=missing)
                reported = time.monotonic()
            await asyncio.sleep(0.1)


def _problem_detail(answer: httpx.Response) -> str:
    """The `detail` of a problem document, or the raw body if it is not one."""
    with contextlib.suppress(ValueError, AttributeError):
        detail = answer.json().get("detail")
        if isinstance(detail, str):
            return detail
    return answer.text[:300]


def _print_banner(settings: Settings, stack: _Stack, tokens: dict[Role, str]) -> None:
    api = stack.api_url
    temporal: EmbeddedTemporal | None = stack.servers.temporal
    lines = [
        "",
        "CarePath is running.",
        f"  Staff console  {api}/ (sign in with a token below)",
        f"  API            {api}",
        f"  OpenAPI docs   {api}/docs",
        f"  Health         {api}/readyz (liveness: {api}/livez)",
        f"  Metrics        {api}/metrics (Prometheus)",
    ]
    if settings.worker_metrics_port:
        host = _local_host(settings.worker_metrics_host)
        lines.append(f"  Worker metrics http://{host}:{settings.worker_metrics_port}/metrics")
    if temporal is not None and temporal.ui_url:
        lines.append(f"  Temporal UI    {temporal.ui_url}")
        lines.append(f"  Codec server   {api}{CODEC_PREFIX} (payloads are encrypted)")
    lines.append(f"  Temporal       {settings.effective_temporal_address}")
    lines.append(f"  Data dir       {stack.servers.data_dir}")
    if settings.jwks_url:
        lines.append(f"  Auth           JWTs verified against {settings.jwks_url}")
    elif tokens:
        demo_file = settings.data_dir / DEMO_TOKENS_FILE
        lines.append(
            f"Demo tokens, shown this once (also in {demo_file}, mode 0600; "
            "export CAREPATH_TOKEN=...):"
        )
        lines += [f"  {role.value:<19}{token}" for role, token in tokens.items()]
    else:
        lines.append(
            f"  Users          {settings.effective_users_file} (token digests only); "
            "a new token: carepath users rotate USER_ID (or: carepath users add)"
        )
    lines.append(f"Press Ctrl-C to stop (or kill -TERM {os.getpid()}).")
    print("\n".join(lines), flush=True)
