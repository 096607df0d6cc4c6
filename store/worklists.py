"""Staff worklists read from the read models: caseload, open tasks, upcoming deadlines,
episodes whose last judged week fell below the program's minimum; and one episode's weeks
of attendance.

The rows come from the tables the projector keeps (store/projections.py); these queries
only filter them, always by the programs the caller may see.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from store.db import Pool
from store.errors import DatabaseUnavailable
from store.projections import wait_for_position

Row = dict[str, Any]
# How long a read waits for the read models to reach a `min_position`.
READ_YOUR_WRITES_S = 5.0


class Worklists:
    """Read-only queries over the read models; `programs=None` means every program."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def wait_for(self, position: int, timeout: float = READ_YOUR_WRITES_S) -> None:
        """Return once the read models include the event at `position` (a command's
        answer carries it): the caller then sees their own change."""
        await wait_for_position(self._pool, position, timeout)

    async def caseload(
        self,
        programs: Sequence[str] | None,
        clinician_id: str | None = None,
        program_id: str | None = None,
        limit: int = 500,
        after: Sequence[str] | None = None,
    ) -> list[Row]:
        """Rows in `caseload_key` order, those after the key `after` only."""
        return await self._rows(
            "SELECT clinician_id, episode_id, program_id, discipline, is_primary, stage, "
            "escalation_level FROM caseload "
            "WHERE ($1::text[] IS NULL OR program_id = ANY($1)) "
            "AND ($2::text IS NULL OR clinician_id = $2) "
            "AND ($3::text IS NULL OR program_id = $3) "
            "AND ($5::text[] IS NULL OR (clinician_id, -escalation_level, episode_id) "
            "> ($5[1], $5[2]::int, $5[3])) "
            "ORDER BY clinician_id, escalation_level DESC, episode_id LIMIT $4",
            _array(programs),
            clinician_id,
            program_id,
            limit,
            _array(after),
        )

    async def open_tasks(
        self,
        programs: Sequence[str] | None,
        program_id: str | None = None,
        min_level: int | None = None,
        overdue_only: bool = False,
        limit: int = 500,
        after: Sequence[str] | None = None,
    ) -> list[Row]:
        """Rows in `task_key` order, those after the key `after` only."""
        return await self._rows(
            "SELECT episode_id, task_id, program_id, primary_clinician, kind, level, "
            "opened_at, due_at, overdue, on_hold, notify FROM open_tasks "
            "WHERE ($1::text[] IS NULL OR program_id = ANY($1)) "
            "AND ($2::text IS NULL OR program_id = $2) "
            "AND ($3::int IS NULL OR level >= $3) "
            "AND (NOT $4 OR overdue) "
            "AND ($6::text[] IS NULL OR (due_at, episode_id, task_id) "
            "> ($6[1]::timestamptz, $6[2], $6[3])) "
            "ORDER BY due_at, episode_id, task_id LIMIT $5",
            _array(programs),
            program_id,
            min_level,
            overdue_only,
            limit,
            _array(after),
        )

    async def upcoming_deadlines(
        self,
        programs: Sequence[str] | None,
        program_id: str | None = None,
        due_before: datetime | None = None,
        limit: int = 500,
        after: Sequence[str] | None = None,
    ) -> list[Row]:
        """Rows in `deadline_key` order, those after the key `after` only."""
        return await self._rows(
            "SELECT episode_id, kind, nullif(ref, '') AS ref, due_at, program_id, "
            "primary_clinician FROM upcoming_deadlines "
            "WHERE ($1::text[] IS NULL OR program_id = ANY($1)) "
            "AND ($2::text IS NULL OR program_id = $2) "
            "AND ($3::timestamptz IS NULL OR due_at < $3) "
            "AND ($5::text[] IS NULL OR (due_at, episode_id, kind, ref) "
            "> ($5[1]::timestamptz, $5[2], $5[3], $5[4])) "
            "ORDER BY due_at, episode_id, kind, ref LIMIT $4",
            _array(programs),
            program_id,
            due_before,
            limit,
            _array(after),
        )

    async def below_intensity(
        self,
        programs: Sequence[str] | None,
        program_id: str | None = None,
        clinician_id: str | None = None,
        limit: int = 500,
        after: Sequence[str] | None = None,
    ) -> list[Row]:
        """Open episodes in treatment whose latest judged week fell below the minimum,
        the largest shortfall first, each with its clinic's time zone; in
        `below_intensity_key` order, those after the key `after` only."""
        return await self._rows(
            "WITH latest AS ("
            " SELECT DISTINCT ON (episode_id) episode_id, week_start, week_end, "
            " checked_hours, minimum_hours, below_minimum FROM attended_hours "
            " WHERE below_minimum IS NOT NULL ORDER BY episode_id, week_start DESC) "
            "SELECT l.episode_id, e.client_ref, e.program_id, e.stage, e.primary_clinician, "
            "l.week_start, l.week_end, l.checked_hours AS attended_hours, l.minimum_hours, "
            f"{_ZONE} AS timezone "
            "FROM latest l JOIN episode_summary e USING (episode_id) "
            "LEFT JOIN projection_snapshots s USING (episode_id) "
            "WHERE l.below_minimum AND e.closed_at IS NULL "
            "AND e.stage IN ('treatment_planning', 'in_program', 'on_hold') "
            "AND ($1::text[] IS NULL OR e.program_id = ANY($1)) "
            "AND ($2::text IS NULL OR e.program_id = $2) "
            "AND ($3::text IS NULL OR e.primary_clinician = $3) "
            "AND ($5::text[] IS NULL OR (l.checked_hours - l.minimum_hours, l.week_end, "
            "l.episode_id) > ($5[1]::numeric, $5[2]::timestamptz, $5[3])) "
            "ORDER BY l.minimum_hours - l.checked_hours DESC, l.week_end, l.episode_id "
            "LIMIT $4",
            _array(programs),
            program_id,
            clinician_id,
            limit,
            _array(after),
        )

    async def attendance(self, episode_id: str) -> list[Row]:
        """One episode's weeks of attendance (the `attended_hours` read model), oldest first."""
        return await self._rows(
            "SELECT week_start, week_end, hours, attended, partial, excused, no_shows, "
            "checked_hours, minimum_hours, below_minimum FROM attended_hours "
            "WHERE episode_id = $1 ORDER BY week_start",
            episode_id,
        )

    async def episode_timezone(self, episode_id: str) -> str:
        """The time zone an episode's clinic days are counted in: the one its admission
        recorded (current rules), else UTC (not admitted yet, or the first rules)."""
        zone = await self._value(
            f"SELECT {_ZONE} FROM projection_snapshots s WHERE episode_id = $1", episode_id
        )
        return zone or "UTC"

    async def _rows(self, sql: str, *args: Any) -> list[Row]:
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                return [dict(row) for row in await conn.fetch(sql, *args)]
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _unavailable(exc) from None

    async def _value(self, sql: str, *args: Any) -> str | None:
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                value = await conn.fetchval(sql, *args)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _unavailable(exc) from None
        return None if value is None else str(value)


# Each worklist's keyset: a row's position in its order, as text (a page's cursor holds
# its last row's); the queries take it back as `after`.


def caseload_key(row: Row) -> list[str]:
    return [row["clinician_id"], str(-int(row["escalation_level"])), row["episode_id"]]


def task_key(row: Row) -> list[str]:
    return [row["due_at"].isoformat(), row["episode_id"], row["task_id"]]


def deadline_key(row: Row) -> list[str]:
    return [row["due_at"].isoformat(), row["episode_id"], row["kind"], row["ref"] or ""]


def below_intensity_key(row: Row) -> list[str]:
    shortfall = row["attended_hours"] - row["minimum_hours"]
    return [str(shortfall), row["week_end"].isoformat(), row["episode_id"]]


# The time zone an episode's admission recorded (`DeadlineRules.timezone`), else UTC.
_ZONE = "coalesce(s.state->'rules'->>'timezone', 'UTC')"


def _array(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"the read models could not be read ({type(exc).__name__}); "
        "check that PostgreSQL is up and migrated (`carepath db migrate`)"
    )
