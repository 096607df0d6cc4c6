"""The append activity under Temporal's retries: committed once, never duplicated or gapped."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from activities.event_store import EventStoreActivities
from store import EventStore, verify_stream
from store.db import Pool
from store.projections import dump_read_models, rebuild_projections
from testing.sample_streams import episode_events
from workflows.messages import AppendEventsInput

pytestmark = pytest.mark.integration

EP = "ep-retry"


class TestAppendActivityRetries:
    async def test_a_retry_after_a_lost_acknowledgement_writes_nothing_twice(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        acts = EventStoreActivities(store)
        events = episode_events(EP, sessions=4)
        await store.append(EP, events[:10])
        inp = AppendEventsInput(episode_id=EP, events=tuple(events[10:14]))

        # Attempt 1 commits, then the worker dies before Temporal hears of it ...
        await ActivityEnvironment().run(acts.append_events, inp)
        async with db_pool.acquire() as conn:
            after_first = await dump_read_models(conn)
        # ... so Temporal runs attempt 2 with the same input.
        retried = await ActivityEnvironment().run(acts.append_events, inp)

        assert (retried.head_seq, retried.written) == (14, 0)
        stored = await store.read_stream(EP)
        assert [s.seq for s in stored] == list(range(1, 15))
        assert (await verify_stream(db_pool, EP)).ok
        async with db_pool.acquire() as conn:
            assert await dump_read_models(conn) == after_first
        await rebuild_projections(db_pool)
        async with db_pool.acquire() as conn:
            assert await dump_read_models(conn) == after_first

    async def test_the_next_command_after_a_retried_append_continues_without_a_gap(
        self, db_pool: Pool
    ) -> None:
        acts = EventStoreActivities(EventStore(db_pool))
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
        store = EventStore(db_pool)
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
