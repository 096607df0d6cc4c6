"""Start what the settings do not point elsewhere: the data dir, PostgreSQL, Temporal.

`start_local_servers` starts the embedded servers that no external URL or address
replaces, under the caller's supervisor: from then on the supervisor restarts them if they
die (same data, same port) and stops them last. The caller (`cli.up`) runs the worker and
the API against what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.embedded_temporal import EmbeddedTemporal
from devstack.files import secure_data_dir
from devstack.supervisor import Supervisor
from workers.errors import StartupError
from workers.settings import Settings


@dataclass(frozen=True)
class LocalServers:
    """Where the servers are: the database URL and, if started here, the Temporal dev server."""

    data_dir: Path
    # The application's role (worker, API) and the schema owner's (migrations).
    database_url: str
    temporal: EmbeddedTemporal | None
    owner_database_url: str | None = None


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir if needed, prove it is writable, and make it private."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        secure_data_dir(path)
    except OSError as exc:
        raise StartupError(
            f"data dir {path} is not writable ({exc.strerror or exc}); "
            "choose another with --data-dir or CAREPATH_DATA_DIR"
        ) from None
    return path.resolve()


# Seconds each embedded server may take to stop before it is killed (within the
# supervisor's overall budget). PostgreSQL's fast shutdown writes a checkpoint first.
POSTGRES_STOP_S = 5.0
TEMPORAL_STOP_S = 3.0


async def start_local_servers(
    settings: Settings, supervisor: Supervisor, *, codec_endpoint: str | None = None
) -> LocalServers:
    """The embedded PostgreSQL and Temporal dev server, unless external ones are configured.

    Started in dependency order and handed to `supervisor`, which stops them (also when
    this raises) and, once it watches, restarts them. The dev server's UI decodes
    payloads through `codec_endpoint`.
    """
    data_dir = prepare_data_dir(settings.data_dir)
    owner_url: str | None
    if settings.database_url is None:
        postgres = EmbeddedPostgres(data_dir, settings.postgres_port)
        await supervisor.start("postgres", postgres, stop_timeout_s=POSTGRES_STOP_S)
        database_url, owner_url = postgres.url, postgres.owner_url
    else:
        database_url = settings.database_url.get_secret_value()
        owner_url = settings.external_owner_url

    temporal: EmbeddedTemporal | None = None
    if settings.temporal_address is None:
        temporal = EmbeddedTemporal(
            data_dir,
            settings.temporal_port,
            settings.temporal_ui_port,
            ui=settings.temporal_ui,
            codec_endpoint=codec_endpoint,
        )
        await supervisor.start("temporal", temporal, stop_timeout_s=TEMPORAL_STOP_S)
    return LocalServers(data_dir, database_url, temporal, owner_url)
