"""Shared fixtures: one real PostgreSQL for the whole test session, a fresh database per test.

The server is the embedded one `carepath up` runs, started in a temporary directory on a
free port. Each test gets its own database cloned from a migrated template, which takes a
few milliseconds and keeps tests independent of each other's rows.

As in production, the template is migrated by the owner role and the tests' pools connect
as the application's role (`db_pool`), so every test exercises its grants; `owner_pool`
is the owner on the same database, for tests that tamper with the store or its schema.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from devstack.embedded_postgres import APP_ROLE, OWNER_ROLE, EmbeddedPostgres
from devstack.processes import free_port
from store.db import Pool, create_pool
from store.migrations import migrate

TEMPLATE_DB = "carepath_template"
# Tests need no durability; skipping fsync keeps database clones fast on slow CI disks.
TEST_SERVER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture
def free_tcp_port() -> int:
    """A port on 127.0.0.1 that nothing listens on when the test starts."""
    return free_port()


@contextlib.contextmanager
def server_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp, removed afterwards.

    Not pytest's tmp_path: as root the server runs as another user, which must traverse
    every parent directory, and any other pytest run resets `/tmp/pytest-of-root` to 0700.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_data_dir() -> Iterator[Path]:
    """A directory for a server that this one test starts."""
    with server_directory("carepath-test-") as path:
        yield path


@pytest.fixture(scope="session")
async def embedded_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """The session's PostgreSQL server; stopped when the session ends."""
    with server_directory("carepath-session-pg-") as data_dir:
        server = EmbeddedPostgres(data_dir, free_port(), server_settings=TEST_SERVER_SETTINGS)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


@pytest.fixture(scope="session")
def postgres_url(embedded_postgres: EmbeddedPostgres) -> str:
    """URL of the session server's `carepath` database (the application's role)."""
    return embedded_postgres.url


@pytest.fixture(scope="session")
async def migrated_template(embedded_postgres: EmbeddedPostgres) -> str:
    """Name of a database with every migration applied, cloned by `db_pool`."""
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}" OWNER {OWNER_ROLE}')
    finally:
        await admin.close()
    pool = await create_pool(embedded_postgres.url_for(TEMPLATE_DB, OWNER_ROLE), max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    return TEMPLATE_DB


@pytest.fixture
async def fresh_database_url(
    embedded_postgres: EmbeddedPostgres, migrated_template: str
) -> AsyncIterator[str]:
    """URL of a new, migrated database that only this test uses, as the application's
    role; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}" OWNER {OWNER_ROLE}'
        )
    finally:
        await admin.close()
    yield embedded_postgres.url_for(name, APP_ROLE)
    admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(fresh_database_url: str) -> AsyncIterator[Pool]:
    """A pool (the application's role) on this test's own migrated database."""
    pool = await create_pool(fresh_database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def owner_pool(
    embedded_postgres: EmbeddedPostgres, fresh_database_url: str
) -> AsyncIterator[Pool]:
    """A pool as the schema's owner on the same database as `db_pool`: what a tampering
    administrator could do, and schema changes the application may not make."""
    name = fresh_database_url.rsplit("/", 1)[-1]
    pool = await create_pool(embedded_postgres.url_for(name, OWNER_ROLE), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()
