"""Tamper evidence: checkpoints and verification name the first bad seq of every stream.

Tampering is done as a superuser would, with the append-only triggers disabled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import EventStore
from store.chain import GENESIS_HASH, keyed_chain_hash
from store.checkpoints import (
    export_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    take_checkpoint,
)
from store.db import Pool
from store.errors import CheckpointInvalid
from store.verification import StreamVerification, verify_all, verify_stream
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration

KEY = b"test-checkpoint-key-0123456789abcdef"
EP = "ep-tamper"
N = 12


async def tamper(pool: Pool, *statements: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


@pytest.fixture
async def stored(db_pool: Pool) -> EventStore:
    """Two streams: EP with N events (checkpointed) and an untouched neighbour."""
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    await store.append(EP, episode_events(EP, sessions=4)[:N])
    await store.append("ep-other", episode_events("ep-other", sessions=3))
    await take_checkpoint(db_pool, KEY)
    return store


async def bad_streams(pool: Pool) -> list[StreamVerification]:
    return [r for r in await verify_all(pool, KEY, chain_key=CHAIN_KEY) if not r.ok]


class TestCheckpoints:
    async def test_a_checkpoint_signs_the_head_of_every_stream(
        self, db_pool: Pool, stored: EventStore
    ) -> None:
        checkpoint = await latest_checkpoint(db_pool)

        assert checkpoint is not None
        assert checkpoint.heads[EP].seq == N
        assert checkpoint.heads[EP].hash == (await stored.head(EP) or (0, ""))[1]
        assert (checkpoint.streams, checkpoint.checkpoint_id) == (2, 1)
        checkpoint.verify(KEY)

    async def test_an_exported_checkpoint_reads_back_and_still_verifies(
        self, db_pool: Pool, stored: EventStore, tmp_path: Path
    ) -> None:
        checkpoint = await latest_checkpoint(db_pool)
        assert checkpoint is not None
        path = tmp_path / "checkpoint.json"

        export_checkpoint(checkpoint, path)
        loaded = load_checkpoint(path)

        assert loaded == checkpoint
        loaded.verify(KEY)

    async def test_an_edited_export_fails_its_signature(
        self, db_pool: Pool, stored: EventStore, tmp_path: Path
    ) -> None:
        checkpoint = await latest_checkpoint(db_pool)
        assert checkpoint is not None
        path = tmp_path / "checkpoint.json"
        export_checkpoint(checkpoint, path)
        data = json.loads(path.read_text())
        data["heads"][EP]["seq"] = N - 1
        path.write_text(json.dumps(data))

        with pytest.raises(CheckpointInvalid, match="altered"):
            load_checkpoint(path).verify(KEY)

    async def test_a_checkpoint_signed_with_another_key_is_refused(
        self, db_pool: Pool, stored: EventStore
    ) -> None:
        with pytest.raises(CheckpointInvalid, match="another key"):
            await verify_all(db_pool, b"some other key", chain_key=CHAIN_KEY)

    async def test_a_file_that_is_not_a_checkpoint_says_what_to_pass(self, tmp_path: Path) -> None:
        path = tmp_path / "x.json"
        path.write_text('{"hello": 1}')

        with pytest.raises(CheckpointInvalid, match="db checkpoint --export"):
            load_checkpoint(path)

    async def test_an_unchanged_store_takes_no_scheduled_checkpoint(
        self, db_pool: Pool, stored: EventStore
    ) -> None:
        assert await take_checkpoint(db_pool, KEY, skip_if_unchanged=True) is None
        await stored.append("ep-new", episode_events("ep-new", sessions=1)[:2])
        taken = await take_checkpoint(db_pool, KEY, skip_if_unchanged=True)
        assert taken is not None
        assert taken.checkpoint_id == 2

    async def test_the_database_refuses_to_change_a_checkpoint(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        async with owner_pool.acquire() as conn:
            with pytest.raises(Exception, match="append-only"):
                await conn.execute("DELETE FROM checkpoints")


class TestVerification:
    async def test_untouched_streams_verify_against_the_checkpoint(
        self, db_pool: Pool, stored: EventStore
    ) -> None:
        progress: list[tuple[int, int]] = []

        results = await verify_all(
            db_pool, KEY, chain_key=CHAIN_KEY, progress=lambda d, t: progress.append((d, t))
        )

        assert [r.ok for r in results] == [True, True]
        assert {r.checkpoint_id for r in results} == {1}
        assert progress == [(1, 2), (2, 2)]
        one = await verify_stream(
            db_pool, EP, await latest_checkpoint(db_pool), chain_key=CHAIN_KEY
        )
        assert (one.ok, one.events_checked, one.head_seq) == (True, N, N)

    async def test_events_appended_after_the_checkpoint_verify(
        self, db_pool: Pool, stored: EventStore
    ) -> None:
        await stored.append(EP, episode_events(EP, sessions=4)[N : N + 3])

        assert await bad_streams(db_pool) == []

    async def test_a_changed_payload_names_its_seq(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(
            owner_pool,
            f"UPDATE events SET payload = jsonb_set(payload, '{{command_id}}', '\"forged\"') "
            f"WHERE episode_id = '{EP}' AND seq = 5",
        )

        (bad,) = await bad_streams(db_pool)

        assert (bad.episode_id, bad.first_bad_seq) == (EP, 5)
        assert str(bad.reason).startswith("hash mismatch")

    async def test_a_removed_event_names_its_seq(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}' AND seq = 7")

        (bad,) = await bad_streams(db_pool)

        assert bad.first_bad_seq == 7
        assert bad.reason == "seq gap: expected seq 7, found seq 8"

    async def test_a_removed_last_event_is_caught_by_the_checkpoint(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}' AND seq = {N}")

        (bad,) = await bad_streams(db_pool)

        assert bad.first_bad_seq == N
        assert bad.reason == (
            f"truncated: checkpoint #1 recorded seq {N}, but the stream ends at seq {N - 1}"
        )

    async def test_a_removed_first_event_names_seq_one(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}' AND seq = 1")

        (bad,) = await bad_streams(db_pool)

        assert (bad.first_bad_seq, bad.reason) == (1, "seq gap: expected seq 1, found seq 2")

    async def test_a_whole_stream_removed_is_caught_by_the_checkpoint(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}'")

        (bad,) = await bad_streams(db_pool)

        assert (bad.episode_id, bad.first_bad_seq) == (EP, 1)
        assert "the stream is missing" in str(bad.reason)

    async def test_two_swapped_events_name_the_first_of_them(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(
            owner_pool,
            f"UPDATE events SET seq = seq + 1000 WHERE episode_id = '{EP}' AND seq IN (3, 4)",
            f"UPDATE events SET seq = CASE seq WHEN 1003 THEN 4 ELSE 3 END "
            f"WHERE episode_id = '{EP}' AND seq > 1000",
        )

        (bad,) = await bad_streams(db_pool)

        assert bad.first_bad_seq == 3
        assert str(bad.reason).startswith("prev-hash mismatch")

    async def test_a_stream_rewritten_with_recomputed_hashes_is_caught_by_the_checkpoint(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        # A forger who holds the chain key rewrites seq 4 and re-hashes the rest so the
        # chain is consistent again.
        rows = await stored.read_stream(EP)
        prev = GENESIS_HASH
        statements = []
        for row in rows:
            payload = dict(row.payload)
            if row.seq == 4:
                payload["command_id"] = "forged"
            new_hash = keyed_chain_hash(CHAIN_KEY, prev, payload)
            statements.append(
                f"UPDATE events SET payload = '{json.dumps(payload)}'::jsonb, "
                f"command_id = '{payload['command_id']}', prev_hash = '{prev}', "
                f"hash = '{new_hash}' WHERE episode_id = '{EP}' AND seq = {row.seq}"
            )
            prev = new_hash
        await tamper(owner_pool, *statements)

        (bad,) = await bad_streams(db_pool)

        assert bad.first_bad_seq == N
        assert str(bad.reason).startswith("rewritten")
        chain_only = await verify_stream(db_pool, EP, chain_key=CHAIN_KEY)
        assert chain_only.ok, "without the checkpoint the forgery is invisible"

    async def test_without_a_key_only_the_chains_are_checked(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore
    ) -> None:
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}' AND seq = {N}")

        results = await verify_all(db_pool, None, chain_key=CHAIN_KEY)

        assert all(r.ok and r.checkpoint_id is None for r in results)

    async def test_an_exported_checkpoint_catches_checkpoints_removed_from_the_database(
        self, owner_pool: Pool, db_pool: Pool, stored: EventStore, tmp_path: Path
    ) -> None:
        checkpoint = await latest_checkpoint(db_pool)
        assert checkpoint is not None
        export_checkpoint(checkpoint, tmp_path / "cp.json")
        await tamper(owner_pool, f"DELETE FROM events WHERE episode_id = '{EP}' AND seq > 9")
        await take_checkpoint(db_pool, KEY)  # a later checkpoint that covers the truncation

        from_db = await verify_all(db_pool, KEY, chain_key=CHAIN_KEY)
        from_file = await verify_all(
            db_pool, KEY, chain_key=CHAIN_KEY, checkpoint=load_checkpoint(tmp_path / "cp.json")
        )

        assert all(r.ok for r in from_db)
        (bad,) = [r for r in from_file if not r.ok]
        assert (bad.first_bad_seq, bad.checkpoint_id) == (10, 1)
        assert bad.describe().startswith(f"episode {EP}: first bad seq 10: truncated")
