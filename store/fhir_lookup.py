"""What the /fhir searches look up: the episodes of a client, and every episode's client.

From the `episode_summary` read model (a projector fills it moments after each event),
so an episode referred a moment ago may be missing from a search for a moment.
"""

from __future__ import annotations

import asyncpg

from store.db import Pool
from store.errors import DatabaseUnavailable

_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"the episode summaries could not be read ({type(exc).__name__}); "
        "check that PostgreSQL is up and migrated (`carepath db migrate`)"
    )


async def episodes_of_client(pool: Pool, client_ref: str) -> list[str]:
    """The client's episodes, oldest referral first."""
    try:
        async with pool.acquire(timeout=5.0) as conn:
            rows = await conn.fetch(
                "SELECT episode_id FROM episode_summary WHERE client_ref = $1 "
                "ORDER BY referred_at, episode_id",
                client_ref,
            )
    except _DB_ERRORS as exc:
        raise _unavailable(exc) from None
    return [str(row["episode_id"]) for row in rows]


async def episode_clients(pool: Pool) -> list[tuple[str, str]]:
    """(episode id, client_ref) of every episode."""
    try:
        async with pool.acquire(timeout=5.0) as conn:
            rows = await conn.fetch("SELECT episode_id, client_ref FROM episode_summary")
    except _DB_ERRORS as exc:
        raise _unavailable(exc) from None
    return [(str(row["episode_id"]), str(row["client_ref"])) for row in rows]
