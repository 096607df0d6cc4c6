"""Read models: updated in the append's transaction, and identical after a rebuild."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.events import Event
from store import EventStore
from store.db import Pool
from store.projections import dump_read_models, rebuild_projections
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration


async def append_one_by_one(store: EventStore, episode_id: str, events: list[Event]) -> None:
    for event in events:
        await store.append(episode_id, [event])


async def read_models(pool: Pool) -> dict[str, list[dict[str, object]]]:
    async with pool.acquire() as conn:
        return await dump_read_models(conn)


class TestLiveProjection:
    async def test_an_episode_in_program_has_a_summary_caseload_tasks_deadlines_and_hours(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        events = episode_events("ep-a", sessions=5)
        await append_one_by_one(store, "ep-a", events)

        models = await read_models(db_pool)

        (summary,) = models["episode_summary"]
        assert summary["stage"] == "in_program"
        assert summary["program_id"] == "adult-iop"
        assert summary["primary_clinician"] == "cal.clinician"
        assert summary["last_seq"] == len(events)
        # Two no-shows escalated twice; the first two tasks went overdue and escalated again.
        assert summary["escalation_level"] == 3
        assert summary["last_event_at"] == events[-1].occurred_at
        assert summary["closed_at"] is None
        caseload = {(r["clinician_id"], r["is_primary"]) for r in models["caseload"]}
        assert caseload == {("cal.clinician", True), ("pat.psychiatrist", False)}
        tasks = {t["level"]: t["overdue"] for t in models["open_tasks"]}
        assert tasks == {1: True, 2: True, 3: False}
        assert all(t["due_at"] > t["opened_at"] for t in models["open_tasks"])
        kinds = {d["kind"] for d in models["upcoming_deadlines"]}
        assert {"task_due", "plan_review_overdue"} <= kinds
        hours = models["attended_hours"]
        assert [(h["iso_week"], h["hours"]) for h in hours] == [(2, Decimal("8.00")), (3, 0)]
        assert (hours[0]["attended"], hours[0]["partial"], hours[1]["no_shows"]) == (2, 1, 2)
        (consent,) = models["episode_consents"]
        assert (consent["recipient_kind"], consent["revoked"]) == ("family", False)

    async def test_a_discharged_episode_leaves_caseload_tasks_and_deadlines(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        events = episode_events("ep-b", sessions=6, discharge=True)
        await store.append("ep-b", events)

        models = await read_models(db_pool)

        (summary,) = models["episode_summary"]
        assert (summary["stage"], summary["escalation_level"]) == ("discharged", 0)
        assert summary["closed_at"] == events[-1].occurred_at
        assert models["caseload"] == models["open_tasks"] == models["upcoming_deadlines"] == []
        assert models["attended_hours"], "history of attendance stays"

    async def test_a_rejected_append_leaves_the_read_models_untouched(self, db_pool: Pool) -> None:
        store = EventStore(db_pool)
        events = episode_events("ep-c", sessions=2)
        await store.append("ep-c", events[:5])
        before = await read_models(db_pool)

        with pytest.raises(Exception, match="gap"):
            await store.append("ep-c", events[6:8])

        assert await read_models(db_pool) == before

    async def test_a_stream_that_does_not_fold_is_recorded_and_its_appends_still_succeed(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        events = episode_events("ep-d", sessions=1)
        # A second referral at seq 2 cannot follow the first one.
        bad = events[0].model_copy(update={"seq": 2})
        await store.append("ep-d", [events[0]])

        result = await store.append("ep-d", [bad])

        assert result.written == 1
        models = await read_models(db_pool)
        (failure,) = models["projection_failures"]
        assert (failure["seq"], failure["reason"].split(":")[0]) == (2, "ValueError")
        assert models["episode_summary"][0]["last_seq"] == 1


class TestRebuild:
    async def test_rebuilt_read_models_equal_the_ones_written_by_live_appends(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        streams = {
            "ep-1": episode_events("ep-1", sessions=9),
            "ep-2": episode_events("ep-2", sessions=4, clinician="kim.clinician"),
            "ep-3": episode_events("ep-3", sessions=7, discharge=True),
        }
        # Live: single appends, batches and concurrent streams, as the workers do it.
        await asyncio.gather(
            append_one_by_one(store, "ep-1", streams["ep-1"]),
            store.append("ep-2", streams["ep-2"]),
            append_one_by_one(store, "ep-3", streams["ep-3"][:10]),
        )
        await store.append("ep-3", streams["ep-3"][10:])
        live = await read_models(db_pool)
        seen: list[tuple[int, int]] = []

        result = await rebuild_projections(db_pool, progress=lambda d, t: seen.append((d, t)))

        assert await read_models(db_pool) == live
        assert (result.streams, result.events) == (3, sum(len(e) for e in streams.values()))
        assert result.failed_streams == ()
        assert seen == [(1, 3), (2, 3), (3, 3)]

    async def test_rebuild_restores_read_models_that_were_lost_or_altered(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        await store.append("ep-1", episode_events("ep-1", sessions=8))
        live = await read_models(db_pool)
        async with db_pool.acquire() as conn:
            await conn.execute("DELETE FROM caseload")
            await conn.execute("UPDATE episode_summary SET stage = 'discharged'")
            await conn.execute("DELETE FROM projection_snapshots")

        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live

    async def test_appends_after_a_rebuild_continue_from_its_snapshots(self, db_pool: Pool) -> None:
        store = EventStore(db_pool)
        events = episode_events("ep-1", sessions=8)
        await store.append("ep-1", events[:20])
        await rebuild_projections(db_pool)
        await store.append("ep-1", events[20:])
        live = await read_models(db_pool)

        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live

    async def test_appends_during_a_rebuild_are_neither_lost_nor_double_counted(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool)
        streams = {f"ep-{i}": episode_events(f"ep-{i}", sessions=6) for i in range(4)}
        for episode_id, events in streams.items():
            await store.append(episode_id, events[:15])

        await asyncio.gather(
            rebuild_projections(db_pool),
            *(append_one_by_one(store, ep, events[15:]) for ep, events in streams.items()),
            rebuild_projections(db_pool),
        )
        live = await read_models(db_pool)
        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert [r["last_seq"] for r in live["episode_summary"]] == [
            len(e) for e in streams.values()
        ]

    async def test_events_stored_without_projections_are_folded_by_the_next_append(
        self, db_pool: Pool
    ) -> None:
        events = episode_events("ep-1", sessions=3)
        await EventStore(db_pool, projections=False).append("ep-1", events[:-1])
        await EventStore(db_pool).append("ep-1", events[-1:])
        live = await read_models(db_pool)

        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert live["episode_summary"][0]["last_seq"] == len(events)


def test_sample_streams_are_deterministic() -> None:
    assert episode_events("ep-x", sessions=3) == episode_events("ep-x", sessions=3)
    assert episode_events("ep-x")[0].occurred_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
