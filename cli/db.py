"""`carepath db rebuild-projections | checkpoint`: the event store's maintenance.

`rebuild-projections` refills every read model from the events; `checkpoint` signs the
head of every stream, publishes it to the checkpoint directory (and webhook) and can export
it for safekeeping outside the database. Verifying the chains and checkpoints is
`carepath audit verify` (`db verify` is its deprecated spelling). A rebuild shows a
progress bar on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from cli.output import progress
from store.checkpoints import (
    export_checkpoint,
    take_checkpoint,
)
from store.db import Pool, create_pool
from store.errors import SchemaNotCurrent
from store.projections import rebuild_projections
from workers.checkpoints import checkpoint_key, publish_checkpoint
from workers.errors import StartupError
from workers.settings import Settings

COMMANDS = ("rebuild-projections", "checkpoint")


async def run_db(settings: Settings, args: argparse.Namespace) -> int:
    """Run `carepath db <args.db_command>`; the exit code."""
    async with _pool(settings) as pool:
        if args.db_command == "rebuild-projections":
            return await _rebuild(pool)
        return await _checkpoint(settings, pool, args.export)


def database_url(settings: Settings) -> str:
    """CAREPATH_DATABASE_URL, or the embedded server that `carepath up` runs (as the
    application's role: these commands need no more)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from devstack.embedded_postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.data_dir, settings.postgres_port).url


def owner_database_url(settings: Settings) -> str:
    """Where migrations run: the owner's URL (or the one URL given), or the embedded
    server's owner role."""
    external = settings.external_owner_url
    if external is not None:
        return external
    from devstack.embedded_postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.data_dir, settings.postgres_port).owner_url


@contextlib.asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[Pool]:
    try:
        pool = await create_pool(database_url(settings), max_size=2)
    except StartupError:
        raise
    except Exception as exc:
        hint = "" if settings.database_url else " (is `carepath up` running with this data dir?)"
        raise StartupError(f"{exc}{hint}") from None
    try:
        yield pool
    except asyncpg.UndefinedTableError as exc:
        raise SchemaNotCurrent(
            f"the database schema is not current ({exc}): run `carepath db migrate` first"
        ) from None
    finally:
        await pool.close()


async def _rebuild(pool: Pool) -> int:
    started = time.monotonic()
    with progress("rebuilding projections", "streams") as step:
        result = await rebuild_projections(pool, progress=step)
    print(
        f"rebuilt the read models of {result.streams} episode(s) from {result.events} event(s) "
        f"in {time.monotonic() - started:.1f} s"
    )
    for episode_id in result.failed_streams:
        print(
            f"episode {episode_id}: events stop folding part-way; see projection_failures",
            file=sys.stderr,
        )
    return 1 if result.failed_streams else 0


async def _checkpoint(settings: Settings, pool: Pool, export: Path | None) -> int:
    key = checkpoint_key(settings)
    assert key is not None  # required=True raises instead
    checkpoint = await take_checkpoint(pool, key)
    assert checkpoint is not None  # only a scheduled checkpoint may be skipped
    print(
        f"{checkpoint.name} taken at {checkpoint.taken_at.isoformat()}: "
        f"{checkpoint.streams} stream(s), {checkpoint.events} event(s), key id {checkpoint.key_id}"
    )
    for failure in await publish_checkpoint(settings, checkpoint):
        print(f"carepath: could not publish {checkpoint.name}: {failure}", file=sys.stderr)
    if export is not None:
        try:
            export_checkpoint(checkpoint, export)
        except OSError as exc:
            raise StartupError(
                f"cannot write {export} ({exc.strerror}): choose a writable path for --export"
            ) from None
        print(f"exported to {export}: keep this copy outside the database")
    return 0
