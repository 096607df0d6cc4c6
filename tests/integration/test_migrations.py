"""Schema migrations on a real PostgreSQL: applied in order, once, and all-or-nothing."""

from __future__ import annotations

import asyncio

import pytest

from domain.events import WeeklyAttendanceChecked
from store import EventStore, MigrationFailed, migrate
from store.db import Pool
from store.migrations import Migration, load_migrations
from store.projections import Projector
from testing.keys import CHAIN_KEY
from testing.legacy import insert_plain_events
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration


async def tables(pool: Pool) -> set[str]:
    rows = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def test_shipped_migrations_are_found_in_the_package_in_version_order() -> None:
    migrations = load_migrations()

    assert migrations[0].version == "0001"
    assert migrations[0].name == "event_store"
    assert "CREATE TABLE events" in migrations[0].sql
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


async def test_a_new_database_gets_every_migration_recorded_once(empty_pool: Pool) -> None:
    applied = await migrate(empty_pool)

    assert applied == [m.version for m in load_migrations()]
    assert {"events", "schema_migrations"} <= await tables(empty_pool)
    rows = await empty_pool.fetch(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]
    assert all(r["applied_at"] is not None for r in rows)


async def test_migrating_again_applies_nothing(empty_pool: Pool) -> None:
    await migrate(empty_pool)

    assert await migrate(empty_pool) == []
    assert await empty_pool.fetchval("SELECT count(*) FROM schema_migrations") == len(
        load_migrations()
    )


async def test_concurrent_migrators_apply_each_migration_once(empty_pool: Pool) -> None:
    results = await asyncio.gather(*(migrate(empty_pool) for _ in range(4)))

    assert sorted(results, key=len) == [[], [], [], [m.version for m in load_migrations()]]


async def test_a_failing_migration_leaves_the_schema_as_it_was(empty_pool: Pool) -> None:
    await migrate(empty_pool)
    before = await tables(empty_pool)
    broken = Migration("0999", "half_done", "CREATE TABLE half_done (id int); SELECT 1 / 0;")

    with pytest.raises(MigrationFailed, match="0999_half_done failed and was rolled back"):
        await migrate(empty_pool, [*load_migrations(), broken])

    assert await tables(empty_pool) == before
    assert not await empty_pool.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE version = '0999'"
    )


async def test_migrations_before_a_failing_one_stay_applied(empty_pool: Pool) -> None:
    good = Migration("0998", "good", "CREATE TABLE good_one (id int);")
    broken = Migration("0999", "broken", "SELECT 1 / 0;")

    with pytest.raises(MigrationFailed, match="0999_broken"):
        await migrate(empty_pool, [*load_migrations(), good, broken])

    assert "good_one" in await tables(empty_pool)
    assert await migrate(empty_pool, [*load_migrations(), good]) == []


async def test_a_migration_edited_after_it_was_applied_is_refused(empty_pool: Pool) -> None:
    await migrate(empty_pool)
    original = load_migrations()[0]
    edited = Migration(original.version, original.name, original.sql + "\n-- edited\n")

    with pytest.raises(MigrationFailed, match="changed after it was applied"):
        await migrate(empty_pool, [edited])


async def test_reshaping_attended_hours_empties_it_and_the_next_append_refolds_the_stream(
    empty_pool: Pool,
) -> None:
    shipped = load_migrations()
    await migrate(empty_pool, [m for m in shipped if m.version < "0011"])
    events = episode_events("ep-1", sessions=5)
    await insert_plain_events(empty_pool, events[:-1])
    # What 0007 to 0010 left behind: a row per ISO week, and a snapshot without weeks.
    await empty_pool.execute(
        "INSERT INTO attended_hours VALUES ('ep-1', 2026, 2, '2026-01-05', 'adult-iop', 8, 2, 1, 0, 0)"
    )
    await empty_pool.execute(
        "INSERT INTO projection_snapshots VALUES ('ep-1', $1, '{}')", len(events) - 1
    )

    assert await migrate(empty_pool, [m for m in shipped if m.version <= "0011"]) == ["0011"]

    assert await empty_pool.fetchval("SELECT count(*) FROM attended_hours") == 0
    assert await empty_pool.fetchval("SELECT count(*) FROM projection_snapshots") == 0
    columns = {
        row["column_name"]
        for row in await empty_pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'attended_hours'"
        )
    }
    assert {"week_start", "week_end", "checked_hours", "minimum_hours", "below_minimum"} <= columns
    assert not {"iso_year", "iso_week"} & columns

    await migrate(empty_pool)
    await EventStore(empty_pool, chain_key=CHAIN_KEY).append("ep-1", events[-1:])
    await Projector(empty_pool).catch_up()

    first = await empty_pool.fetchrow(
        "SELECT week_start, below_minimum FROM attended_hours ORDER BY week_start LIMIT 1"
    )
    check = next(e for e in events if isinstance(e, WeeklyAttendanceChecked))
    assert (first["week_start"], first["below_minimum"]) == (check.week_start, True)
