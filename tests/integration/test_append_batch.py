"""The typed-array append (`append_event_batch`, migration 0018) on a real server: its
one-statement common case, and the cases it hands to `append_events`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.actors import Actor, Role
from domain.canonical import GENESIS_HASH, canonical_json
from domain.commands import ReferralSource
from domain.events import ClientReferred, dump_event
from store import EventStore, verify_chain
from store.chain import keyed_chain_hash
from store.db import Pool
from store.records import CommandKey
from testing.keys import CHAIN_KEY

pytestmark = pytest.mark.integration

EPISODE = "ep-batch-1"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
INTAKE = Actor(user_id="u-intake-7", role=Role.INTAKE_COORDINATOR)
_CALL = "SELECT * FROM append_event_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"


def event(seq: int, episode_id: str = EPISODE) -> ClientReferred:
    return ClientReferred(
        episode_id=episode_id,
        seq=seq,
        occurred_at=T0 + timedelta(minutes=seq),
        actor=INTAKE,
        command_id=f"cmd-{episode_id}-{seq}",
        client_ref="client-42",
        program_id="adult-iop",
        referral_source=ReferralSource.PRIMARY_CARE,
    )


def arguments(events: list[ClientReferred], base: str) -> list[Any]:
    """`append_event_batch`'s arguments for `events` chained from `base`, no command key."""
    payloads = [dump_event(e) for e in events]
    hashes, prev = [], base
    for payload in payloads:
        prev = keyed_chain_hash(CHAIN_KEY, prev, payload)
        hashes.append(prev)
    return [
        EPISODE,
        events[0].seq,
        base,
        [e.type for e in events],
        [e.schema_version for e in events],
        [canonical_json(p).decode() for p in payloads],
        [e.occurred_at for e in events],
        [e.actor.user_id for e in events],
        [str(e.actor.role) for e in events],
        [e.command_id for e in events],
        hashes,
        None,
        None,
    ]


async def count_events(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", EPISODE))


class TestAppendEventBatch:
    async def test_given_a_batch_that_continues_the_head_when_appended_then_it_is_written_with_its_positions(
        self, db_pool: Pool
    ) -> None:
        row = await db_pool.fetchrow(
            _CALL, *arguments([event(1), event(2), event(3)], GENESIS_HASH)
        )

        assert row is not None
        stored = await db_pool.fetch(
            "SELECT seq, prev_hash, hash, position FROM events WHERE episode_id = $1 ORDER BY seq",
            EPISODE,
        )
        assert (row["status"], row["written"], row["head_seq"]) == ("ok", 3, 3)
        assert row["head_hash"] == stored[-1]["hash"]
        assert row["last_position"] == stored[-1]["position"]
        assert [s["prev_hash"] for s in stored] == [GENESIS_HASH, *(s["hash"] for s in stored[:2])]
        assert [s["position"] for s in stored] == sorted(s["position"] for s in stored)

    async def test_given_a_stale_base_hash_when_appended_then_the_stored_one_is_named_and_nothing_is_written(
        self, db_pool: Pool
    ) -> None:
        await db_pool.fetchrow(_CALL, *arguments([event(1)], GENESIS_HASH))
        head = await db_pool.fetchval("SELECT hash FROM events WHERE episode_id = $1", EPISODE)

        row = await db_pool.fetchrow(_CALL, *arguments([event(2)], "unknown"))

        assert row is not None
        assert (row["status"], row["base_hash"]) == ("stale_base", head)
        assert await count_events(db_pool) == 1

    async def test_given_a_batch_that_overlaps_the_head_when_appended_then_only_the_new_rows_are_written(
        self, db_pool: Pool
    ) -> None:
        first = arguments([event(1), event(2)], GENESIS_HASH)
        await db_pool.fetchrow(_CALL, *first)

        again = arguments([event(2), event(3)], first[10][0])
        row = await db_pool.fetchrow(_CALL, *again)

        assert row is not None
        assert (row["status"], row["written"], row["head_seq"]) == ("ok", 1, 3)
        assert await count_events(db_pool) == 3


class TestStoresThatShareAStream:
    async def test_given_another_store_extended_the_stream_when_this_one_appends_then_it_chains_from_the_stored_head(
        self, db_pool: Pool
    ) -> None:
        mine, theirs = (EventStore(db_pool, chain_key=CHAIN_KEY) for _ in range(2))
        await mine.append(EPISODE, [event(1), event(2)])
        await theirs.append(EPISODE, [event(3)], command=CommandKey(f"cmd-{EPISODE}-3", "a" * 64))

        result = await mine.append(EPISODE, [event(4), event(5)])

        assert (result.written, result.head_seq) == (2, 5)
        assert verify_chain(await mine.read_stream(EPISODE), CHAIN_KEY).ok
