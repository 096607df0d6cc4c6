"""The access log: one append-only row per read or change of an episode's data.

Rows say who (user id and role), what (action, resource, episode), when and with what
outcome, denials included. They hold no clinical content. The table refuses UPDATE,
DELETE and TRUNCATE (migration 0010), as the event store does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from store.db import Pool
from store.errors import DatabaseUnavailable

AccessAction = Literal["read", "create", "update", "export"]
AccessOutcome = Literal[
    "success", "denied", "unauthenticated", "not_found", "invalid", "conflict", "error"
]


@dataclass(frozen=True)
class AccessRecord:
    """One access, as recorded; `id` and `at` are set by the database."""

    user_id: str
    role: str
    action: AccessAction
    resource: str
    outcome: AccessOutcome
    status: int
    method: str
    path: str
    episode_id: str | None = None
    command_id: str | None = None
    client_ip: str | None = None
    id: int | None = None
    at: datetime | None = None


_COLUMNS = (
    "user_id, role, action, resource, outcome, status, method, path, episode_id, "
    "command_id, client_ip"
)


class AccessLog:
    """Append and read access records."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def record(self, entry: AccessRecord) -> None:
        """Append one record; raises `DatabaseUnavailable` if it could not be written."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                # `at` is the database's clock unless the record brings the time of its
                # access (one written late, from the API's spool).
                await conn.execute(
                    f"INSERT INTO access_log ({_COLUMNS}, at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, COALESCE($12, now()))",
                    entry.user_id,
                    entry.role,
                    entry.action,
                    entry.resource,
                    entry.outcome,
                    entry.status,
                    entry.method,
                    entry.path,
                    entry.episode_id,
                    entry.command_id,
                    entry.client_ip,
                    entry.at,
                )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"the access log could not be written ({type(exc).__name__}); "
                "check that PostgreSQL is up and migrated (`carepath db migrate`)"
            ) from None

    async def record_many(self, entries: list[AccessRecord]) -> None:
        """Append records in one transaction (all or none); raises `DatabaseUnavailable`."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn, conn.transaction():
                await conn.executemany(
                    f"INSERT INTO access_log ({_COLUMNS}, at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, COALESCE($12, now()))",
                    [
                        (
                            e.user_id,
                            e.role,
                            e.action,
                            e.resource,
                            e.outcome,
                            e.status,
                            e.method,
                            e.path,
                            e.episode_id,
                            e.command_id,
                            e.client_ip,
                            e.at,
                        )
                        for e in entries
                    ],
                )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"the access log could not be written ({type(exc).__name__}); "
                "check that PostgreSQL is up and migrated (`carepath db migrate`)"
            ) from None

    async def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        episode_id: str | None = None,
        user_id: str | None = None,
        limit: int = 1000,
        after_id: int | None = None,
    ) -> list[AccessRecord]:
        """Records in the order they were written, filtered; at most `limit` of them,
        those written after the record `after_id` only."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                rows = await conn.fetch(
                    f"SELECT id, at, {_COLUMNS} FROM access_log "
                    "WHERE ($1::timestamptz IS NULL OR at >= $1) "
                    "AND ($2::timestamptz IS NULL OR at < $2) "
                    "AND ($3::text IS NULL OR episode_id = $3) "
                    "AND ($4::text IS NULL OR user_id = $4) "
                    "AND ($6::bigint IS NULL OR id > $6) "
                    "ORDER BY id LIMIT $5",
                    since,
                    until,
                    episode_id,
                    user_id,
                    limit,
                    after_id,
                )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"the access log could not be read ({type(exc).__name__}); "
                "check that PostgreSQL is up and migrated (`carepath db migrate`)"
            ) from None
        return [
            AccessRecord(
                id=row["id"],
                at=row["at"],
                user_id=row["user_id"],
                role=row["role"],
                action=row["action"],
                resource=row["resource"],
                outcome=row["outcome"],
                status=row["status"],
                method=row["method"],
                path=row["path"],
                episode_id=row["episode_id"],
                command_id=row["command_id"],
                client_ip=row["client_ip"],
            )
            for row in rows
        ]
