"""Contract of the PostgreSQL event store, on a real server (one fresh database per test)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from domain.actors import Actor, Role
from domain.canonical import event_digests, payload_digest
from domain.commands import ReferralSource
from domain.events import ClientReferred
from domain.idempotency import IdempotencyKeyReused
from store import (
    GENESIS_HASH,
    AppendConflict,
    DatabaseUnavailable,
    EventStore,
    create_pool,
    verify_chain,
)
from store.chain import keyed_chain_hash
from store.db import Pool
from store.errors import StoreRefused
from store.projections import Projector
from store.records import CommandKey
from testing.keys import CHAIN_KEY

pytestmark = pytest.mark.integration

EPISODE = "ep-0001"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
INTAKE = Actor(user_id="u-intake-7", role=Role.INTAKE_COORDINATOR)


def event(seq: int, episode_id: str = EPISODE, client_ref: str = "client-42") -> ClientReferred:
    """An event at `seq`; the store does not interpret events, so one type serves every seq."""
    return ClientReferred(
        episode_id=episode_id,
        seq=seq,
        occurred_at=T0 + timedelta(minutes=seq),
        actor=INTAKE,
        command_id=f"cmd-{episode_id}-{seq}",
        client_ref=client_ref,
        program_id="adult-iop",
        referral_source=ReferralSource.PRIMARY_CARE,
    )


@pytest.fixture
def store(db_pool: Pool) -> EventStore:
    return EventStore(db_pool, chain_key=CHAIN_KEY)


class _OneConnection:
    """A pool of one borrowed connection, so a store's append runs in a transaction the
    test holds open."""

    def __init__(self, conn: object) -> None:
        self._conn = conn

    def acquire(self) -> contextlib.AbstractAsyncContextManager[object]:
        return contextlib.nullcontext(self._conn)


async def tamper(pool: Pool, *statements: str) -> None:
    """Change stored events as a superuser would, with the append-only triggers disabled."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


class TestAppendAndRead:
    async def test_appended_events_read_back_in_order_as_domain_events(
        self, store: EventStore
    ) -> None:
        events = [event(1), event(2), event(3)]
        result = await store.append(EPISODE, events)

        stored = await store.read_stream(EPISODE)

        assert (result.written, result.already_present, result.head_seq) == (3, 0, 3)
        assert [s.seq for s in stored] == [1, 2, 3]
        assert [s.event for s in stored] == events
        first = stored[0]
        assert first.event_type == "client_referred"
        assert first.schema_version == 1
        assert first.occurred_at == T0 + timedelta(minutes=1)
        assert (first.actor_id, first.actor_role) == ("u-intake-7", "intake_coordinator")
        assert first.command_id == f"cmd-{EPISODE}-1"
        assert first.recorded_at.tzinfo is not None

    async def test_each_event_hash_chains_to_the_previous_from_genesis(
        self, store: EventStore
    ) -> None:
        result = await store.append(EPISODE, [event(1), event(2)])

        first, second = await store.read_stream(EPISODE)

        assert first.prev_hash == GENESIS_HASH
        assert first.hash == keyed_chain_hash(CHAIN_KEY, GENESIS_HASH, first.payload)
        assert first.hash_alg == "hmac-sha256"
        assert second.prev_hash == first.hash
        assert await store.head(EPISODE) == (2, second.hash) == (2, result.head_hash)

    async def test_reading_after_a_seq_returns_only_later_events(self, store: EventStore) -> None:
        await store.append(EPISODE, [event(1), event(2), event(3)])

        assert [s.seq for s in await store.read_stream(EPISODE, after_seq=1)] == [2, 3]
        assert await store.read_stream(EPISODE, after_seq=3) == []

    async def test_an_unknown_stream_is_empty_and_has_no_head(self, store: EventStore) -> None:
        assert await store.read_stream("ep-none") == []
        assert await store.head("ep-none") is None

    async def test_streams_of_different_episodes_are_independent(self, store: EventStore) -> None:
        await store.append("ep-a", [event(1, "ep-a")])
        await store.append("ep-b", [event(1, "ep-b"), event(2, "ep-b")])

        assert [s.seq for s in await store.read_stream("ep-a")] == [1]
        assert [s.seq for s in await store.read_stream("ep-b")] == [1, 2]

    async def test_a_later_append_continues_the_chain(self, store: EventStore) -> None:
        await store.append(EPISODE, [event(1)])
        await store.append(EPISODE, [event(2), event(3)])

        assert verify_chain(await store.read_stream(EPISODE), CHAIN_KEY).ok

    async def test_an_empty_append_writes_nothing_and_reports_the_head(
        self, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])

        result = await store.append(EPISODE, [])

        assert (result.written, result.head_seq) == (0, 1)

    async def test_ping_succeeds_on_a_live_database(self, store: EventStore) -> None:
        await store.ping()


class TestIdempotentAppend:
    async def test_reappending_the_same_events_succeeds_without_writing(
        self, store: EventStore
    ) -> None:
        first = await store.append(EPISODE, [event(1), event(2)])
        before = await store.read_stream(EPISODE)

        again = await store.append(EPISODE, [event(1), event(2)])

        assert (again.written, again.already_present) == (0, 2)
        assert again.head_hash == first.head_hash
        assert await store.read_stream(EPISODE) == before

    async def test_a_retried_batch_that_was_partly_stored_writes_only_the_rest(
        self, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1), event(2)])

        result = await store.append(EPISODE, [event(2), event(3), event(4)])

        assert (result.written, result.already_present, result.head_seq) == (2, 1, 4)
        stored = await store.read_stream(EPISODE)
        assert [s.seq for s in stored] == [1, 2, 3, 4]
        assert verify_chain(stored, CHAIN_KEY).ok


class TestConflictingAppend:
    async def test_different_content_at_a_taken_seq_is_a_conflict_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])
        before = await store.read_stream(EPISODE)

        with pytest.raises(AppendConflict, match="seq 1 already holds a different event"):
            await store.append(EPISODE, [event(1, client_ref="someone-else"), event(2)])

        assert await store.read_stream(EPISODE) == before

    async def test_a_seq_that_would_leave_a_gap_is_a_conflict(self, store: EventStore) -> None:
        await store.append(EPISODE, [event(1)])

        with pytest.raises(AppendConflict, match="would leave a gap after seq 1"):
            await store.append(EPISODE, [event(3)])

        assert await store.head(EPISODE) == (1, (await store.read_stream(EPISODE))[0].hash)

    async def test_a_new_stream_must_start_at_seq_one(self, store: EventStore) -> None:
        with pytest.raises(AppendConflict, match="gap after seq 0"):
            await store.append(EPISODE, [event(2)])

    async def test_a_batch_with_non_contiguous_seqs_is_refused(self, store: EventStore) -> None:
        with pytest.raises(AppendConflict, match="contiguous seqs, got 1 then 3"):
            await store.append(EPISODE, [event(1), event(3)])

        assert await store.head(EPISODE) is None

    async def test_an_event_of_another_episode_is_refused(self, store: EventStore) -> None:
        with pytest.raises(AppendConflict, match="belongs to episode ep-other"):
            await store.append(EPISODE, [event(1, episode_id="ep-other")])

    async def test_of_concurrent_different_appends_to_one_stream_exactly_one_wins(
        self, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])
        contenders = [[event(2, client_ref=f"writer-{n}")] for n in range(8)]

        outcomes = await asyncio.gather(
            *(store.append(EPISODE, batch) for batch in contenders), return_exceptions=True
        )

        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1
        assert winners[0].written == 1
        assert all(isinstance(loser, AppendConflict) for loser in losers)
        stored = await store.read_stream(EPISODE)
        assert [s.seq for s in stored] == [1, 2]
        assert verify_chain(stored, CHAIN_KEY).ok

    async def test_concurrent_identical_appends_store_the_event_once(
        self, store: EventStore
    ) -> None:
        outcomes = await asyncio.gather(*(store.append(EPISODE, [event(1)]) for _ in range(8)))

        assert sorted(o.written for o in outcomes) == [0] * 7 + [1]
        assert len(await store.read_stream(EPISODE)) == 1

    @pytest.mark.parametrize(
        ("theirs", "ours", "outcome"),
        [("client-42", "client-42", "already stored"), ("writer-a", "writer-b", "conflict")],
    )
    async def test_an_append_that_meets_an_uncommitted_one_at_its_seq_is_decided_after_it(
        self, store: EventStore, db_pool: Pool, theirs: str, ours: str, outcome: str
    ) -> None:
        # Another writer's seq 2 is written but not committed when this store, which knows
        # the head, appends its own seq 2: it cannot see that row, so it waits on it.
        await store.append(EPISODE, [event(1)])
        async with db_pool.acquire() as conn:
            other_writer = conn.transaction()
            await other_writer.start()
            other = EventStore(_OneConnection(conn), chain_key=CHAIN_KEY)
            await other.append(EPISODE, [event(2, client_ref=theirs)])
            racing = asyncio.create_task(store.append(EPISODE, [event(2, client_ref=ours)]))
            await asyncio.sleep(0.3)
            waited = not racing.done()
            await other_writer.commit()
            result = await asyncio.gather(racing, return_exceptions=True)

        assert waited
        if outcome == "conflict":
            assert isinstance(result[0], AppendConflict)
            assert "seq 2 already holds a different event" in str(result[0])
        else:
            assert not isinstance(result[0], BaseException)
            assert (result[0].written, result[0].already_present) == (0, 1)
        stored = await store.read_stream(EPISODE)
        assert [(s.seq, s.payload["client_ref"]) for s in stored] == [(1, "client-42"), (2, theirs)]
        assert verify_chain(stored, CHAIN_KEY).ok


class TestDatabaseRefusesChanges:
    async def test_update_of_an_event_is_refused(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: UPDATE"):
            await owner_pool.execute("UPDATE events SET actor_id = 'mallory'")

    async def test_delete_of_an_event_is_refused(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: DELETE"):
            await owner_pool.execute("DELETE FROM events WHERE seq = 1")

    async def test_truncate_of_events_is_refused(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)])

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: TRUNCATE"):
            await owner_pool.execute("TRUNCATE events")

        assert len(await store.read_stream(EPISODE)) == 1


class TestVerifyChain:
    @pytest.fixture
    async def five_events(self, store: EventStore) -> None:
        await store.append(EPISODE, [event(seq) for seq in range(1, 6)])

    @pytest.mark.usefixtures("five_events")
    async def test_an_untouched_stream_verifies(self, store: EventStore) -> None:
        result = verify_chain(await store.read_stream(EPISODE), CHAIN_KEY)

        assert result.ok
        assert (result.first_bad_seq, result.reason, result.events_checked) == (None, None, 5)
        assert result.head_hash == (await store.head(EPISODE) or (0, ""))[1]

    @pytest.mark.usefixtures("five_events")
    async def test_a_changed_payload_is_named_by_its_seq(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await tamper(
            owner_pool,
            "UPDATE events SET payload = jsonb_set(payload, '{client_ref}', '\"client-99\"') "
            "WHERE seq = 3",
        )

        result = verify_chain(await store.read_stream(EPISODE), CHAIN_KEY)

        assert not result.ok
        assert result.first_bad_seq == 3
        assert result.reason is not None
        assert result.reason.startswith("hash mismatch")

    @pytest.mark.usefixtures("five_events")
    async def test_a_removed_event_is_named_by_its_seq(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await tamper(owner_pool, "DELETE FROM events WHERE seq = 2")

        result = verify_chain(await store.read_stream(EPISODE), CHAIN_KEY)

        assert (result.ok, result.first_bad_seq) == (False, 2)
        assert result.reason == "seq gap: expected seq 2, found seq 3"

    @pytest.mark.usefixtures("five_events")
    async def test_two_swapped_events_are_named_by_the_first_seq(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await tamper(
            owner_pool,
            "UPDATE events SET seq = 1000 WHERE seq = 2",
            "UPDATE events SET seq = 2 WHERE seq = 4",
            "UPDATE events SET seq = 4 WHERE seq = 1000",
        )

        result = verify_chain(await store.read_stream(EPISODE), CHAIN_KEY)

        assert (result.ok, result.first_bad_seq) == (False, 2)
        assert result.reason is not None
        assert result.reason.startswith("prev-hash mismatch")

    @pytest.mark.usefixtures("five_events")
    async def test_a_column_that_disagrees_with_the_payload_is_named(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await tamper(owner_pool, "UPDATE events SET actor_id = 'mallory' WHERE seq = 4")

        result = verify_chain(await store.read_stream(EPISODE), CHAIN_KEY)

        assert (result.ok, result.first_bad_seq) == (False, 4)
        assert result.reason == "column mismatch: actor_id differs from the payload"

    async def test_an_empty_stream_verifies(self) -> None:
        assert verify_chain([], CHAIN_KEY).ok


class TestCreatePool:
    async def test_an_unreachable_server_names_the_setting_but_not_the_password(
        self, free_tcp_port: int
    ) -> None:
        url = f"postgresql://carepath:s3cret@127.0.0.1:{free_tcp_port}/carepath"

        with pytest.raises(DatabaseUnavailable, match="CAREPATH_DATABASE_URL") as caught:
            await create_pool(url)

        message = str(caught.value)
        assert "s3cret" not in message
        assert "127.0.0.1" in message
        assert "\n" not in message

    async def test_payloads_come_back_as_dicts(self, db_pool: Pool) -> None:
        value = await db_pool.fetchval("SELECT '{\"a\": [1, 2]}'::jsonb")

        assert value == {"a": [1, 2]}


class TestCommandsApplyOnce:
    """With a command key, the store answers for a command id: once, for one request."""

    async def test_the_events_of_an_applied_command_come_back_instead_of_new_ones(
        self, store: EventStore
    ) -> None:
        key = CommandKey(f"cmd-{EPISODE}-1", "a" * 64)
        await store.append(EPISODE, [event(1)], command=key)
        # The same command decided again later (another run) lands at another seq.
        again = event(2).model_copy(update={"command_id": key.command_id})

        result = await store.append(EPISODE, [again], command=key)

        assert (result.written, result.head_seq) == (0, 1)
        assert [e.event for e in result.applied_before] == [event(1)]
        assert [s.seq for s in await store.read_stream(EPISODE)] == [1]

    async def test_the_same_id_with_another_request_is_refused_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        key = CommandKey(f"cmd-{EPISODE}-1", "a" * 64)
        await store.append(EPISODE, [event(1)], command=key)
        again = event(2).model_copy(update={"command_id": key.command_id})

        with pytest.raises(IdempotencyKeyReused, match="different request"):
            await store.append(EPISODE, [again], command=CommandKey(key.command_id, "b" * 64))
        with pytest.raises(IdempotencyKeyReused):
            await store.append(EPISODE, [], command=CommandKey(key.command_id, "b" * 64))

        assert [s.seq for s in await store.read_stream(EPISODE)] == [1]

    async def test_an_empty_append_only_looks_the_command_up(self, store: EventStore) -> None:
        key = CommandKey(f"cmd-{EPISODE}-1", "a" * 64)
        await store.append(EPISODE, [event(1)], command=key)

        found = await store.append(EPISODE, [], command=key)
        missing = await store.append(EPISODE, [], command=CommandKey("cmd-other", "a" * 64))

        assert [e.seq for e in found.applied_before] == [1]
        assert (missing.applied_before, missing.written, missing.head_seq) == ((), 0, 1)

    async def test_a_retried_append_of_the_same_command_is_a_plain_success(
        self, store: EventStore
    ) -> None:
        key = CommandKey(f"cmd-{EPISODE}-1", "a" * 64)
        first = await store.append(EPISODE, [event(1)], command=key)

        retried = await store.append(EPISODE, [event(1)], command=key)

        assert (retried.written, retried.already_present, retried.applied_before) == (0, 1, ())
        assert retried.digests == first.digests

    async def test_a_command_stored_without_a_key_is_answered_whatever_the_request(
        self, store: EventStore
    ) -> None:
        # Events appended before fingerprints were kept (or by an import) have none.
        await store.append(EPISODE, [event(1)])
        again = event(2).model_copy(update={"command_id": f"cmd-{EPISODE}-1"})

        result = await store.append(
            EPISODE, [again], command=CommandKey(f"cmd-{EPISODE}-1", "c" * 64)
        )

        assert [e.seq for e in result.applied_before] == [1]

    async def test_digests_are_those_of_the_stored_payloads(self, store: EventStore) -> None:
        events = [event(1), event(2)]

        result = await store.append(EPISODE, events)

        stored = await store.read_stream(EPISODE)
        assert result.digests == tuple(payload_digest(s.payload) for s in stored)
        assert result.digests == event_digests(events)

    async def test_the_fingerprint_table_is_append_only(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await store.append(EPISODE, [event(1)], command=CommandKey(f"cmd-{EPISODE}-1", "a" * 64))

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner_pool.execute(
                "UPDATE command_fingerprints SET fingerprint = repeat('b', 64)"
            )


class TestRefusalsNoRetryFixes:
    """PostgreSQL's lasting refusals become StoreRefused; nothing of the append is written."""

    async def test_a_constraint_violation_is_refused_and_named(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await owner_pool.execute(
            "ALTER TABLE events ADD CONSTRAINT no_poison "
            "CHECK (payload->>'client_ref' IS DISTINCT FROM 'poison')"
        )

        with pytest.raises(StoreRefused, match="no_poison") as caught:
            await store.append(EPISODE, [event(1, client_ref="poison")])

        assert "CheckViolationError 23514" in str(caught.value)
        assert "poison'" not in str(caught.value)  # the row's values stay out of the message
        assert await store.read_stream(EPISODE) == []

    async def test_a_failing_read_model_update_never_refuses_an_append_and_parks_only_that_stream(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await owner_pool.execute(
            "CREATE FUNCTION broken_projection() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.episode_id = 'ep-0001' THEN RAISE EXCEPTION 'projection bug'; "
            "END IF; RETURN NEW; END; $$"
        )
        await owner_pool.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON episode_summary "
            "FOR EACH ROW EXECUTE FUNCTION broken_projection()"
        )

        await store.append(EPISODE, [event(1)])
        await store.append("ep-0002", [event(1, episode_id="ep-0002")])
        await Projector(db_pool).catch_up()

        assert [e.seq for e in await store.read_stream(EPISODE)] == [1]
        failure = await db_pool.fetchrow(
            "SELECT seq, reason FROM projection_failures WHERE episode_id = $1", EPISODE
        )
        assert failure is not None
        assert "projection bug" in failure["reason"]
        assert (
            await db_pool.fetchval(
                "SELECT count(*) FROM episode_summary WHERE episode_id = 'ep-0002'"
            )
            == 1
        )

    async def test_a_serialization_failure_may_pass_and_stays_retryable(
        self, owner_pool: Pool, db_pool: Pool, store: EventStore
    ) -> None:
        await owner_pool.execute(
            "CREATE FUNCTION serialization_failure() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'try again' USING ERRCODE = '40001'; END; $$"
        )
        await owner_pool.execute(
            "CREATE TRIGGER transient BEFORE INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION serialization_failure()"
        )

        with pytest.raises(DatabaseUnavailable, match="retrying may help"):
            await store.append(EPISODE, [event(1)])
