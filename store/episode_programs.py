"""The program an episode belongs to, from the event store itself.

The episode's first event (seq 1) is its referral, whose payload names the program, and
the stream is written before a command is answered: the lookup never lags behind what a
caller has been told, unlike the read models, which a projector fills afterwards. One
primary-key lookup on (episode_id, seq).
"""

from __future__ import annotations

import asyncpg

from store.db import Pool
from store.errors import DatabaseUnavailable

_FIRST_EVENT_PROGRAM = "SELECT payload->>'program_id' FROM events WHERE episode_id = $1 AND seq = 1"


async def episode_program(pool: Pool, episode_id: str) -> str | None:
    """The program of the episode's referral, or None if the store holds no such episode."""
    try:
        async with pool.acquire(timeout=5.0) as conn:
            value = await conn.fetchval(_FIRST_EVENT_PROGRAM, episode_id)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"the event store could not be read ({type(exc).__name__}); "
            "check that PostgreSQL is up and migrated (`carepath db migrate`)"
        ) from None
    return None if value is None else str(value)
