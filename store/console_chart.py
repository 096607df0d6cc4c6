"""What the console's episode chart reads from PostgreSQL: one query per section.

The attendance grid comes from the `attended_hours` read model (week by week, as the
API's `/episodes/{id}/attendance`), the timeline from the event store itself (as the
API's `/episodes/{id}/timeline`: the store holds the episode's whole life, a workflow run
only its latest entries). The timeline's rows carry the payload of the plan's events only
(a plan recorded, a review completed), so the chart lists the reviews without a second
read of the stream.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from store.db import Pool
from store.errors import DatabaseUnavailable

Row = dict[str, Any]

# The events whose content the chart shows in its plan section.
PLAN_EVENTS = ("treatment_plan_recorded", "plan_review_completed")


class ChartQueries:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def attendance(self, episode_id: str) -> list[Row]:
        """The episode's weeks of attendance, oldest first."""
        return await self._rows(
            "SELECT week_start, week_end, hours, attended, partial, excused, no_shows, "
            "checked_hours, minimum_hours, below_minimum FROM attended_hours "
            "WHERE episode_id = $1 ORDER BY week_start",
            episode_id,
        )

    async def timeline(self, episode_id: str, limit: int = 1000) -> list[Row]:
        """The episode's stored events, newest first: what, who, when; the payload of the
        plan's events (`PLAN_EVENTS`) only."""
        return await self._rows(
            "SELECT seq, event_type, occurred_at, actor_id, actor_role, "
            "CASE WHEN event_type = ANY($2::text[]) THEN payload END AS payload "
            "FROM events WHERE episode_id = $1 ORDER BY seq DESC LIMIT $3",
            episode_id,
            list(PLAN_EVENTS),
            limit,
        )

    async def _rows(self, sql: str, *args: Any) -> list[Row]:
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                return [dict(row) for row in await conn.fetch(sql, *args)]
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"the chart could not be read ({type(exc).__name__}); check that PostgreSQL "
                "is up and migrated (`carepath db migrate`)"
            ) from None
