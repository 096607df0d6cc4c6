"""Connection pools to PostgreSQL, configured the same way everywhere.

Every connection decodes `jsonb` to Python objects and encodes them back, so the store
handles payloads as dicts. Failing to connect becomes `DatabaseUnavailable`, whose one-line
message names the server (never the password) and the setting that points at it.
"""

from __future__ import annotations

import json
from typing import TypeAlias
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from store.errors import DatabaseUnavailable

# asyncpg's classes are generic only in its stubs, so these aliases are strings at run time.
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# What the store's helpers accept: a plain connection or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

CONNECT_TIMEOUT_S = 10.0


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a connection needs on its way back to the pool besides the rollback of an
    open transaction (which asyncpg always does): nothing. CarePath sets no session state
    (no SET, LISTEN, cursor WITH HOLD; advisory locks are transaction-scoped, but for a
    rebuild's, which it releases itself), so asyncpg's default reset query would be a
    round trip per release for nothing: on the append path that is one in two."""


def describe_dsn(dsn: str) -> str:
    """`host:port/database` of a postgresql:// URL, without user or password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(unparseable URL)"
    database = parts.path.lstrip("/") or "(default database)"
    return f"{host}:{port}/{database}"


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> Pool:
    """Open a pool to `dsn`; raise DatabaseUnavailable if the server cannot be reached."""
    try:
        pool: Pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            timeout=CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe_dsn(dsn)} ({reason}): "
            "check that it runs and that CAREPATH_DATABASE_URL points at it"
        ) from exc
    return pool
