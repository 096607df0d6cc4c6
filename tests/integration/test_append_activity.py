"""The append activity under Temporal's retries: committed once, never duplicated or gapped."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.event_store import EventStoreActivities
from domain.canonical import event_digests
from store import EventStore, verify_stream
from store.db import Pool
from store.projections import Projector, rebuild_projections
from testing.keys import CHAIN_KEY
from testing.read_models import read_models_at_head
from testing.sample_streams import episode_events
from workflows.messages import AppendEventsInput

pytestmark = pytest.mark.integration

EP = "ep-retry"


class TestAppendActivityRetries:
    async def test_a_retry_after_a_lost_acknowledgement_writes_nothing_twice(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        acts = EventStoreActivities(store)
        events = episode_events(EP, sessions=4)
        await store.append(EP, events[:10])
        inp = AppendEventsInput(episode_id=EP, events=tuple(events[10:14]))

        # Attempt 1 commits, then the worker dies before Temporal hears of it ...
        await ActivityEnvironment().run(acts.append_events, inp)
        await Projector(db_pool).catch_up()
        async with db_pool.acquire() as conn:
            after_first = await read_models_at_head(conn)
        # ... so Temporal runs attempt 2 with the same input.
        retried = await ActivityEnvironment().run(acts.append_events, inp)

        assert (retried.head_seq, retried.written) == (14, 0)
        stored = await store.read_stream(EP)
        assert [s.seq for s in stored] == list(range(1, 15))
        assert (await verify_stream(db_pool, EP, chain_key=CHAIN_KEY)).ok
        await Projector(db_pool).catch_up()
        async with db_pool.acquire() as conn:
            assert await read_models_at_head(conn) == after_first
        await rebuild_projections(db_pool)
        async with db_pool.acquire() as conn:
            assert await read_models_at_head(conn) == after_first

    async def test_the_next_command_after_a_retried_append_continues_without_a_gap(
        self, db_pool: Pool
    ) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        events = episode_events(EP, sessions=2)
        first = AppendEventsInput(episode_id=EP, events=tuple(events[:3]))
        await ActivityEnvironment().run(acts.append_events, first)
        await ActivityEnvironment().run(acts.append_events, first)

        result = await ActivityEnvironment().run(
            acts.append_events, AppendEventsInput(episode_id=EP, events=tuple(events[3:5]))
        )

        assert (result.head_seq, result.written) == (5, 2)

    async def test_different_content_at_a_taken_seq_returns_what_is_stored(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        acts = EventStoreActivities(store)
        events = episode_events(EP, sessions=1)
        await ActivityEnvironment().run(
            acts.append_events, AppendEventsInput(episode_id=EP, events=tuple(events[:2]))
        )
        other = events[1].model_copy(update={"command_id": "another-command"})

        result = await ActivityEnvironment().run(
            acts.append_events, AppendEventsInput(episode_id=EP, events=(other,))
        )

        # Nothing written; the events already at those positions come back for adoption.
        assert result.written == 0
        assert result.stored_instead == (events[1],)
        assert len(await store.read_stream(EP)) == 2


class TestAppendActivityRefusals:
    """What no retry can fix is a non-retryable ApplicationError naming its cause."""

    async def test_a_conflict_with_nothing_to_adopt_is_not_retried(self, db_pool: Pool) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        events = episode_events(EP, sessions=1)
        await ActivityEnvironment().run(
            acts.append_events, AppendEventsInput(episode_id=EP, events=tuple(events[:2]))
        )

        # Seq 4 after a head of 2 would leave a gap.
        with pytest.raises(ApplicationError, match="gap") as caught:
            await ActivityEnvironment().run(
                acts.append_events, AppendEventsInput(episode_id=EP, events=(events[3],))
            )

        assert (caught.value.type, caught.value.non_retryable) == ("AppendConflict", True)

    async def test_a_reused_command_id_is_not_retried(self, db_pool: Pool) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        first = episode_events(EP, sessions=1)[0]
        keyed = AppendEventsInput(
            episode_id=EP, events=(first,), command_id=first.command_id, fingerprint="a" * 64
        )
        await ActivityEnvironment().run(acts.append_events, keyed)

        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(
                acts.append_events, keyed.model_copy(update={"fingerprint": "b" * 64})
            )

        assert (caught.value.type, caught.value.non_retryable) == ("IdempotencyKeyReused", True)

    async def test_a_refusal_by_postgresql_is_not_retried(
        self, owner_pool: Pool, db_pool: Pool
    ) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        await owner_pool.execute("ALTER TABLE events ADD CONSTRAINT never CHECK (seq < 0)")

        with pytest.raises(ApplicationError, match="never") as caught:
            await ActivityEnvironment().run(
                acts.append_events,
                AppendEventsInput(episode_id=EP, events=tuple(episode_events(EP, sessions=1)[:1])),
            )

        assert (caught.value.type, caught.value.non_retryable) == ("StoreRefused", True)

    async def test_a_command_applied_earlier_comes_back_with_what_the_store_holds_beyond(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        acts = EventStoreActivities(store)
        events = episode_events(EP, sessions=1)
        first = events[0]
        await store.append(EP, events[:3])

        # A run at version 1 asks for the referral again: it gets the referral, and the two
        # events stored after its version, to adopt.
        result = await ActivityEnvironment().run(
            acts.append_events,
            AppendEventsInput(
                episode_id=EP,
                events=(),
                command_id=first.command_id,
                fingerprint="a" * 64,
                after_seq=1,
            ),
        )

        assert result.applied_before == (first,)
        assert result.stored_instead == tuple(events[1:3])
        assert result.written == 0

    async def test_a_written_append_reports_the_digests_of_what_is_stored(
        self, db_pool: Pool
    ) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        events = tuple(episode_events(EP, sessions=1)[:2])

        result = await ActivityEnvironment().run(
            acts.append_events, AppendEventsInput(episode_id=EP, events=events)
        )

        assert result.stored_digests == event_digests(events)
