"""The audit subcommands' implementations (parsed in `cli.audit`).

They connect to PostgreSQL and Temporal directly and only read, but for their own
access records (cli.audit_access), written before anything read is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from audit.asof import require_offset
from audit.determinism import DeterminismReport, check_determinism
from audit.errors import AuditError, InvalidAsOf
from audit.export import ExportFormat, export_episode
from audit.replay import AuditReplay, replay_episode
from audit.verify import StreamReport, VerifyReport, verify_all, verify_episode
from cli.audit_access import audited, operator_id
from cli.output import print_table, progress
from devstack.embedded_postgres import EmbeddedPostgres
from domain.actors import Actor, Role
from programs import load_catalog
from store.checkpoints import load_checkpoint, load_checkpoint_dir
from store.db import Pool, create_pool
from store.event_store import EventStore
from workers.checkpoints import KEY_FILE, chain_key
from workers.checkpoints import checkpoint_key as stored_checkpoint_key
from workers.payload_codec import payload_keyring
from workers.replay import replay
from workers.settings import Settings
from workers.temporal import connect, data_converter
from workflows.client import EpisodeClient


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one audit subcommand; returns the exit status."""
    handlers = {
        "replay": _replay,
        "verify": _verify,
        "determinism": _determinism,
        "export": _export,
    }
    return asyncio.run(handlers[args.audit_command](settings, args))


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one `carepath up` runs in the data dir."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return EmbeddedPostgres(settings.data_dir, settings.postgres_port).url


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[EventStore]:
    # An audit only reads: it never generates a chain key.
    key = chain_key(settings, generate=False)
    if key is None:
        raise AuditError(
            "no chain key: set CAREPATH_CHAIN_KEY to the key the events were hashed with "
            "(with the embedded PostgreSQL it is <data dir>/chain.key)"
        )
    pool: Pool = await create_pool(database_url(settings), min_size=1, max_size=4)
    try:
        yield EventStore(pool, chain_key=key)
    finally:
        await pool.close()


async def _temporal(settings: Settings) -> Client:
    return await connect(
        settings.effective_temporal_address,
        settings.temporal_namespace,
        data_converter(payload_keyring(settings)),
        timeout=settings.temporal_connect_timeout,
    )


def parse_as_of(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidAsOf(
            f"--as-of {text!r} is not an ISO 8601 time: use e.g. 2025-03-01T14:30:00Z"
        ) from None
    return require_offset(moment)


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    as_of = parse_as_of(args.as_of) if args.as_of else None
    episodes = None
    if as_of is None:
        episodes = EpisodeClient(await _temporal(settings), settings.temporal_task_queue)
    async with _store(settings) as store, audited(store.pool, settings, args, "read"):
        report = await replay_episode(
            store, args.episode_id, as_of, episodes, key=checkpoint_key(settings)
        )
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_replay(report)
    return 0 if report.ok else 1


def _print_replay(report: AuditReplay) -> None:
    moment = report.as_of.isoformat() if report.as_of else "now"
    print(f"episode {report.episode_id} as of {moment}")
    print(f"chain: {report.verification.describe()}")
    print(f"events: {report.events_included} of {report.events_total}")
    _table(
        ("SEQ", "EVENT", "OCCURRED AT", "RECORDED AT", "ACTOR", "HASH"),
        [
            (
                str(item.seq),
                item.type,
                item.occurred_at.isoformat(),
                item.recorded_at.isoformat(),
                f"{item.actor_id} ({item.actor_role})",
                item.hash[:12],
            )
            for item in report.timeline
        ],
    )
    print("state:")
    state = report.state.model_dump(mode="json") if report.state else None
    print(json.dumps(state, indent=2))
    live = report.live
    if live is None:
        return
    if not live.compared:
        print(f"live workflow: not compared ({live.unavailable})")
    elif live.matches:
        print("live workflow: the folded state matches the workflow's state")
    else:
        print(f"live workflow: {len(live.differences)} field(s) DIFFER")
        _table(
            ("FIELD", "STORED", "LIVE"),
            [(d.path, json.dumps(d.stored), json.dumps(d.live)) for d in live.differences],
        )


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    key = checkpoint_key(settings)
    checkpoint = None
    if args.checkpoint:
        if key is None:
            raise AuditError(
                "a checkpoint file is trusted only once its signature is checked: "
                "set CAREPATH_CHECKPOINT_KEY to the key it was signed with"
            )
        checkpoint = await asyncio.to_thread(load_checkpoint, Path(args.checkpoint))
    published = (
        await asyncio.to_thread(load_checkpoint_dir, settings.effective_checkpoint_dir)
        if key is not None
        else []
    )
    async with _store(settings) as store, audited(store.pool, settings, args, "read") as access:
        if args.all:
            with progress("verifying", "streams", "verified {done}/{total} {unit}") as step:
                report = await verify_all(
                    store, key=key, checkpoint=checkpoint, external=published, progress=step
                )
            access.read(stream.episode_id for stream in report.streams)
        else:
            one = await verify_episode(store, args.episode_id, key=key, checkpoint=checkpoint)
            report = VerifyReport(ok=one.ok, streams=(one,))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        for problem in report.checkpoint_problems:
            print(f"checkpoints: {problem}")
        for stream in report.streams:
            print(stream.describe())
        if key is None:
            print(
                "note: no CAREPATH_CHECKPOINT_KEY: chains checked, not compared with a checkpoint",
                file=sys.stderr,
            )
    status = _anomalies("stream(s) failed verification", report.streams)
    if report.checkpoint_problems:
        print(
            f"carepath: {len(report.checkpoint_problems)} problem(s) with the checkpoints:",
            file=sys.stderr,
        )
        for problem in report.checkpoint_problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return status


def checkpoint_key(settings: Settings) -> bytes | None:
    """The checkpoint key (CAREPATH_CHECKPOINT_KEY, or the embedded one in the data dir).

    An audit only reads: it never generates the embedded key file, so without one the
    chains are checked but not compared with a checkpoint.
    """
    embedded_file = settings.data_dir / KEY_FILE
    if settings.checkpoint_key is None and not (
        settings.embedded_postgres and embedded_file.exists()
    ):
        return None
    return stored_checkpoint_key(settings, required=False)


def _anomalies(what: str, items: Sequence[StreamReport] | Sequence[Any]) -> int:
    bad = [item for item in items if not item.ok]
    if not bad:
        return 0
    print(f"carepath: {len(bad)} of {len(items)} {what}:", file=sys.stderr)
    for item in bad:
        print(f"  {item.describe()}", file=sys.stderr)
    return 1


async def _determinism(settings: Settings, args: argparse.Namespace) -> int:
    client = await _temporal(settings)
    # Histories hold what the commands carried: reading them is recorded like the store's.
    async with _store(settings) as store, audited(store.pool, settings, args, "read") as access:
        report: DeterminismReport = await check_determinism(
            client,
            None if args.all else args.episode_id,
            replay=functools.partial(replay, data_converter=client.data_converter),
            include_closed=args.include_closed,
        )
        if args.all:
            access.read(run.episode_id for run in report.runs)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        for run_report in report.runs:
            print(run_report.describe())
        if not report.runs:
            print("no CarePathway runs to check")
    return _anomalies("run(s) would break on replay", report.runs)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    fmt = ExportFormat(args.export_format)
    async with _store(settings) as store, audited(store.pool, settings, args, "export"):
        text = await export_episode(
            store,
            args.episode_id,
            fmt,
            exporter=Actor(user_id=operator_id(settings), role=Role.AUDITOR),
            exported_at=datetime.now(UTC),
            programs=load_catalog(settings.programs_dir),
            patient_system=settings.fhir_patient_identifier_system,
        )
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
    except OSError as err:
        raise AuditError(
            f"cannot write {args.output}: {err.strerror}; choose a writable path"
        ) from None
    print(f"wrote {args.output} ({fmt.value}, {len(text)} bytes)", file=sys.stderr)
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print_table(header, rows)
