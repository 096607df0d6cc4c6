"""Event-store throughput next to raw asyncpg INSERTs of the same rows, in the same run.

CarePath's append: keyed chain (HMAC-SHA-256) in Python, then one statement (head and
idempotency checks, INSERT; `store.event_store._APPEND_CONTINUING`), with the
projector folding the read models in the background of the same process, as in the
worker. The baseline: plain INSERTs of the same rows (precomputed, no hashing) into a copy
of the events table with the same keys and indexes but no triggers, with the same
transaction granularity. Both run on one embedded PostgreSQL, scenario by scenario.

Each scenario runs REPEATS times on each side, alternating, and reports the median run.
A run appends for RUN_S seconds and counts only the appends answered after its first
WARMUP_S (a steady-state window, so the projector's work behind the appends is inside it).

With 8 writers, a third side runs CarePath's appends with no projector running (`alone`),
for context: what the store itself sustains, the projector's share of the machine apart.

Projection lag: for every CarePath append, the time from its answer until the read models
include its last event (`projection_lag_p50_ms`, `_p99_ms`, measured under each load),
looked at every 20 ms by a watch that reads each event's transaction id once (`_LagWatch`).
Also: verification and rebuild throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from bench._stack import percentile
from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_port
from domain.events import Event, dump_event
from store.background import in_background
from store.checkpoints import take_checkpoint
from store.db import Connection, Pool, create_pool
from store.event_store import EventStore
from store.migrations import migrate
from store.projections import Projector, rebuild_projections, running_projector
from store.verification import verify_all
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from workers.heap import set_aside_live_objects

SESSIONS = 60  # about 170 events per stream
# Each run appends for RUN_S seconds and counts the events of the appends answered after
# its first WARMUP_S: a steady-state window. The projector folds behind the appends (its
# lag is a few hundred ms), so in the window it does about as much work as the window's
# events call for; a run timed from its first append to its last would leave the
# projector's work on its last events out, and a short run a large share of it (runs of
# 16 streams, under half a second, measured 0.58-0.65x raw INSERT on 8 streams of single
# events where runs four times longer measured 0.55x).
RUN_S = 2.0
WARMUP_S = 0.5
# Distinct streams the runs copy (under new episode ids) before they start.
TEMPLATES = 4
BATCH = 10
# Upper bounds on the rates (events/s), to make enough copies for a run of RUN_S.
MAX_RATE = {1: 15_000, BATCH: 60_000}
# Runs of each side per scenario; each figure is the median.
# With 3, the 8-stream single-event ratio of one `make bench` ranged 0.36-0.52 on the
# same commit; 5 runs make one slow run matter less.
REPEATS = 5
KEY = b"bench-checkpoint-key"
_RAW_INSERT = (
    "INSERT INTO raw_events (episode_id, seq, event_type, schema_version, payload, occurred_at, "
    "actor_id, actor_role, command_id, prev_hash, hash, hash_alg) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'hmac-sha256')"
)


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[tuple[Pool, str]]:
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
                yield pool, postgres.url
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


def _supply(templates: list[list[Event]], prefix: str, rate: int) -> dict[str, list[Event]]:
    """Enough streams for a run at up to `rate` events/s: copies of `templates` under new
    episode ids, made before the run is timed."""
    size = min(len(events) for events in templates)
    count = math.ceil(rate * RUN_S / size) + 8
    streams = {}
    for n in range(count):
        episode_id = f"{prefix}-{n}"
        streams[episode_id] = [
            event.model_copy(update={"episode_id": episode_id})
            for event in templates[n % len(templates)]
        ]
    return streams


@contextlib.contextmanager
def _set_aside() -> Iterator[None]:
    """Keep a run's input streams (made just before it: up to 120k events) out of the
    garbage collector's way while it runs.

    Otherwise they are new long-lived objects, and the first full collection of the run
    walks them all: about 150 ms, in the middle of the run, charged to whichever side
    allocates enough to set one off (CarePath, whose projector folds in the same
    process). They belong to the benchmark, not to the store it measures. Frozen
    (`gc.freeze`, as the worker does its starting objects) for the run, they are handed
    back to the collector after it."""
    set_aside_live_objects()
    try:
        yield
    finally:
        gc.unfreeze()


async def _throughput(
    streams: dict[str, list[Event]], writers: int, batch: int, append: Appender
) -> float:
    """Events/s in a steady-state window: `writers` concurrent writers each take the next
    whole stream and append it in order, `batch` events a call, for RUN_S seconds; the
    events of the appends answered between WARMUP_S and RUN_S are counted."""
    queue = list(streams.items())
    started = time.perf_counter()
    window = (started + WARMUP_S, started + RUN_S)
    counted = 0

    async def writer() -> None:
        nonlocal counted
        while time.perf_counter() < window[1]:
            if not queue:
                raise RuntimeError("the run ran out of streams: raise MAX_RATE")
            episode_id, events = queue.pop(0)
            for chunk in _batches(events, batch):
                await append(episode_id, chunk)
                answered = time.perf_counter()
                if answered >= window[1]:
                    return
                if answered >= window[0]:
                    counted += len(chunk)

    await asyncio.gather(*(writer() for _ in range(writers)))
    return counted / (RUN_S - WARMUP_S)


async def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    async with _database() as (pool, url):
        store = EventStore(pool, chain_key=CHAIN_KEY)
        # As in the worker: the projector folds the events the store beside it wrote.
        recent = store.keep_recent_events()
        lag = _LagWatch(pool)
        templates = [episode_events(f"template-{i}", sessions=SESSIONS) for i in range(TEMPLATES)]

        async def raw(_episode_id: str, events: list[Event]) -> None:
            rows = [_raw_row(e) for e in events]
            async with pool.acquire() as conn:
                if len(rows) == 1:
                    await conn.execute(_RAW_INSERT, *rows[0])
                else:
                    async with conn.transaction():
                        await conn.executemany(_RAW_INSERT, rows)

        async def carepath(episode_id: str, events: list[Event]) -> None:
            result = await store.append(episode_id, events)
            assert result.position is not None
            lag.appended(result.position)

        async def alone(episode_id: str, events: list[Event]) -> None:
            await store.append(episode_id, events)

        for streams in (1, 8):
            for batch in (1, BATCH):
                name = f"{streams}x{batch}"
                # With several writers, also CarePath's appends with no projector
                # running (`alone`, context): what the store itself sustains. Its events
                # are folded after the run, untimed, so the next run starts level.
                order: list[tuple[str, Appender]] = [("raw", raw), ("carepath", carepath)]
                if streams > 1:
                    order.append(("alone", alone))
                rates: dict[str, list[float]] = {label: [] for label, _ in order}
                lags: list[float] = []
                for repeat in range(REPEATS):
                    # Alternate the sides (the order flipping each time) so drift on the
                    # machine affects them alike; each reports its median run.
                    for label, appender in order if repeat % 2 == 0 else order[::-1]:
                        data = _supply(templates, f"{label}-{name}-{repeat}", MAX_RATE[batch])
                        if label != "carepath":
                            with _set_aside():
                                rates[label].append(
                                    await _throughput(data, streams, batch, appender)
                                )
                            if label == "alone":
                                await Projector(pool, recent=recent).catch_up()
                            continue
                        async with (
                            running_projector(pool, listen_dsn=url, recent=recent),
                            lag.watching(),
                        ):
                            with _set_aside():
                                rates[label].append(
                                    await _throughput(data, streams, batch, appender)
                                )
                            await lag.drained()
                        lags.extend(lag.take())
                for label, values in rates.items():
                    figures[f"{label}_{name}"] = statistics.median(values)
                figures[f"projection_lag_p50_ms_{name}"] = percentile(lags, 0.50)
                figures[f"projection_lag_p99_ms_{name}"] = percentile(lags, 0.99)
        figures["projection_lag_p50_ms"] = figures["projection_lag_p50_ms_8x1"]
        figures["projection_lag_p99_ms"] = max(
            figures["projection_lag_p99_ms_8x1"], figures["projection_lag_p99_ms_8x10"]
        )

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


class _LagWatch:
    """When each appended position reaches the read models, looked at every 20 ms.

    An event is folded once it is at or before the projector's tracking row in (tx,
    position) order. Each look reads the tracking row, and the transaction id of only the
    positions appended since the last look (each event is looked up once), and compares
    in this process. So the watch's cost grows with the events appended, not with the
    events waiting times the looks: asking PostgreSQL about every waiting position at
    every look took a fifth of the 8-stream throughput it was measuring."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        # position -> when its append was answered; its transaction id once read.
        self._pending: dict[int, float] = {}
        self._unread: list[int] = []
        self._tx: dict[int, int] = {}
        self._lags: list[float] = []

    def appended(self, position: int) -> None:
        self._pending[position] = time.perf_counter()
        self._unread.append(position)

    def watching(self) -> contextlib.AbstractAsyncContextManager[None]:
        return in_background(self._watch(), "lag-watch")

    async def drained(self, timeout: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout
        while self._pending and time.perf_counter() < deadline:  # noqa: ASYNC110 - polled
            await asyncio.sleep(0.01)

    def take(self) -> list[float]:
        lags, self._lags = self._lags, []
        return lags or [0.0]

    async def _watch(self) -> None:
        async with self._pool.acquire() as conn:
            while True:
                if self._pending:
                    await self._look(conn)
                await asyncio.sleep(0.02)

    async def _look(self, conn: Connection) -> None:
        tracked = await conn.fetchrow(
            "SELECT tx::text AS tx, position FROM projection_tracking WHERE name = 'read_models'"
        )
        assert tracked is not None
        if self._unread:
            unread, self._unread = self._unread, []
            for row in await conn.fetch(
                "SELECT position, tx::text AS tx FROM events WHERE position = ANY($1::bigint[])",
                unread,
            ):
                self._tx[row["position"]] = int(row["tx"])
        now = time.perf_counter()
        mark = (int(tracked["tx"]), tracked["position"])
        # Positions appended while this look waited are read at the next one.
        folded = [p for p in self._pending if p in self._tx and (self._tx[p], p) <= mark]
        for position in folded:
            self._lags.append((now - self._pending.pop(position)) * 1000)
            del self._tx[position]


def report(figures: dict[str, float]) -> None:
    print("event store append throughput, events/s (embedded PostgreSQL, same run):")
    print(f"  {'scenario':<39}{'raw INSERT':>12}{'CarePath':>11}{'ratio':>8}{'lag p99':>10}")
    for streams in (1, 8):
        for batch in (1, BATCH):
            name = f"{streams}x{batch}"
            raw, full = (figures[f"{k}_{name}"] for k in ("raw", "carepath"))
            label = f"{streams} concurrent stream{'s' if streams > 1 else ''}, " + (
                "single appends" if batch == 1 else f"batches of {batch}"
            )
            print(
                f"  {label:<39}{raw:>12,.0f}{full:>11,.0f}{full / raw:>7.2f}x"
                f"{figures[f'projection_lag_p99_ms_{name}']:>8.0f}ms"
            )
    for batch in (1, BATCH):
        name = f"8x{batch}"
        if f"alone_{name}" in figures:
            label = "8 streams, " + ("single" if batch == 1 else f"batches of {batch}")
            label += ", no projector"
            raw, alone = figures[f"raw_{name}"], figures[f"alone_{name}"]
            print(f"  {label:<39}{raw:>12,.0f}{alone:>11,.0f}{alone / raw:>7.2f}x")
    print("  (ratio = CarePath throughput / raw INSERT throughput; lag = append answered ->")
    print("   its event in the read models, with the projector running alongside but in the")
    print("   'no projector' rows: the store's appends alone, for context)")
    print(
        f"verification (chain + signed checkpoint, all streams): "
        f"{figures['verify_events_per_s']:,.0f} events/s over {figures['verify_events']:,.0f} events"
    )
    print(f"rebuild-projections: {figures['rebuild_events_per_s']:,.0f} events/s")


if __name__ == "__main__":
    report(asyncio.run(run()))
