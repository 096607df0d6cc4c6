"""What the staff console's lists read: one query per page, from the read models.

Each list joins what a page shows in one statement (the caseload with each episode's
summary and this week's attended hours; the open tasks with the client's reference), so a
page costs one round trip whatever its length. Limited to the caller's programs like the
API's worklists (`store.worklists`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.db import Pool
from store.errors import ProjectionBehind, UnknownPosition
from store.projections import wait_for_position

Row = dict[str, Any]

# The columns a caseload row may be sorted by, and how (ties: the episode id).
CASELOAD_ORDER = {
    "client": "e.client_ref",
    "stage": "e.stage",
    "deadline": "e.next_deadline NULLS LAST",
    "escalation": "e.escalation_level DESC",
    "hours": "coalesce(w.hours, 0)",
}

# The stages of the intake board, in the order a referral passes them.
INTAKE_STAGES = ("referred", "screening", "assessment", "treatment_planning")


class ConsoleQueries:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def caught_up(self, position: int | None, timeout: float = 5.0) -> bool:
        """Wait until the read models include the event at `position` (the staff member's
        own last change, so the page shows it); False if they are still behind."""
        if position is None:
            return True
        try:
            await wait_for_position(self._pool, position, timeout)
        except (ProjectionBehind, UnknownPosition):
            return False
        return True

    async def caseload(
        self,
        programs: Sequence[str] | None,
        *,
        clinician_id: str | None,
        program_id: str | None = None,
        stage: str | None = None,
        order: str = "deadline",
        now: datetime,
        limit: int = 500,
    ) -> list[Row]:
        """Open episodes on a clinician's caseload (or every clinician's, with None), one
        row per episode, with the attended hours of the week open at `now`."""
        sort = CASELOAD_ORDER.get(order, CASELOAD_ORDER["deadline"])
        sql = (
            # At most one week is open at a moment, so each episode is one row.
            "SELECT e.episode_id, e.client_ref, e.program_id, e.stage, e.phase_id, "
            "e.primary_clinician, e.next_deadline, e.escalation_level, "
            "w.hours AS week_hours, w.week_start, "
            "coalesce(s.state->'rules'->>'timezone', 'UTC') AS timezone "
            "FROM episode_summary e "
            "LEFT JOIN projection_snapshots s USING (episode_id) "
            "LEFT JOIN attended_hours w ON w.episode_id = e.episode_id "
            "  AND w.week_start <= $5 AND w.week_end > $5 "
            "WHERE e.closed_at IS NULL "
            "AND ($1::text[] IS NULL OR e.program_id = ANY($1)) "
            "AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM caseload c "
            "     WHERE c.episode_id = e.episode_id AND c.clinician_id = $2)) "
            "AND ($3::text IS NULL OR e.program_id = $3) "
            "AND ($4::text IS NULL OR e.stage = $4) "
            f"ORDER BY {sort}, e.episode_id LIMIT $6"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                sql,
                None if programs is None else list(programs),
                clinician_id,
                program_id,
                stage,
                now,
                limit,
            )
        return [dict(row) for row in rows]

    async def open_tasks(self, programs: Sequence[str] | None, *, limit: int = 500) -> list[Row]:
        """Open escalation tasks, overdue first, then by due time, with the client's
        reference and the clinic's time zone."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT t.episode_id, t.task_id, t.program_id, t.primary_clinician, t.kind, "
                "t.level, t.opened_at, t.due_at, t.overdue, t.on_hold, e.client_ref, "
                "coalesce(s.state->'rules'->>'timezone', 'UTC') AS timezone "
                "FROM open_tasks t JOIN episode_summary e USING (episode_id) "
                "LEFT JOIN projection_snapshots s USING (episode_id) "
                "WHERE ($1::text[] IS NULL OR t.program_id = ANY($1)) "
                "ORDER BY t.overdue DESC, t.due_at, t.episode_id, t.task_id LIMIT $2",
                None if programs is None else list(programs),
                limit,
            )
        return [dict(row) for row in rows]

    # --- the Today page and the intake board ------------------------------------------

    async def sessions_on(
        self,
        days: Sequence[tuple[str, datetime, datetime]],
        *,
        clinician_id: str | None,
        limit: int = 1000,
    ) -> list[Row]:
        """The sessions (not cancelled) of open episodes that start within each program's
        local day, `days` being (program, start of the day, end of the day); with the
        client's reference. Limited to one clinician's caseload when `clinician_id` is set."""
        if not days:
            return []
        programs, starts, ends = (list(column) for column in zip(*days, strict=True))
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.episode_id, s.session_id, s.program_id, s.kind, s.starts_at, "
                "s.hours, s.status, s.attended_hours, e.client_ref, e.primary_clinician "
                "FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) "
                "  AS d(program_id, day_start, day_end) "
                "JOIN console_sessions s ON s.program_id = d.program_id "
                "  AND s.starts_at >= d.day_start AND s.starts_at < d.day_end "
                "JOIN episode_summary e ON e.episode_id = s.episode_id "
                "WHERE NOT s.cancelled AND e.closed_at IS NULL "
                "AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM caseload c "
                "     WHERE c.episode_id = s.episode_id AND c.clinician_id = $4)) "
                "ORDER BY s.starts_at, e.client_ref, s.episode_id, s.session_id LIMIT $5",
                programs,
                starts,
                ends,
                clinician_id,
                limit,
            )
        return [dict(row) for row in rows]

    async def intake(self, programs: Sequence[str] | None, *, limit: int = 1000) -> list[Row]:
        """Open episodes not yet in the program (referred, screening, assessment, treatment
        planning), oldest referral first, with whether the assessment is recorded."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT e.episode_id, e.client_ref, e.program_id, e.stage, e.referred_at, "
                "e.admitted_at, e.last_event_at, e.next_deadline, "
                "coalesce(jsonb_typeof(s.state->'assessment') = 'object', false) AS assessed "
                "FROM episode_summary e LEFT JOIN projection_snapshots s USING (episode_id) "
                "WHERE e.closed_at IS NULL AND e.stage = ANY($2::text[]) "
                "AND ($1::text[] IS NULL OR e.program_id = ANY($1)) "
                "ORDER BY e.referred_at, e.episode_id LIMIT $3",
                None if programs is None else list(programs),
                list(INTAKE_STAGES),
                limit,
            )
        return [dict(row) for row in rows]
