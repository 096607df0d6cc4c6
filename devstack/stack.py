"""Start what the settings do not point elsewhere: the data dir, PostgreSQL, Temporal.

`local_servers` is an async context: on entry it starts the embedded servers that no
external URL or address replaces, on exit it stops them in reverse order. The caller
(`cli.up`) runs the worker and the API against what it yields.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.embedded_temporal import EmbeddedTemporal
from workers.errors import StartupError
from workers.settings import Settings


@dataclass(frozen=True)
class LocalServers:
    """Where the servers are: the database URL and, if started here, the Temporal dev server."""

    data_dir: Path
    database_url: str
    temporal: EmbeddedTemporal | None


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


@contextlib.asynccontextmanager
async def local_servers(settings: Settings) -> AsyncIterator[LocalServers]:
    """The embedded PostgreSQL and Temporal dev server, unless external ones are configured."""
    data_dir = prepare_data_dir(settings.data_dir)
    async with contextlib.AsyncExitStack() as stack:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data_dir, settings.postgres_port)
            stack.push_async_callback(postgres.stop)
            await postgres.start()
            database_url = postgres.url
        else:
            database_url = settings.database_url.get_secret_value()

        temporal: EmbeddedTemporal | None = None
        if settings.temporal_address is None:
            temporal = EmbeddedTemporal(
                data_dir, settings.temporal_port, settings.temporal_ui_port, ui=settings.temporal_ui
            )
            stack.push_async_callback(temporal.stop)
            temporal.start()
        yield LocalServers(data_dir, database_url, temporal)
