"""The checkpoint and chain keys, and the scheduled checkpoint of a worker process.

The checkpoint key comes from CAREPATH_CHECKPOINT_KEY, the chain key (which keys every
event's hash) from CAREPATH_CHAIN_KEY. With the embedded PostgreSQL and no key set, each is
generated once into the data dir (`checkpoint.key`, `chain.key`, mode 0600) and reused, so
a laptop works without configuration; production sets both (and keeps a copy with the
auditors). They are separate secrets, and separate from any payload keys.

Every checkpoint taken is also published outside the database: written to the checkpoint
directory (CAREPATH_CHECKPOINT_DIR, default `<data dir>/checkpoints/`; one file per
checkpoint, mode 0600, never replaced) and, when CAREPATH_CHECKPOINT_WEBHOOK_URL is set,
POSTed there as JSON. A failed publication is logged and does not undo the checkpoint.

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

import httpx
import structlog

from store.background import in_background
from store.checkpoints import (
    Checkpoint,
    checkpoint_file_name,
    export_checkpoint,
    load_checkpoint,
    take_checkpoint,
)
from store.db import Pool
from workers.errors import StartupError
from workers.settings import Settings

log = structlog.get_logger("carepath.checkpoints")

KEY_FILE = "checkpoint.key"
CHAIN_KEY_FILE = "chain.key"
WEBHOOK_TIMEOUT_S = 10.0


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


def chain_key(settings: Settings, *, generate: bool = True) -> bytes | None:
    """The key of the events' hash chain (CAREPATH_CHAIN_KEY, or `<data dir>/chain.key` with
    the embedded PostgreSQL, generated there if `generate`); None if there is none."""
    if settings.chain_key is not None:
        return settings.chain_key.get_secret_value().encode("utf-8")
    path = settings.data_dir / CHAIN_KEY_FILE
    if settings.embedded_postgres and (generate or path.exists()):
        return _embedded_key(path, "CAREPATH_CHAIN_KEY")
    return None


def require_chain_key(settings: Settings) -> bytes:
    """The chain key, or StartupError saying how to set one."""
    key = chain_key(settings)
    if key is None:
        raise StartupError(
            "no chain key: set CAREPATH_CHAIN_KEY to a long random secret kept outside the "
            "database (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`); "
            "every event's hash is keyed with it"
        )
    return key


def _embedded_key(path: Path, variable: str = "CAREPATH_CHECKPOINT_KEY") -> bytes:
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
            log.info("key_generated", path=str(path))
    except OSError as exc:
        raise StartupError(
            f"cannot read or create the key {path} ({exc.strerror or exc}): "
            f"make the data dir writable or set {variable}"
        ) from None
    if not key:
        raise StartupError(f"the key file {path} is empty: delete it to generate one")
    return key.encode("utf-8")


async def publish_checkpoint(settings: Settings, checkpoint: Checkpoint) -> list[str]:
    """Write `checkpoint` to the checkpoint directory and POST it to the webhook, if set.

    Returns what failed (empty: published everywhere); each failure is also logged.
    """
    failures: list[str] = []
    try:
        path = await asyncio.to_thread(
            write_to_directory, settings.effective_checkpoint_dir, checkpoint
        )
        log.info("checkpoint_published", checkpoint=checkpoint.number, path=str(path))
    except (OSError, ValueError) as exc:
        failures.append(f"directory: {exc}")
    if settings.checkpoint_webhook_url:
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                response = await client.post(
                    settings.checkpoint_webhook_url, json=checkpoint.to_json()
                )
                response.raise_for_status()
        except httpx.HTTPError as exc:
            failures.append(f"webhook: {type(exc).__name__}: {exc}")
    for failure in failures:
        log.error("checkpoint_publish_failed", checkpoint=checkpoint.number, error=failure)
    return failures


def write_to_directory(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` into `directory` (created 0700) as a new file, mode 0600.

    A file for that number already there is kept: if it holds another checkpoint, the
    database lost the one it held (ValueError saying so), and the file stays as evidence.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / checkpoint_file_name(checkpoint)
    try:
        export_checkpoint(checkpoint, path, exclusive=True)
    except FileExistsError:
        if load_checkpoint(path).signature != checkpoint.signature:
            raise ValueError(
                f"{path} already holds another {checkpoint.name}: the database's checkpoints "
                "no longer match the ones published; run `carepath audit verify --all`"
            ) from None
    return path


async def _every(pool: Pool, key: bytes, interval_s: float, settings: Settings) -> None:
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
                number=taken.number,
                streams=taken.streams,
                events=taken.events,
            )
            await publish_checkpoint(settings, taken)


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
    async with in_background(_every(pool, key, interval, settings), "checkpoints"):
        yield
