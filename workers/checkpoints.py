"""The checkpoint key and the scheduled checkpoint of a worker process.

The key comes from CAREPATH_CHECKPOINT_KEY. With the embedded PostgreSQL and no key set,
one is generated once into `<data dir>/checkpoint.key` (mode 0600) and reused, so a laptop
works without configuration; production sets the key (and keeps a copy with the auditors).

Scheduled checkpoints run as a plain periodic task in the worker process rather than as a
Temporal Schedule: checkpoints guard the database against tampering independently of
Temporal, need no workflow history, and a transaction-scoped advisory lock plus "skip
if no stream moved" keep several workers from adding duplicate rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from store.checkpoints import take_checkpoint
from store.db import Pool
from workers.errors import StartupError
from workers.settings import Settings

log = structlog.get_logger("carepath.checkpoints")

KEY_FILE = "checkpoint.key"


def checkpoint_key(settings: Settings, *, required: bool = True) -> bytes | None:
    """The key that signs checkpoints; generated into the data dir in embedded mode.

    Raises StartupError when none is configured for an external database and `required`.
    """
    if settings.checkpoint_key is not None:
        return settings.checkpoint_key.get_secret_value().encode("utf-8")
    if settings.embedded_postgres:
        return _embedded_key(settings.data_dir / KEY_FILE)
    if required:
        raise StartupError(
            "no checkpoint key: set CAREPATH_CHECKPOINT_KEY to a long random secret "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return None


def _embedded_key(path: Path) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text(encoding="ascii").strip()
        else:
            key = secrets.token_hex(32)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(key + "\n")
            log.info("checkpoint_key_generated", path=str(path))
    except OSError as exc:
        raise StartupError(
            f"cannot read or create the checkpoint key {path} ({exc.strerror or exc}): "
            "make the data dir writable or set CAREPATH_CHECKPOINT_KEY"
        ) from None
    if not key:
        raise StartupError(f"the checkpoint key file {path} is empty: delete it to generate one")
    return key.encode("utf-8")


async def _every(pool: Pool, key: bytes, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            taken = await take_checkpoint(pool, key, skip_if_unchanged=True)
        # The schedule must outlive a database outage: log, and try again next time.
        except Exception as exc:
            log.warning("checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        if taken is not None:
            log.info(
                "checkpoint_taken",
                checkpoint_id=taken.checkpoint_id,
                streams=taken.streams,
                events=taken.events,
            )


@contextlib.asynccontextmanager
async def checkpoint_schedule(settings: Settings, pool: Pool) -> AsyncIterator[None]:
    """Take a checkpoint every CAREPATH_CHECKPOINT_INTERVAL_MINUTES while the block runs."""
    key = checkpoint_key(settings, required=False)
    interval = settings.checkpoint_interval_minutes * 60
    if key is None or interval <= 0:
        if key is None:
            log.warning("checkpoints_disabled", reason="CAREPATH_CHECKPOINT_KEY is not set")
        yield
        return
    task = asyncio.create_task(_every(pool, key, interval), name="checkpoints")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
