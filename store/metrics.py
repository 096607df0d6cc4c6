"""The event store's and the read models' Prometheus metrics (docs/metrics.md).

Labels are bounded and carry no identifier: no episode, task, user or client reference
ever becomes a label value, so nothing here can name a person.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Gauge, Histogram

from store.db import Pool

APPEND_SECONDS = Histogram(
    "carepath_append_duration_seconds",
    "Time to append one batch of an episode's events to the event store (one statement, "
    "a second round trip when the chain base was unknown), successful or not.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
APPEND_BATCH_EVENTS = Histogram(
    "carepath_append_batch_events",
    "Events in one append (0: a command look-up that writes nothing).",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 50, 100),
)
PROJECTION_LAG_SECONDS = Histogram(
    "carepath_projection_lag_seconds",
    "Time from an event's recorded_at (its append's transaction) to the commit of the "
    "projector's transaction that folded it into the read models.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
OPEN_TASKS = Gauge(
    "carepath_open_tasks",
    "Open escalation tasks in the open_tasks read model, by escalation level and whether "
    "they are overdue (read when scraped).",
    ["level", "overdue"],
)

_OPEN_TASKS_BY_LEVEL = (
    "SELECT level, overdue, count(*) AS tasks FROM open_tasks GROUP BY level, overdue"
)


def observe_projection_lag(recorded: Iterable[datetime], now: datetime | None = None) -> None:
    """One lag observation per folded event, measured against `now` (default: the clock)."""
    moment = now or datetime.now(UTC)
    observe_all(
        PROJECTION_LAG_SECONDS,
        [max((moment - recorded_at).total_seconds(), 0.0) for recorded_at in recorded],
    )


def observe_all(histogram: Histogram, amounts: list[float]) -> None:
    """Observe each of `amounts` in `histogram` (one without labels), as `observe` would
    one by one, but with one increment per bucket they fall in and one of the sum.

    A projector step observes up to 2,000 lags; one by one, each took two locked
    increments and a walk along the buckets, a tenth of the projector's time with 8
    writers busy. The bucket of an amount is the first whose upper bound is at least
    the amount, as `Histogram.observe` finds it (its internal counts are per bucket;
    the exposition sums them up to each bound). It uses those internals of the pinned
    `prometheus_client`; the test against one-by-one observations guards them."""
    if not amounts:
        return
    histogram._sum.inc(math.fsum(amounts))
    bounds = histogram._upper_bounds
    for index, count in Counter(bisect.bisect_left(bounds, a) for a in amounts).items():
        histogram._buckets[index].inc(count)


async def refresh_open_tasks(pool: Pool, timeout: float = 2.0) -> bool:
    """Set `carepath_open_tasks` from the read model (one grouped count over the open
    tasks); False, and the last values kept, if PostgreSQL does not answer in time."""
    try:
        async with asyncio.timeout(timeout), pool.acquire() as conn:
            rows = await conn.fetch(_OPEN_TASKS_BY_LEVEL)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    OPEN_TASKS.clear()
    for row in rows:
        overdue = "true" if row["overdue"] else "false"
        OPEN_TASKS.labels(level=str(row["level"]), overdue=overdue).set(row["tasks"])
    return True
