"""Forgeries by a database superuser, each caught and named: the keyed chain, the chain seal of
the events stored before 0014, the chained checkpoints, and the copies kept outside.

Tampering is done as a superuser would, with the append-only triggers disabled, on the real
embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from audit.verify import VerifyReport, verify_all
from domain.canonical import chain_hash
from store import EventStore
from store.chain import GENESIS_HASH, keyed_chain_hash
from store.chain_seal import seal_legacy_chains
from store.checkpoints import (
    FORMAT_V1,
    Checkpoint,
    PreviousCheckpoint,
    StreamHead,
    current_heads,
    export_checkpoint,
    key_id,
    latest_checkpoint,
    load_checkpoint,
    load_checkpoint_dir,
    sign,
    take_checkpoint,
)
from store.db import Pool
from store.event_store import stored_event
from store.migrations import load_migrations, migrate
from testing.keys import CHAIN_KEY
from testing.legacy import insert_plain_events
from testing.sample_streams import episode_events
from workers.checkpoints import write_to_directory

pytestmark = pytest.mark.integration

KEY = b"test-checkpoint-key-0123456789abcdef"
EP = "ep-forged"
N = 12


async def superuser(pool: Pool, *statements: str, args: tuple[Any, ...] = ()) -> None:
    """Run statements with every append-only trigger disabled, as a superuser can."""
    tables = ("events", "checkpoints", "chain_seals")
    async with pool.acquire() as conn, conn.transaction():
        for table in tables:
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement in statements:
            await conn.execute(statement, *args)
        for table in tables:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def insert_event(
    pool: Pool, payload: dict[str, Any], prev_hash: str, event_hash: str, hash_alg: str
) -> None:
    """INSERT one event row directly, the way a forger with SQL access would."""
    actor = payload["actor"]
    await pool.execute(
        "INSERT INTO events (episode_id, seq, event_type, schema_version, payload, occurred_at, "
        "actor_id, actor_role, command_id, prev_hash, hash, hash_alg) "
        "VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7, $8, $9, $10, $11, $12)",
        payload["episode_id"],
        payload["seq"],
        payload["type"],
        payload.get("schema_version", 1),
        payload,
        payload["occurred_at"],
        actor["user_id"],
        actor["role"],
        payload["command_id"],
        prev_hash,
        event_hash,
        hash_alg,
    )


def forged_next(store_head: tuple[int, str], template: dict[str, Any]) -> dict[str, Any]:
    """A plausible next event: a copy of the last one's payload at the next seq."""
    return {**template, "seq": store_head[0] + 1, "command_id": "forged-command"}


async def report(store: EventStore, **kwargs: Any) -> VerifyReport:
    return await verify_all(store, key=KEY, **kwargs)


@pytest.fixture
async def store(db_pool: Pool) -> EventStore:
    """EP with N events and a neighbour, both checkpointed once (checkpoint #1)."""
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    await store.append(EP, episode_events(EP, sessions=4)[:N])
    await store.append("ep-other", episode_events("ep-other", sessions=2))
    await take_checkpoint(db_pool, KEY)
    return store


class TestKeyedChain:
    async def test_given_a_keyed_store_when_an_event_is_appended_with_a_recomputed_plain_hash_then_its_seq_is_named(
        self, db_pool: Pool, store: EventStore
    ) -> None:
        head = await store.head(EP)
        assert head is not None
        last = (await store.read_stream(EP))[-1].payload
        payload = forged_next(head, last)

        await insert_event(db_pool, payload, head[1], chain_hash(head[1], payload), "sha256")

        result = await report(store)
        (bad,) = result.anomalies
        assert (bad.episode_id, bad.first_bad_seq) == (EP, N + 1)
        assert "forged hash rule: a plain SHA-256 hash at seq 13" in str(bad.reason)

    async def test_given_a_keyed_store_when_a_plain_hash_is_labelled_keyed_then_the_hash_mismatch_names_its_seq(
        self, db_pool: Pool, store: EventStore
    ) -> None:
        head = await store.head(EP)
        assert head is not None
        payload = forged_next(head, (await store.read_stream(EP))[-1].payload)

        await insert_event(db_pool, payload, head[1], chain_hash(head[1], payload), "hmac-sha256")

        (bad,) = (await report(store)).anomalies
        assert bad.first_bad_seq == N + 1
        assert str(bad.reason).startswith("hash mismatch")

    async def test_given_a_keyed_store_when_verified_with_another_chain_key_then_seq_one_is_named(
        self, db_pool: Pool, store: EventStore
    ) -> None:
        other = EventStore(db_pool, chain_key=b"another chain key")

        result = await verify_all(other, key=KEY)

        assert {(r.episode_id, r.first_bad_seq) for r in result.anomalies} == {
            (EP, 1),
            ("ep-other", 1),
        }


class TestChainedCheckpoints:
    async def test_given_chained_checkpoints_when_none_is_touched_then_the_sequence_is_whole(
        self, db_pool: Pool, store: EventStore
    ) -> None:
        await store.append(EP, episode_events(EP, sessions=4)[N : N + 2])
        second = await take_checkpoint(db_pool, KEY)

        result = await report(store)

        assert second is not None
        assert second.previous is not None
        assert (second.number, second.previous.number) == (2, 1)
        assert result.ok, result.checkpoint_problems
        assert {s.checkpoint_id for s in result.streams} == {2}

    async def test_given_a_truncation_when_the_newest_checkpoint_row_is_deleted_then_its_published_copy_names_it_and_the_seq(
        self, db_pool: Pool, owner_pool: Pool, store: EventStore, tmp_path: Path
    ) -> None:
        await store.append(EP, episode_events(EP, sessions=4)[N : N + 3])
        second = await take_checkpoint(db_pool, KEY)
        assert second is not None
        published = tmp_path / "checkpoints"
        write_to_directory(published, second)
        # The forger cuts the stream back and deletes the checkpoint that recorded its length.
        await superuser(
            owner_pool,
            f"DELETE FROM events WHERE episode_id = '{EP}' AND seq > {N + 1}",
            "DELETE FROM checkpoints WHERE number = 2",
        )
        inside_only = await report(store)

        result = await report(store, external=load_checkpoint_dir(published))

        assert inside_only.ok, "inside the database alone the deletion of the newest is invisible"
        assert result.checkpoint_problems == (
            "checkpoint #2 is missing from the database, but a signed copy of it is kept "
            "outside: it was deleted",
        )
        (bad,) = result.anomalies
        assert (bad.episode_id, bad.first_bad_seq, bad.checkpoint_id) == (EP, N + 2, 2)
        assert str(bad.reason).startswith("truncated: checkpoint #2 recorded seq 15")

    async def test_given_three_checkpoints_when_the_middle_one_is_deleted_then_it_is_named(
        self, db_pool: Pool, owner_pool: Pool, store: EventStore
    ) -> None:
        for more in (1, 2):
            await store.append(EP, episode_events(EP, sessions=4)[N + more - 1 : N + more])
            await take_checkpoint(db_pool, KEY)

        await superuser(owner_pool, "DELETE FROM checkpoints WHERE number = 2")

        result = await report(store)
        assert result.checkpoint_problems == (
            "checkpoint #2 is missing from the database: checkpoint #3 follows it (and is "
            "stored after checkpoint #1); it was deleted",
        )
        assert not result.ok

    async def test_given_three_checkpoints_when_two_are_reordered_then_the_moved_one_is_named(
        self, db_pool: Pool, owner_pool: Pool, store: EventStore
    ) -> None:
        for more in (1, 2):
            await store.append(EP, episode_events(EP, sessions=4)[N + more - 1 : N + more])
            await take_checkpoint(db_pool, KEY)

        # Swap the storage order of #2 and #3 (their signed contents stay intact).
        await superuser(
            owner_pool,
            "UPDATE checkpoints SET checkpoint_id = checkpoint_id + 1000 WHERE number IN (2, 3)",
            "UPDATE checkpoints SET checkpoint_id = CASE number WHEN 2 THEN 3 ELSE 2 END "
            "WHERE number IN (2, 3)",
        )

        result = await report(store)
        assert result.checkpoint_problems == (
            "checkpoint #3 is out of order: it follows checkpoint #2, but is stored after "
            "checkpoint #1",
            "checkpoint #2 is out of order: it follows checkpoint #1, but is stored after "
            "checkpoint #3",
        )

    async def test_given_a_checkpoint_when_its_number_is_edited_then_its_signature_names_it(
        self, db_pool: Pool, owner_pool: Pool, store: EventStore
    ) -> None:
        await take_checkpoint(db_pool, KEY)
        await superuser(owner_pool, "UPDATE checkpoints SET number = number + 10 WHERE number = 2")

        result = await report(store)

        assert result.checkpoint_problems[0] == (
            "checkpoint #12 does not match its signature: it was altered after it was signed; "
            "verify against an exported copy kept outside the database"
        )


class TestCheckpointsOutsideTheDatabase:
    async def test_given_a_rewrite_rechained_and_resigned_inside_the_database_when_verified_against_the_external_file_then_the_seq_and_checkpoint_are_named(
        self, db_pool: Pool, owner_pool: Pool, store: EventStore, tmp_path: Path
    ) -> None:
        outside = tmp_path / "checkpoint-00000001.json"
        original = await _stored_checkpoint(db_pool)
        export_checkpoint(original, outside)
        # An insider holding both keys rewrites seq 4, re-chains the stream under the chain
        # key, and replaces the checkpoints with a freshly signed one.
        rows = await db_pool.fetch("SELECT * FROM events WHERE episode_id = $1 ORDER BY seq", EP)
        prev = GENESIS_HASH
        statements: list[str] = []
        for row in rows:
            payload = dict(row["payload"])
            if row["seq"] == 4:
                payload["command_id"] = "rewritten"
            new_hash = keyed_chain_hash(CHAIN_KEY, prev, payload)
            statements.append(
                f"UPDATE events SET payload = '{json.dumps(payload)}'::jsonb, "
                f"command_id = '{payload['command_id']}', prev_hash = '{prev}', "
                f"hash = '{new_hash}' WHERE episode_id = '{EP}' AND seq = {row['seq']}"
            )
            prev = new_hash
        await superuser(owner_pool, *statements, "DELETE FROM checkpoints")
        await take_checkpoint(db_pool, KEY)
        inside_only = await report(store)

        result = await report(store, checkpoint=load_checkpoint(outside))

        assert inside_only.ok, "re-chained and re-signed, the database agrees with itself"
        assert result.checkpoint_problems == (
            "checkpoint #1 in the database differs from its signed copy kept outside: the "
            "database's checkpoints were rewritten and signed again",
        )
        (bad,) = result.anomalies
        assert (bad.episode_id, bad.first_bad_seq, bad.checkpoint_id) == (EP, N, 1)
        assert str(bad.reason).startswith("rewritten")

    async def test_given_a_checkpoint_when_published_to_a_directory_then_it_is_a_new_0600_file_never_replaced(
        self, db_pool: Pool, store: EventStore, tmp_path: Path
    ) -> None:
        first = await _stored_checkpoint(db_pool)
        directory = tmp_path / "published"

        path = write_to_directory(directory, first)
        write_to_directory(directory, first)  # the same checkpoint again: kept as it is
        impostor = Checkpoint(
            first.taken_at, first.heads, first.key_id, "0" * 64, number=first.number
        )

        assert path.name == "checkpoint-00000001.json"
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert load_checkpoint(path) == first
        with pytest.raises(ValueError, match="already holds another checkpoint #1"):
            write_to_directory(directory, impostor)
        assert load_checkpoint(path) == first


class TestMigrationFromPlainHashes:
    async def test_given_plain_hash_events_from_before_0014_when_keyed_ones_follow_then_the_store_verifies(
        self, old_store: Pool
    ) -> None:
        store = EventStore(old_store, chain_key=CHAIN_KEY)
        await store.append("ep-old", episode_events("ep-old", sessions=3)[8:11])
        await store.append("ep-new", episode_events("ep-new", sessions=1)[:3])
        await take_checkpoint(old_store, KEY)

        result = await verify_all(store, key=KEY)

        assert result.ok, [s.describe() for s in result.anomalies]
        rules = await old_store.fetch(
            "SELECT seq, hash_alg FROM events WHERE episode_id = 'ep-old' AND seq IN (8, 9)"
        )
        assert [(r["seq"], r["hash_alg"]) for r in rules] == [(8, "sha256"), (9, "hmac-sha256")]

    async def test_given_a_sealed_store_when_a_plain_hash_event_is_appended_after_the_switch_then_its_seq_is_named(
        self, old_store: Pool
    ) -> None:
        store = EventStore(old_store, chain_key=CHAIN_KEY)
        # A legacy stream nobody appended to since the switch, extended with a plain hash.
        head = await store.head("ep-old")
        assert head == (8, head[1])
        last = (await store.read_stream("ep-old"))[-1].payload
        payload = forged_next(head, last)
        await insert_event(old_store, payload, head[1], chain_hash(head[1], payload), "sha256")

        (bad,) = (await verify_all(store, key=KEY)).anomalies

        assert (bad.episode_id, bad.first_bad_seq) == ("ep-old", 9)
        assert "forged hash rule: a plain SHA-256 hash at seq 9, after seq 8" in str(bad.reason)

    async def test_given_a_sealed_store_when_the_seal_is_deleted_then_every_plain_hash_stream_is_named(
        self, old_store: Pool
    ) -> None:
        store = EventStore(old_store, chain_key=CHAIN_KEY)
        await store.append("ep-old", episode_events("ep-old", sessions=3)[8:9])
        await superuser(old_store, "DELETE FROM chain_seals")

        assert not await seal_legacy_chains(old_store, CHAIN_KEY), "keyed events exist"
        (bad,) = (await verify_all(store, key=KEY)).anomalies
        assert (bad.episode_id, bad.first_bad_seq) == ("ep-old", 1)
        assert "no chain seal is stored" in str(bad.reason)


async def _stored_checkpoint(pool: Pool) -> Checkpoint:
    checkpoint = await latest_checkpoint(pool)
    assert checkpoint is not None
    return checkpoint


@pytest.fixture
async def old_store(empty_pool: Pool) -> Pool:
    """A store migrated up to 0013 with 8 plain-hash events in `ep-old` (as CarePath stored
    them then), then migrated to the current schema and sealed, as `carepath up` does."""
    shipped = load_migrations()
    await migrate(empty_pool, [m for m in shipped if m.version < "0014"])
    await insert_plain_events(empty_pool, episode_events("ep-old", sessions=3)[:8])
    await migrate(empty_pool)
    assert await seal_legacy_chains(empty_pool, CHAIN_KEY)
    assert not await seal_legacy_chains(empty_pool, CHAIN_KEY), "sealed once"
    rows = await empty_pool.fetch("SELECT * FROM events ORDER BY seq")
    assert {stored_event(r).hash_alg for r in rows} == {"sha256"}
    return empty_pool


async def test_given_a_checkpoint_taken_before_0014_when_the_next_one_is_chained_to_it_then_the_sequence_verifies(
    empty_pool: Pool,
) -> None:
    shipped = load_migrations()
    await migrate(empty_pool, [m for m in shipped if m.version < "0014"])
    await insert_plain_events(empty_pool, episode_events("ep-old", sessions=1)[:4])
    heads = await current_heads_of(empty_pool)
    taken_at = await empty_pool.fetchval("SELECT now()")
    unchained = Checkpoint(taken_at, heads, key_id(KEY), "", format=FORMAT_V1)
    signature = sign(KEY, unchained.signed_document())
    await empty_pool.execute(
        "INSERT INTO checkpoints (taken_at, streams, events, heads, key_id, signature) "
        "VALUES ($1, 1, 4, $2, $3, $4)",
        taken_at,
        unchained.signed_document()["heads"],
        key_id(KEY),
        signature,
    )
    await migrate(empty_pool)
    await seal_legacy_chains(empty_pool, CHAIN_KEY)
    store = EventStore(empty_pool, chain_key=CHAIN_KEY)
    await store.append("ep-old", episode_events("ep-old", sessions=1)[4:6])

    chained = await take_checkpoint(empty_pool, KEY)
    result = await verify_all(store, key=KEY)

    assert chained is not None
    assert chained.number == 2
    assert chained.previous == PreviousCheckpoint(1, signature)
    assert result.ok, (result.checkpoint_problems, [s.describe() for s in result.anomalies])


async def current_heads_of(pool: Pool) -> dict[str, StreamHead]:
    async with pool.acquire() as conn:
        return await current_heads(conn)
