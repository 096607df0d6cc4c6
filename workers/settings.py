"""CarePath's settings, read once per process from `CAREPATH_*` environment variables.

Leaving `temporal_address` or `database_url` unset means "embedded": `carepath up`
starts that server itself, with its data in `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from workers.secret_files import SecretFilesSource

SEARCH_ATTRIBUTES: dict[str, str] = {
    "CarePathwayStage": "Keyword",
    "ProgramId": "Keyword",
    "PrimaryClinician": "Keyword",
    "EscalationLevel": "Int",
    "NextDeadline": "Datetime",
}

# Long enough for a command whose append waits out a short database hiccup, short enough
# that a caller learns about a stopped worker before its own HTTP client gives up.
DEFAULT_TEMPORAL_RPC_TIMEOUT = 10.0


def search_attribute_args() -> list[str]:
    """The dev server's command-line flags that register every custom search attribute."""
    return [
        arg
        for name, kind in SEARCH_ATTRIBUTES.items()
        for arg in ("--search-attribute", f"{name}={kind}")
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREPATH_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Every secret setting may also come from a file, `CAREPATH_<NAME>_FILE`
        (workers.secret_files): how Docker and Kubernetes mount secrets."""
        return (
            init_settings,
            env_settings,
            SecretFilesSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    data_dir: Path = Field(
        default=Path(".carepath"),
        description="Where the embedded servers keep their data (CAREPATH_DATA_DIR, --data-dir).",
    )

    # Temporal
    temporal_address: str | None = Field(
        default=None,
        description="host:port of an external Temporal frontend; unset starts the dev server.",
    )
    temporal_namespace: str = "default"
    temporal_task_queue: str = "carepath-episodes"
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    temporal_ui: bool = True
    temporal_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to keep trying an external Temporal address."
    )
    temporal_rpc_timeout: float = Field(
        default=DEFAULT_TEMPORAL_RPC_TIMEOUT,
        gt=0,
        description="Seconds an API call into Temporal (a command, a read, a listing) may "
        "take; past it the caller gets 503 and may retry with the same Idempotency-Key.",
    )

    history_event_limit: int | None = Field(
        default=None,
        ge=20,
        description="Events after which an episode's run continues as new (docs/versioning.md, "
        '"Continue-as-new"); applies to episodes referred from now on. Unset: the bound '
        "chosen by `python -m bench.scale` (workflows.messages.DEFAULT_HISTORY_EVENT_LIMIT).",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Where the worker serves Prometheus `/metrics` (docs/metrics.md).",
    )
    worker_metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of the worker's `/metrics`; 0: none."
    )
    workflow_sandbox: bool = Field(
        default=False,
        description="Run the worker's workflows in the Temporal SDK's sandbox, which "
        "refuses non-deterministic calls as they happen, at 2-3 ms of CPU per command. The "
        "test suite, the replay tier and `audit determinism` always use it.",
    )
    worker_new_work_limit: int = Field(
        # workers.activations.NEW_WORK_LIMIT, not imported: the CLI reads these settings
        # and starts without the Temporal SDK.
        default=4,
        ge=0,
        description="Episodes that may wait for their append before the worker starts on "
        "new work (a command, a deadline): it finishes what it started first, so commands "
        "that arrive together are answered one after another rather than all late. 0: "
        "arrival order.",
    )
    worker_max_cached_workflows: int = Field(
        default=1000,
        ge=0,
        description="Episodes whose workflow the worker keeps in memory between tasks; an "
        "evicted one is replayed from its history when it next has work (a command, a "
        "deadline). Bounds the worker's memory whatever the number of live episodes.",
    )

    # PostgreSQL
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of an external database; unset starts an embedded server.",
    )
    postgres_port: int = Field(default=55432, ge=1, le=65535)
    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the `carepath episode ...` commands reach the API.",
    )

    # FHIR (README "FHIR"): the identifier system of the client's Patient resource
    fhir_patient_identifier_system: str = Field(
        default="urn:carepath:client-ref",
        min_length=1,
        description="Identifier system of the Patient in FHIR exports and /fhir reads; its "
        "value is the episode's client_ref. Set it to the system a receiving EHR knows "
        "client_ref under (e.g. its MRN system).",
    )

    # The staff console (docs/console.md)
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Key (32+ bytes) that signs the console's session cookies; give every "
        "API replica the same one. Unset: a fresh key per process (sessions end on restart).",
    )
    console_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="Idle minutes after which a console session ends."
    )

    # Console sign-in through an OpenID Connect provider (docs/console.md); all unset:
    # the console signs in with a token only.
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the identity provider; its endpoints are read from "
        "<issuer>/.well-known/openid-configuration. Set, the console offers sign-in through it.",
    )
    oidc_client_id: str | None = Field(
        default=None, description="The console's client id at the provider (the ID token's aud)."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The console's client secret; unset: a public client (PKCE)."
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="The console's callback as registered at the provider, e.g. "
        "https://carepath.example/console/oidc/callback.",
    )
    oidc_scopes: str = Field(
        default="openid profile email", description="Scopes asked for, space-separated."
    )
    oidc_provider_name: str | None = Field(
        default=None,
        description='The provider as the sign-in page names it ("Sign in with <name>"); '
        "unset: the issuer's host name.",
    )

    # Authentication of API callers (README "Authentication")
    users_file: Path | None = Field(
        default=None,
        description="YAML users file (token -> user id, role, programs); unset uses "
        "<data dir>/users.yaml, which `carepath up` creates with a demo user per role.",
    )
    jwks_url: str | None = Field(
        default=None,
        description="JWKS URL of the identity provider; set, bearer tokens are RS256 JWTs "
        "verified against it (and the users file is not used).",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWTs.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs.")
    jwt_role_claim: str = Field(default="carepath_role", description="Claim naming the role.")
    jwt_programs_claim: str = Field(
        default="carepath_programs", description='Claim listing program ids ("*" for all).'
    )
    jwks_cache_seconds: int = Field(default=300, ge=0, description="How long JWKS keys are kept.")
    token: SecretStr | None = Field(
        default=None, description="Bearer token the `carepath episode ...` commands send."
    )

    # Checkpoints (docs/event-store.md)
    checkpoint_key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key that signs checkpoints; unset with the embedded PostgreSQL "
        "means a key generated once into <data dir>/checkpoint.key (mode 0600).",
    )
    checkpoint_interval_minutes: float = Field(
        default=60.0,
        ge=0,
        description="How often the worker takes a checkpoint when streams moved (0: never).",
    )

    # Notifications (docs/event-store.md)
    notify_channel: Literal["log", "webhook", "smtp"] = Field(
        default="log", description="Where staff notifications go: log lines, a webhook, e-mail."
    )
    notify_link_base_url: str | None = Field(
        default=None,
        description="Base of the episode link in notifications; unset uses CAREPATH_API_URL.",
    )
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks signing secret (`whsec_<base64>`; any other string is "
        "used as its UTF-8 bytes): HMAC-SHA256 key of the `webhook-signature` header.",
    )
    notify_webhook_timeout: float = Field(default=10.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = Field(default=10.0, gt=0)
    smtp_from: str = "carepath@localhost"
    smtp_recipients: dict[str, str] = Field(
        default_factory=dict,
        description='Recipient -> e-mail address, JSON, e.g. {"supervisor": "sup@example.org", '
        '"primary_clinician:cal.clinician": "cal@example.org"}.',
    )
    smtp_default_recipient: str | None = Field(
        default=None, description="Address for recipients missing from CAREPATH_SMTP_RECIPIENTS."
    )

    # Programs and logging
    programs_dir: Path | None = Field(
        default=None, description="A directory of program definitions; unset uses the built-ins."
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Webhook secret rotation and migration (docs/webhooks.md)
    notify_webhook_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Secrets being retired, JSON list: each adds a signature to "
        "`webhook-signature` until every receiver verifies with the new secret.",
    )
    notify_webhook_legacy_signature: bool = Field(
        default=False,
        description="Also send the pre-Standard-Webhooks `X-CarePath-Signature` (HMAC of the "
        "body alone, replayable) for receivers not yet moved; turn off once they are.",
    )
    # Payload encryption and the codec server (docs/payload-encryption.md)
    payload_keys: SecretStr | None = Field(
        default=None,
        description='The payload keys document inline, JSON: {"active": "<id>", "keys": '
        '{"<id>": "<base64 of 32 random bytes>", ...}}; set it or the file, not both.',
    )
    payload_keys_file: Path | None = Field(
        default=None,
        description="A file holding the payload keys document; unset with the embedded "
        "Temporal means <data dir>/payload-keys.json, generated once (mode 0600).",
    )
    payload_key_id: str | None = Field(
        default=None,
        description="Id of the key that encrypts new payloads; unset uses the document's "
        '"active" (or its only key). Older keys stay in the document to read old payloads.',
    )
    codec_ui_origin: str | None = Field(
        default=None,
        description="The one browser origin (the Temporal UI) the codec endpoints answer "
        "cross-origin; unset: http://127.0.0.1:<CAREPATH_TEMPORAL_UI_PORT>.",
    )
    codec_server_host: str = Field(
        default="127.0.0.1", description="Where `carepath codec-server` listens."
    )
    codec_server_port: int = Field(default=8089, ge=1, le=65535)
    # Request limits and audited command-line access (README "Authentication")
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest request body the API reads; a larger one is answered 413 "
        "before it is parsed.",
    )
    max_json_depth: int = Field(
        default=32,
        ge=4,
        description="Deepest nesting of arrays and objects a JSON request body may have "
        "(deeper: 400).",
    )
    auth_failure_limit: int = Field(
        default=10,
        ge=0,
        description="Failed authentications a client address may have within "
        "CAREPATH_AUTH_FAILURE_WINDOW_SECONDS before it gets 429 (0: no limit).",
    )
    auth_failure_window_seconds: float = Field(
        default=60.0, gt=0, description="The window failed authentications are counted in."
    )
    operator_id: str | None = Field(
        default=None,
        description="Who runs `carepath audit ...` on this machine, as the access log "
        "records it; unset uses the operating-system user.",
    )
    # The keyed hash chain and checkpoints kept outside the database (docs/event-store.md)
    chain_key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA-256 key of the events' hash chain, kept outside PostgreSQL; unset "
        "with the embedded PostgreSQL means a key generated once into <data dir>/chain.key "
        "(mode 0600). Required to append and to verify.",
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        description="Directory every signed checkpoint is also written to (one file each, mode "
        "0600, never replaced); unset uses <data dir>/checkpoints/.",
    )
    checkpoint_webhook_url: str | None = Field(
        default=None,
        description="URL each signed checkpoint is also POSTed to as JSON (unset: none).",
    )
    # Database roles (docs/event-store.md, "Database roles"): CAREPATH_DATABASE_URL is the
    # application's role (worker, API); migrations run as the schema's owner.
    database_owner_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of the role that owns the schema and applies "
        "migrations (`carepath up`, `carepath db migrate`, and the worker and API when "
        "set); unset: the embedded server's owner role, or CAREPATH_DATABASE_URL itself.",
    )

    @property
    def effective_users_file(self) -> Path:
        return self.users_file or self.data_dir / "users.yaml"

    @property
    def effective_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def external_owner_url(self) -> str | None:
        """Where migrations run on an external database: the owner's URL, else the one URL
        the deployment gives; None with the embedded server (it knows its owner role)."""
        if self.database_url is None:
            return None
        chosen = self.database_owner_url or self.database_url
        return chosen.get_secret_value()

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def effective_codec_ui_origin(self) -> str:
        return self.codec_ui_origin or f"http://127.0.0.1:{self.temporal_ui_port}"
