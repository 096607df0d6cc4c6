"""Least privilege in the database: what the application's role may and may not do, and
how the embedded PostgreSQL guards its logins and files.

`db_pool` connects as `carepath_app` (the worker's and the API's role), `owner_pool` as
`carepath_owner` (migrations), both on this test's own database.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncpg
import pytest

from devstack.embedded_postgres import (
    APP_ROLE,
    HBA_CONF,
    OWNER_ROLE,
    SUPERUSER,
    EmbeddedPostgres,
)
from devstack.files import server_group_id
from store import EventStore, MigrationFailed, migrate
from store.access_log import AccessLog, AccessRecord
from store.checkpoints import latest_checkpoint, take_checkpoint
from store.db import Pool
from store.event_store import CommandKey
from store.migrations import Migration, load_migrations
from store.projections import rebuild_projections
from store.verification import verify_all
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration

EP = "ep-roles"
KEY = b"k" * 32

# What someone holding the application's credentials might try, to rewrite history.
REFUSED_TO_THE_APPLICATION = [
    "UPDATE events SET actor_id = 'mallory'",
    "DELETE FROM events WHERE seq = 1",
    "TRUNCATE events",
    "ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete",
    "ALTER TABLE events DISABLE TRIGGER USER",
    "ALTER TABLE events ADD COLUMN note text",
    "DROP TABLE events",
    "DROP TRIGGER events_refuse_update_delete ON events",
    "UPDATE checkpoints SET streams = 0",
    "DELETE FROM checkpoints",
    "TRUNCATE checkpoints",
    "UPDATE command_fingerprints SET fingerprint = repeat('b', 64)",
    "DELETE FROM access_log",
    "TRUNCATE access_log",
    "UPDATE schema_migrations SET checksum = 'x'",
    "CREATE TABLE shadow_events (LIKE events)",
    "CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "SET session_replication_role = replica",
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestApplicationRole:
    async def test_given_the_application_role_when_it_tries_to_rewrite_history_then_each_attempt_is_refused(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        await store.append(
            EP, episode_events(EP, sessions=1)[:3], command=CommandKey("c1", "a" * 64)
        )
        await take_checkpoint(db_pool, KEY)
        await AccessLog(db_pool).record(_access())

        refused = {}
        for statement in REFUSED_TO_THE_APPLICATION:
            async with db_pool.acquire() as conn:
                try:
                    await conn.execute(statement)
                except asyncpg.InsufficientPrivilegeError as exc:
                    refused[statement] = str(exc)

        assert set(refused) == set(REFUSED_TO_THE_APPLICATION)
        # Refused by the privileges, before any trigger could be asked.
        assert not [m for m in refused.values() if "append-only" in m]
        assert await db_pool.fetchval("SELECT current_user") == APP_ROLE
        assert len(await store.read_stream(EP)) == 3
        assert (await verify_all(db_pool, KEY, chain_key=CHAIN_KEY))[0].ok

    async def test_given_the_application_role_when_the_product_runs_then_appends_read_models_access_log_and_checkpoints_work(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events(EP, sessions=3)

        await store.append(EP, events[:5], command=CommandKey("c1", "a" * 64))
        await store.append(EP, events[5:])
        await AccessLog(db_pool).record(_access())
        first = await take_checkpoint(db_pool, KEY)
        skipped = await take_checkpoint(db_pool, KEY, skip_if_unchanged=True)
        rebuilt = await rebuild_projections(db_pool)

        assert await db_pool.fetchval("SELECT count(*) FROM command_fingerprints") == 1
        assert [r.user_id for r in await AccessLog(db_pool).read(episode_id=EP)] == ["ivy.intake"]
        assert first is not None
        assert skipped is None
        assert (await latest_checkpoint(db_pool)).checkpoint_id == first.checkpoint_id  # type: ignore[union-attr]
        assert rebuilt.events == len(events)
        assert not rebuilt.failed_streams
        summary = await db_pool.fetchrow(
            "SELECT last_seq FROM episode_summary WHERE episode_id = $1", EP
        )
        assert summary["last_seq"] == len(events)
        assert [v.ok for v in await verify_all(db_pool, KEY, chain_key=CHAIN_KEY)] == [True]
        assert await migrate(db_pool) == []  # a current schema: nothing to do, nothing refused

    async def test_given_a_pending_migration_when_the_application_role_migrates_then_it_is_told_to_use_the_owner(
        self, db_pool: Pool, owner_pool: Pool
    ) -> None:
        pending = [*load_migrations(), Migration("9999", "later", "CREATE TABLE later (id int)")]

        with pytest.raises(MigrationFailed, match="CAREPATH_DATABASE_OWNER_URL"):
            await migrate(db_pool, pending)
        applied = await migrate(owner_pool, pending)

        assert applied == ["9999"]
        # Tables later migrations create may be read and appended to by the application.
        await db_pool.execute("INSERT INTO later VALUES (1)")
        assert await db_pool.fetchval("SELECT id FROM later") == 1

    async def test_given_migration_0013_when_it_runs_again_on_another_database_then_the_existing_role_is_kept(
        self, owner_pool: Pool, embedded_postgres: EmbeddedPostgres
    ) -> None:
        role_0013 = next(m for m in load_migrations() if m.version == "0013")

        async with owner_pool.acquire() as conn, conn.transaction():
            await conn.execute(role_0013.sql)

        admin = await asyncpg.connect(embedded_postgres.url_for("postgres"))
        try:
            count = await admin.fetchval(
                "SELECT count(*) FROM pg_roles WHERE rolname = $1", APP_ROLE
            )
        finally:
            await admin.close()
        assert count == 1


class TestEmbeddedServerLogins:
    async def test_given_the_embedded_server_when_a_local_user_connects_without_the_password_then_it_is_refused(
        self, embedded_postgres: EmbeddedPostgres
    ) -> None:
        port = embedded_postgres.port
        for role in (SUPERUSER, OWNER_ROLE, APP_ROLE):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(f"postgresql://{role}@127.0.0.1:{port}/carepath")
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(f"postgresql://{role}:guess@127.0.0.1:{port}/carepath")

        conn = await asyncpg.connect(embedded_postgres.url_for("carepath"))
        try:
            hba = await conn.fetch(
                "SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
            )
            listen = await conn.fetchval("SHOW listen_addresses")
            app_is_superuser = await conn.fetchval(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1",
                APP_ROLE,
            )
        finally:
            await conn.close()
        assert {row["auth_method"] for row in hba} == {"scram-sha-256"}
        assert listen == "127.0.0.1"
        assert app_is_superuser is False

    async def test_given_the_embedded_server_when_it_has_started_then_its_data_dir_and_files_are_private(
        self, embedded_postgres: EmbeddedPostgres
    ) -> None:
        data_dir = embedded_postgres.data_dir
        passwords = embedded_postgres.passwords_path

        assert mode(passwords) == 0o600
        assert mode(embedded_postgres.log_path) == 0o600
        assert mode(embedded_postgres.pgdata) == 0o700
        if os.geteuid() == 0:
            # The server runs as its own user, which may only pass through to postgres/.
            assert mode(data_dir) == 0o710
            assert data_dir.stat().st_gid == server_group_id()
            assert embedded_postgres.pgdata.stat().st_uid != 0
        else:
            assert mode(data_dir) == 0o700
        assert not (data_dir / ".initdb-password").exists()


class TestDataDirOfAnEarlierVersion:
    async def test_given_a_trust_cluster_with_superuser_owned_tables_when_started_then_it_gets_passwords_owner_and_private_files(
        self, server_data_dir: Path, free_tcp_port: int
    ) -> None:
        server = EmbeddedPostgres(server_data_dir / "data", free_tcp_port)
        await server.start()
        try:
            conn = await asyncpg.connect(server.url_for("carepath"))
            try:
                await conn.execute("CREATE TABLE events_of_old (note text)")
                await conn.execute(
                    "CREATE VIEW counts_of_old AS SELECT count(*) FROM events_of_old"
                )
                await conn.execute("ALTER DATABASE carepath OWNER TO postgres")
            finally:
                await conn.close()
            await server.stop()
            # What an earlier version left: trust logins, no passwords, readable files.
            (server.pgdata / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            )
            server.passwords_path.unlink()
            server.log_path.chmod(0o644)
            (server.data_dir / "temporal.db").write_bytes(b"")
            (server.data_dir / "temporal.db").chmod(0o644)
            server.data_dir.chmod(0o755)

            await server.start()

            conn = await asyncpg.connect(server.owner_url)
            try:
                owners = await conn.fetchrow(
                    "SELECT (SELECT pg_get_userbyid(relowner) FROM pg_class "
                    "        WHERE relname = 'events_of_old') AS table_owner, "
                    "       (SELECT pg_get_userbyid(relowner) FROM pg_class "
                    "        WHERE relname = 'counts_of_old') AS view_owner, "
                    "       (SELECT pg_get_userbyid(datdba) FROM pg_database "
                    "        WHERE datname = 'carepath') AS database_owner"
                )
            finally:
                await conn.close()
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/carepath")
        finally:
            await server.stop()

        assert set(dict(owners).values()) == {OWNER_ROLE}
        assert (server.pgdata / "pg_hba.conf").read_text() == HBA_CONF
        assert mode(server.passwords_path) == 0o600
        assert mode(server.log_path) == 0o600
        assert mode(server.data_dir / "temporal.db") == 0o600
        assert mode(server.data_dir) in (0o700, 0o710)


def _access() -> AccessRecord:
    return AccessRecord(
        user_id="ivy.intake",
        role="intake_coordinator",
        action="read",
        resource="episode",
        outcome="success",
        status=200,
        method="GET",
        path=f"/episodes/{EP}",
        episode_id=EP,
    )
