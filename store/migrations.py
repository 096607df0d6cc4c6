"""Versioned SQL migrations, applied in order and recorded once.

Migrations are the files `migrations/NNNN_name.sql` shipped inside this package. Each runs
in its own transaction together with its row in `schema_migrations`, so a failing migration
leaves the schema as it was. A session advisory lock makes concurrent starters (several
workers, the API, `carepath db migrate`) apply each migration exactly once. A migration file
edited after it was applied is refused, because its checksum no longer matches.

A schema that is already current is recognised by reading the ledger alone, so a role that
may not change the schema (the application's, migration 0013) starts against it; with
migrations pending, such a role gets `MigrationFailed` saying to migrate as the owner.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from store.db import Connection, Pool, create_pool
from store.errors import MigrationFailed

# Any fixed 64-bit number works; it only has to differ from other advisory locks we take.
MIGRATION_LOCK_KEY = 0x63617265_70617468  # "carepath"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One versioned SQL script."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """The migrations shipped with CarePath, in version order."""
    folder = resources.files("store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(
                Migration(match["version"], match["name"], entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationFailed(f"two migration files share a version number: {versions}")
    return found


async def migrate(pool: Pool, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply the migrations not applied yet; return their versions in the order applied."""
    pending = load_migrations() if migrations is None else list(migrations)
    async with pool.acquire() as conn:
        try:
            if await _all_applied(conn, pending):
                return []
        except asyncpg.InsufficientPrivilegeError as exc:
            raise _not_the_owner(exc) from exc
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            try:
                await conn.execute(_CREATE_LEDGER)
            except asyncpg.InsufficientPrivilegeError as exc:
                raise _not_the_owner(exc) from exc
            applied = await _applied(conn)
            newly: list[str] = []
            for migration in pending:
                recorded = applied.get(migration.version)
                if recorded is None:
                    await _apply(conn, migration)
                    newly.append(migration.version)
                elif recorded != migration.checksum:
                    raise MigrationFailed(
                        f"migration {migration.version}_{migration.name} was changed after it "
                        "was applied: restore the original file and add a new migration instead"
                    )
            return newly
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _all_applied(conn: Connection, migrations: Sequence[Migration]) -> bool:
    """Whether the ledger records every migration, unchanged (read-only: any role)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
        return False
    applied = await _applied(conn)
    return all(applied.get(m.version) == m.checksum for m in migrations)


def _not_the_owner(exc: BaseException) -> MigrationFailed:
    return MigrationFailed(
        "the schema is not current and this database role may not change it "
        f"({str(exc).splitlines()[0]}): run `carepath db migrate` as the owner "
        "(CAREPATH_DATABASE_OWNER_URL)"
    )


async def migrate_url(dsn: str) -> list[str]:
    """`migrate` over a short-lived connection to `dsn` (the owner's URL)."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        return await migrate(pool)
    finally:
        await pool.close()


async def _applied(conn: Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


async def _apply(conn: Connection, migration: Migration) -> None:
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MigrationFailed(
            f"migration {migration.version}_{migration.name} failed and was rolled back: "
            f"{first_line}"
        ) from exc
