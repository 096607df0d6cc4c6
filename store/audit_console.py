"""What the auditor's console pages read: the access log a page at a time, newest first,
and the episodes most recently changed (to pick one to verify, replay or export).

The access log's filters are those of `AccessLog.read` (the API's `/audit/access-log`):
a time range, an episode, a user. Pages are keyed by id (`before`), not by offset, so a
page stays the same while new records arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.access_log import AccessRecord
from store.db import Pool

Row = dict[str, Any]


@dataclass(frozen=True)
class AccessPage:
    """One page of access records, newest first; `older` is the `before` of the next page
    (None on the last one)."""

    records: list[AccessRecord]
    older: int | None


class AuditQueries:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def access_page(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        episode_id: str | None = None,
        user_id: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> AccessPage:
        """Records matching the filters whose id is below `before`, newest first."""
        async with self._pool.acquire(timeout=5.0) as conn:
            rows = await conn.fetch(
                "SELECT id, at, user_id, role, action, resource, outcome, status, method, "
                "path, episode_id, command_id, client_ip FROM access_log "
                "WHERE ($1::timestamptz IS NULL OR at >= $1) "
                "AND ($2::timestamptz IS NULL OR at < $2) "
                "AND ($3::text IS NULL OR episode_id = $3) "
                "AND ($4::text IS NULL OR user_id = $4) "
                "AND ($5::bigint IS NULL OR id < $5) "
                "ORDER BY id DESC LIMIT $6",
                since,
                until,
                episode_id,
                user_id,
                before,
                limit + 1,
            )
        records = [AccessRecord(**dict(row)) for row in rows[:limit]]
        older = records[-1].id if len(rows) > limit and records else None
        return AccessPage(records, older)

    async def recent_episodes(self, limit: int = 25) -> list[Row]:
        """The episodes whose record changed last, with their client reference and stage."""
        async with self._pool.acquire(timeout=5.0) as conn:
            rows = await conn.fetch(
                "SELECT episode_id, client_ref, program_id, stage, last_seq, last_event_at "
                "FROM episode_summary ORDER BY last_event_at DESC, episode_id LIMIT $1",
                limit,
            )
        return [dict(row) for row in rows]
