"""Event-store throughput next to raw asyncpg INSERTs of the same rows, in the same run.

CarePath's append: per-stream advisory lock, head read, idempotency check, keyed chain
(HMAC-SHA-256), INSERT, and the read models folded in the same transaction. The baseline: plain INSERTs
of the same rows (precomputed, no hashing, no projections) into a copy of the events
table with the same keys and indexes but no triggers, with the same transaction
granularity. Both run on one embedded PostgreSQL, scenario by scenario. Also: appends
without projections (to show what the read models cost) and verification throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_port
from domain.events import Event, dump_event
from store.checkpoints import take_checkpoint
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.migrations import migrate
from store.projections import rebuild_projections
from store.verification import verify_all
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events

SESSIONS = 60  # about 140 events per stream
STREAMS = 16  # per scenario, appended by 1 or 8 concurrent writers
BATCH = 10
KEY = b"bench-checkpoint-key"
_RAW_INSERT = (
    "INSERT INTO raw_events (episode_id, seq, event_type, schema_version, payload, occurred_at, "
    "actor_id, actor_role, command_id, prev_hash, hash, hash_alg) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'hmac-sha256')"
)


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[Pool]:
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp), free_port())
        await postgres.start()
        try:
            # Set up as the owner; measured as the application's role, as in production.
            owner = await create_pool(postgres.owner_url, max_size=1)
            try:
                await migrate(owner)
                await owner.execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
            finally:
                await owner.close()
            pool = await create_pool(postgres.url, max_size=12)
            try:
                yield pool
            finally:
                await pool.close()
        finally:
            await postgres.stop()


def _raw_row(event: Event) -> tuple[Any, ...]:
    return (
        event.episode_id,
        event.seq,
        event.type,
        event.schema_version,
        dump_event(event),
        event.occurred_at,
        event.actor.user_id,
        str(event.actor.role),
        event.command_id,
        "0" * 64,
        "0" * 64,
    )


def _batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


Appender = Callable[[str, list[Event]], Awaitable[None]]


async def _throughput(
    streams: dict[str, list[Event]], writers: int, batch: int, append: Appender
) -> float:
    """Events/s appending every stream in order, `batch` events a call, by `writers`
    concurrent writers that each take the next whole stream."""
    queue = list(streams.items())

    async def writer() -> None:
        while queue:
            episode_id, events = queue.pop(0)
            for chunk in _batches(events, batch):
                await append(episode_id, chunk)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    return sum(len(e) for e in streams.values()) / elapsed


async def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    async with _database() as pool:
        store = EventStore(pool, chain_key=CHAIN_KEY)
        bare_store = EventStore(pool, chain_key=CHAIN_KEY, projections=False)

        async def raw(_episode_id: str, events: list[Event]) -> None:
            rows = [_raw_row(e) for e in events]
            async with pool.acquire() as conn:
                if len(rows) == 1:
                    await conn.execute(_RAW_INSERT, *rows[0])
                else:
                    async with conn.transaction():
                        await conn.executemany(_RAW_INSERT, rows)

        async def carepath(episode_id: str, events: list[Event]) -> None:
            await store.append(episode_id, events)

        async def no_projections(episode_id: str, events: list[Event]) -> None:
            await bare_store.append(episode_id, events)

        for streams in (1, 8):
            for batch in (1, BATCH):
                name = f"{streams}x{batch}"
                # Alternate the three so drift on the machine affects them alike.
                for label, appender in (
                    ("raw", raw),
                    ("carepath", carepath),
                    ("bare", no_projections),
                ):
                    data = {
                        f"{label}-{name}-{i}": episode_events(
                            f"{label}-{name}-{i}", sessions=SESSIONS
                        )
                        for i in range(STREAMS)
                    }
                    figures[f"{label}_{name}"] = await _throughput(data, streams, batch, appender)

        # Verification and rebuild walk every CarePath stream written above.
        await take_checkpoint(pool, KEY)
        started = time.perf_counter()
        results = await verify_all(pool, KEY, chain_key=CHAIN_KEY)
        elapsed = time.perf_counter() - started
        assert all(r.ok for r in results), [r.describe() for r in results if not r.ok]
        verified = sum(r.events_checked for r in results)
        figures["verify_events_per_s"] = verified / elapsed
        figures["verify_events"] = verified
        started = time.perf_counter()
        rebuilt = await rebuild_projections(pool)
        figures["rebuild_events_per_s"] = rebuilt.events / (time.perf_counter() - started)
    return figures


def report(figures: dict[str, float]) -> None:
    print("event store append throughput, events/s (embedded PostgreSQL, same run):")
    print(
        f"  {'scenario':<39}{'raw INSERT':>12}{'CarePath':>11}{'ratio':>8}"
        f"{'no read models':>16}{'ratio':>8}"
    )
    for streams in (1, 8):
        for batch in (1, BATCH):
            name = f"{streams}x{batch}"
            raw, full, bare = (figures[f"{k}_{name}"] for k in ("raw", "carepath", "bare"))
            label = f"{streams} concurrent stream{'s' if streams > 1 else ''}, " + (
                "single appends" if batch == 1 else f"batches of {batch}"
            )
            print(
                f"  {label:<39}{raw:>12,.0f}{full:>11,.0f}{raw / full:>7.1f}x"
                f"{bare:>16,.0f}{raw / bare:>7.1f}x"
            )
    print("  (ratio = raw INSERT throughput / CarePath throughput: the cost of the chain,")
    print("   the per-stream lock and idempotency check, and the read models)")
    print(
        f"verification (chain + signed checkpoint, all streams): "
        f"{figures['verify_events_per_s']:,.0f} events/s over {figures['verify_events']:,.0f} events"
    )
    print(f"rebuild-projections: {figures['rebuild_events_per_s']:,.0f} events/s")


if __name__ == "__main__":
    report(asyncio.run(run()))
