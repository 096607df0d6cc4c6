"""Prometheus exposition for the API and the worker: CarePath's series and the SDK's.

CarePath's own series live in prometheus_client's registry (store.metrics,
activities.metrics, api.metrics). The Temporal SDK's (`temporal_...`: workflow and
activity task latencies, the sticky cache, polls, requests) are exported by the Rust
core's Prometheus exporter, which each process starts on a private loopback port
(`sdk_metrics_runtime`); every scrape of `/metrics` reads that exporter and appends its
text, so one scrape target per process carries both.

The worker has no HTTP server of its own otherwise: `metrics_server` serves `/metrics`
(and `/livez`) on CAREPATH_WORKER_METRICS_HOST:CAREPATH_WORKER_METRICS_PORT, and reads
the open-tasks gauge from the read model at each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from store.db import Pool
from store.metrics import refresh_open_tasks
from workers.errors import StartupError

log = structlog.get_logger("carepath.metrics")

METRICS_PATH = "/metrics"
# How long a scrape waits for the SDK's exporter before answering without its series.
SDK_SCRAPE_TIMEOUT_S = 2.0
_LOOPBACK = "127.0.0.1"
_BIND_ATTEMPTS = 5
# Seconds the metrics server may take to stop when the worker stops.
STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class SdkMetrics:
    """A Temporal runtime whose metrics are exported at `url` (loopback only)."""

    runtime: Runtime
    url: str


def sdk_metrics_runtime() -> SdkMetrics:
    """A Temporal runtime exporting the SDK's metrics in Prometheus form on a free loopback
    port, counters with `_total` and durations in seconds named `_seconds`; one per process
    (pass it to `Client.connect`)."""
    for _ in range(_BIND_ATTEMPTS):
        port = _unused_port()
        config = PrometheusConfig(
            bind_address=f"{_LOOPBACK}:{port}",
            counters_total_suffix=True,
            durations_as_seconds=True,
            unit_suffix=True,
        )
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
        except ValueError:
            continue  # taken between the probe and the bind: another port
        return SdkMetrics(runtime, f"http://{_LOOPBACK}:{port}{METRICS_PATH}")
    raise StartupError("cannot start the Temporal SDK's metrics exporter: no free local port")


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def exposition(sdk_metrics_url: str | None) -> tuple[bytes, str]:
    """The Prometheus text of this process: CarePath's registry, then the SDK exporter's
    series (left out, with a log line, if it does not answer in time)."""
    body = generate_latest(REGISTRY)
    if sdk_metrics_url is not None:
        try:
            sdk = await asyncio.wait_for(
                asyncio.to_thread(_read, sdk_metrics_url), SDK_SCRAPE_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            log.warning("sdk_metrics_unavailable", error=type(exc).__name__)
        else:
            body += sdk if sdk.endswith(b"\n") or not sdk else sdk + b"\n"
    return body, CONTENT_TYPE_LATEST


def _read(url: str) -> bytes:
    """GET a loopback URL (urllib: no per-request log line, unlike httpx)."""
    with urllib.request.urlopen(url, timeout=SDK_SCRAPE_TIMEOUT_S) as answer:
        data: bytes = answer.read()
    return data


def metrics_app(
    sdk_metrics_url: str | None, before_scrape: Callable[[], Awaitable[object]] | None = None
) -> Starlette:
    """`/metrics` (after `before_scrape`, e.g. refreshing a gauge) and `/livez`."""

    async def metrics(request: Request) -> Response:
        if before_scrape is not None:
            await before_scrape()
        body, media_type = await exposition(sdk_metrics_url)
        return Response(body, media_type=media_type)

    async def livez(request: Request) -> Response:
        return PlainTextResponse("alive\n")

    return Starlette(
        routes=[Route(METRICS_PATH, metrics), Route("/livez", livez)],
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the worker decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def metrics_server(
    host: str, port: int, sdk_metrics_url: str | None, pool: Pool
) -> AsyncIterator[str | None]:
    """Serve the worker's `/metrics` on host:port for as long as the block runs; yields
    its URL, or None (and serves nothing) when `port` is 0."""
    if port == 0:
        yield None
        return
    app = metrics_app(sdk_metrics_url, lambda: refresh_open_tasks(pool))
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="off", access_log=False
    )
    server = _QuietServer(config)
    try:
        # Bind now, so a taken port is a one-line start-up error naming the setting.
        sockets = [config.bind_socket()]
    except SystemExit:
        raise StartupError(
            f"the worker's metrics cannot listen on {host}:{port}: the port is in use; "
            "choose another with CAREPATH_WORKER_METRICS_PORT (0: no metrics server)"
        ) from None
    serving = asyncio.create_task(server.serve(sockets=sockets), name="metrics-server")
    try:
        yield f"http://{_url_host(host)}:{port}{METRICS_PATH}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, STOP_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            serving.cancel()
        finally:
            for sock in sockets:
                sock.close()


def _url_host(host: str) -> str:
    reachable = {"0.0.0.0": _LOOPBACK, "::": "::1", "": _LOOPBACK}.get(host, host)
    return f"[{reachable}]" if ":" in reachable else reachable
