"""`carepath db rebuild-projections | checkpoint | verify`: the event store's maintenance.

`rebuild-projections` refills every read model from the events; `checkpoint` signs the
head of every stream, publishes it to the checkpoint directory (and webhook) and can export
it for safekeeping outside the database; `verify` recomputes the keyed hash chains, checks
the sequence of checkpoints against each other and their published copies, and compares
the streams with the newest or an exported checkpoint, exiting 1 and naming the episode,
the first bad seq and why (or the bad checkpoint) on any anomaly.
Long walks over all streams print a progress line to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from cli.episodes import CliError
from store.checkpoints import (
    export_checkpoint,
    load_checkpoint,
    load_checkpoint_dir,
    take_checkpoint,
)
from store.db import Pool, create_pool
from store.errors import SchemaNotCurrent
from store.projections import rebuild_projections
from store.verification import (
    StreamVerification,
    verify_all,
    verify_checkpoints,
    verify_stream,
)
from workers.checkpoints import chain_key, checkpoint_key, publish_checkpoint
from workers.errors import StartupError
from workers.settings import Settings

COMMANDS = ("rebuild-projections", "checkpoint", "verify")


def add_db_commands(db_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register this module's `carepath db` subcommands."""
    db_sub.add_parser(
        "rebuild-projections",
        help="rebuild every read model from the events, beside the live ones, then swap them in",
    )
    checkpoint = db_sub.add_parser("checkpoint", help="sign and store the head of every stream now")
    checkpoint.add_argument(
        "--export", metavar="FILE", type=Path, help="also write it as JSON to FILE"
    )
    verify = db_sub.add_parser(
        "verify", help="recompute hash chains and compare them with the latest checkpoint"
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="verify every stream")
    which.add_argument("episode_id", nargs="?", help="verify this episode's stream")
    verify.add_argument(
        "--checkpoint",
        "--checkpoint-file",
        dest="checkpoint",
        metavar="FILE",
        type=Path,
        help="compare with this checkpoint kept outside the database instead of the newest "
        "one (the stored one of its number must match it too)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON for scripts")


async def run_db(settings: Settings, args: argparse.Namespace) -> int:
    """Run `carepath db <args.db_command>`; the exit code."""
    async with _pool(settings) as pool:
        if args.db_command == "rebuild-projections":
            return await _rebuild(pool)
        if args.db_command == "checkpoint":
            return await _checkpoint(settings, pool, args.export)
        return await _verify(settings, pool, args)


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


class ProgressLine:
    """`label: done/total streams` on stderr: redrawn in place on a terminal, else a line
    at most every few seconds (CI logs)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < (0.1 if self._tty else 5.0):
            return
        self._last = now
        pct = 100 * done // total if total else 100
        text = f"{self._label}: {done}/{total} streams ({pct}%)"
        if self._tty:
            print(f"\r{text}", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


async def _rebuild(pool: Pool) -> int:
    started = time.monotonic()
    result = await rebuild_projections(pool, progress=ProgressLine("rebuilding projections"))
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


async def _verify(settings: Settings, pool: Pool, args: argparse.Namespace) -> int:
    key = checkpoint_key(settings, required=args.checkpoint is not None)
    chain = chain_key(settings, generate=False)
    if chain is None:
        raise CliError(
            "no chain key: set CAREPATH_CHAIN_KEY to the key the events were hashed with "
            "(with the embedded PostgreSQL it is <data dir>/chain.key)"
        )
    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else None
    problems: tuple[str, ...] = ()
    if key is None:
        print(
            "carepath: no checkpoint key (CAREPATH_CHECKPOINT_KEY): checking the hash chains "
            "only; truncated or re-hashed streams need a checkpoint to be seen",
            file=sys.stderr,
        )
    else:
        published = load_checkpoint_dir(settings.effective_checkpoint_dir)
        copies = [*published, *([checkpoint] if checkpoint is not None else [])]
        sequence = await verify_checkpoints(pool, key, copies)
        problems = sequence.problems
        if checkpoint is None:
            checkpoint = sequence.newest
    if args.all:
        results = await verify_all(
            pool, key, chain_key=chain, checkpoint=checkpoint, progress=ProgressLine("verifying")
        )
    else:
        if checkpoint is not None and key is not None:
            checkpoint.verify(key)
        result = await verify_stream(pool, args.episode_id, checkpoint, chain_key=chain)
        if result.ok and result.head_seq == 0:
            raise CliError(f"episode {args.episode_id} has no stored events: check the id")
        results = [result]
    status = _report(results, args.json, problems)
    return 1 if problems else status


def _report(
    results: list[StreamVerification], as_json: bool, problems: tuple[str, ...] = ()
) -> int:
    bad = [r for r in results if not r.ok]
    if as_json:
        print(
            json.dumps(
                {
                    "ok": not bad and not problems,
                    "checkpoint_problems": list(problems),
                    "streams": len(results),
                    "events": sum(r.events_checked for r in results),
                    "anomalies": [
                        {
                            "episode_id": r.episode_id,
                            "first_bad_seq": r.first_bad_seq,
                            "reason": r.reason,
                        }
                        for r in bad
                    ],
                },
                indent=2,
            )
        )
        return 1 if bad else 0
    for problem in problems:
        print(f"checkpoints: {problem}")
    for result in bad:
        print(result.describe())
    events = sum(r.events_checked for r in results)
    compared = {r.checkpoint_id for r in results if r.checkpoint_id is not None}
    against = f" against checkpoint #{min(compared)}" if compared else ""
    if bad:
        print(f"{len(bad)} of {len(results)} stream(s) failed verification{against}")
        return 1
    print(f"verified {len(results)} stream(s), {events} event(s){against}: all intact")
    return 0
