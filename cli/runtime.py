"""Connecting to the servers and building the long-lived parts of a CarePath process.

`carepath up`, `carepath worker`, `carepath api` and the tests all wire the same way:
connect Temporal, open the pool, apply migrations, load the program definitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn
from temporalio.client import Client

from api.app import ApiResources, create_app
from api.auth import Authenticator
from api.console.oidc import OidcConfig, oidc_config
from api.health_routes import PROBE_PATHS
from api.limits import HttpLimits
from audit.fhir import CLIENT_SYSTEM
from domain.programs import ProgramCatalog
from programs import load_catalog
from store.chain_seal import seal_legacy_chains
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.migrations import migrate, migrate_url
from workers.checkpoints import checkpoint_key, require_chain_key
from workers.errors import StartupError
from workers.metrics import SdkMetrics
from workers.payload_codec import payload_keyring
from workers.settings import DEFAULT_TEMPORAL_RPC_TIMEOUT, Settings
from workers.temporal import PLAIN_CONVERTER, connect, data_converter

if TYPE_CHECKING:
    from workers.tracing import Tracing


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
    # The Temporal UI's origin, the one the codec endpoints answer cross-origin.
    codec_ui_origin: str | None = None
    # Request limits of the API (CAREPATH_MAX_BODY_BYTES and the others).
    limits: HttpLimits = field(default_factory=HttpLimits)
    # Events after which new episodes' runs continue as new (CAREPATH_HISTORY_EVENT_LIMIT).
    history_event_limit: int | None = None
    # Where the Temporal runtime exports the SDK's metrics, if it does (workers.metrics).
    sdk_metrics_url: str | None = None
    # The console's session key and idle timeout (CAREPATH_CONSOLE_*).
    console_secret: bytes | None = None
    console_idle_minutes: float = 30
    # The identity provider of the console's sign-in (CAREPATH_OIDC_*), if any.
    oidc: OidcConfig | None = None
    # The identifier system of the Patient in FHIR (CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM).
    fhir_patient_system: str = CLIENT_SYSTEM
    # The process's tracing (OTEL_* variables, workers.tracing); None: off.
    tracing: Tracing | None = None

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
            codec_ui_origin=self.codec_ui_origin,
            limits=self.limits,
            history_event_limit=self.history_event_limit,
            sdk_metrics_url=self.sdk_metrics_url,
            console_secret=self.console_secret,
            console_idle_minutes=self.console_idle_minutes,
            oidc=self.oidc,
            fhir_patient_system=self.fhir_patient_system,
        )


def console_secret(settings: Settings) -> bytes | None:
    """The console's session key from CAREPATH_CONSOLE_SESSION_SECRET, if set; StartupError
    if it is too short to sign with."""
    if settings.console_session_secret is None:
        return None
    secret = settings.console_session_secret.get_secret_value().encode()
    if len(secret) < 32:
        raise StartupError(
            "CAREPATH_CONSOLE_SESSION_SECRET must be at least 32 bytes (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return secret


async def open_runtime(
    settings: Settings,
    temporal_address: str,
    database_url: str,
    *,
    connect_timeout: float = 10.0,
    owner_url: str | None = None,
    sdk_metrics: SdkMetrics | None = None,
    tracing: Tracing | None = None,
) -> Runtime:
    """Connect to both servers, apply pending migrations and seal the plain-hash chains
    stored before migration 0014 (once); the caller closes `pool`.

    The pool connects to `database_url` (the application's role). Migrations run as the
    owner at `owner_url` when given; without it the pool's role applies them, which the
    application's role cannot: it only confirms that the schema is current.

    With `sdk_metrics`, the client runs on that Temporal runtime, which exports the SDK's
    metrics for this process's `/metrics`.
    With `tracing`, the client (and any worker built on it) carries its interceptor.
    """
    programs = load_catalog(settings.programs_dir)
    # Before connecting: a half-configured provider is reported on its own.
    oidc = oidc_config(settings)
    reachable = await connect(
        temporal_address,
        settings.temporal_namespace,
        PLAIN_CONVERTER,
        timeout=connect_timeout,
        runtime=sdk_metrics.runtime if sdk_metrics is not None else None,
        interceptors=[tracing.interceptor()] if tracing else (),
    )
    if owner_url is not None and owner_url != database_url:
        await migrate_url(owner_url)
    pool = await create_pool(database_url, settings.db_pool_min, settings.db_pool_max)
    try:
        await migrate(pool)
        # After both servers answered, so a failed start reports only its one-line cause.
        key = checkpoint_key(settings, required=False)
        config = reachable.config()
        config["data_converter"] = data_converter(payload_keyring(settings))
        chain = require_chain_key(settings)
        await seal_legacy_chains(pool, chain)
    except BaseException:
        await pool.close()
        raise
    return Runtime(
        # The same connection; every payload through it is encrypted.
        temporal=Client(**config),
        pool=pool,
        store=EventStore(pool, chain_key=chain),
        programs=programs,
        task_queue=settings.temporal_task_queue,
        checkpoint_key=key,
        rpc_timeout=settings.temporal_rpc_timeout,
        codec_ui_origin=settings.effective_codec_ui_origin,
        limits=HttpLimits(
            max_body_bytes=settings.max_body_bytes,
            max_json_depth=settings.max_json_depth,
            auth_failure_limit=settings.auth_failure_limit,
            auth_failure_window_seconds=settings.auth_failure_window_seconds,
        ),
        history_event_limit=settings.history_event_limit,
        sdk_metrics_url=sdk_metrics.url if sdk_metrics is not None else None,
        console_secret=console_secret(settings),
        console_idle_minutes=settings.console_idle_minutes,
        oidc=oidc,
        fhir_patient_system=settings.fhir_patient_identifier_system,
        tracing=tracing,
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
    if runtime.tracing is not None:
        # Neither the probes nor the metrics scrape: called every few seconds, nothing to follow.
        runtime.tracing.instrument_app(app, untraced=PROBE_PATHS | {"/metrics"})
    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off")
    return _ApiServer(config)
