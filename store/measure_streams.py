"""The event streams the quality measures (`domain.measures`) are computed from.

One query reads every stream that may count in a date range: the episodes referred
before the range ends and not closed (discharged or referred out) before it begins, from the `episode_summary` read model, joined with their events up to the range's
end. The bounds are widened by a day or two on each side, because the measures count days
in each program's own time zone; `domain.measures` then cuts every stream exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from domain.events import Event, load_event
from store.db import Pool
from store.errors import DatabaseUnavailable

# Every offset from UTC lies within 14 hours: these margins cover any program's days.
_BEFORE = timedelta(days=1)
_AFTER = timedelta(days=2)

_STREAMS = (
    "SELECT e.episode_id, e.payload FROM episode_summary s "
    "JOIN events e ON e.episode_id = s.episode_id "
    "WHERE ($1::text[] IS NULL OR s.program_id = ANY($1)) "
    "AND ($2::text IS NULL OR s.program_id = $2) "
    "AND s.referred_at < $4 AND (s.closed_at IS NULL OR s.closed_at >= $3) "
    "AND e.occurred_at < $4 "
    "ORDER BY e.episode_id, e.seq"
)


async def measure_streams(
    pool: Pool,
    *,
    start: date,
    end: date,
    programs: Sequence[str] | None = None,
    program_id: str | None = None,
) -> list[list[Event]]:
    """The streams of the episodes that may count in `start`..`end`, of `programs` (None:
    every program) and `program_id` (None: any), each in seq order, in one query."""
    since = datetime.combine(start, time(), tzinfo=UTC) - _BEFORE
    until = datetime.combine(end, time(), tzinfo=UTC) + _AFTER
    try:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                _STREAMS,
                None if programs is None else list(programs),
                program_id,
                since,
                until,
            )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"the event store could not be read ({type(exc).__name__}); "
            "check that PostgreSQL is up and migrated (`carepath db migrate`)"
        ) from None
    streams: list[list[Event]] = []
    current: str | None = None
    for row in rows:
        if row["episode_id"] != current:
            current = row["episode_id"]
            streams.append([])
        streams[-1].append(load_event(row["payload"]))
    return streams
