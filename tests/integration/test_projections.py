"""Read models: folded by the projector after the appends, and identical after a rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from domain.commands import CorrectAttendance
from domain.decider import DecisionContext, decide, fold
from domain.events import Event, WeeklyAttendanceChecked
from domain.vocabulary import AttendanceStatus
from programs import load_catalog
from store import EventStore, projections
from store.db import Pool
from store.errors import AppendConflict, RebuildRunning
from store.projections import (
    REBUILD_LOCK_KEY,
    Projector,
    is_folded,
    rebuild_projections,
    running_projector,
    wait_for_position,
)
from testing import samples
from testing.keys import CHAIN_KEY
from testing.read_models import read_models_at_head
from testing.sample_streams import T0, episode_events

pytestmark = pytest.mark.integration


async def append_one_by_one(store: EventStore, episode_id: str, events: list[Event]) -> None:
    """Append and fold event by event: each fold starts from the snapshot the last left."""
    for event in events:
        await store.append(episode_id, [event])
        await Projector(store.pool).catch_up()


async def appended_at(store: EventStore, events: list[Event]) -> int:
    """The position of the last event of `ep-1` after appending `events` to it."""
    result = await store.append("ep-1", events)
    assert result.position is not None
    return result.position


async def wait_for_summary_seq(pool: Pool, seq: int) -> None:
    """Until the read models include the stream's event `seq`."""
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT last_seq FROM episode_summary") != seq:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def read_models(pool: Pool) -> dict[str, list[dict[str, object]]]:
    """Every read-model row once the projector has folded every stored event."""
    await Projector(pool).catch_up()
    async with pool.acquire() as conn:
        return await read_models_at_head(conn)


class TestLiveProjection:
    async def test_an_episode_in_program_has_a_summary_caseload_tasks_deadlines_and_hours(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-a", sessions=5)
        await append_one_by_one(store, "ep-a", events)

        models = await read_models(db_pool)

        (summary,) = models["episode_summary"]
        assert summary["stage"] == "in_program"
        assert summary["program_id"] == "adult-iop"
        assert summary["primary_clinician"] == "cal.clinician"
        assert summary["last_seq"] == len(events)
        # A no-show's outreach went overdue twice: each time the task one rung up
        # superseded it, so only the level-3 task is open.
        assert summary["escalation_level"] == 3
        assert summary["last_event_at"] == events[-1].occurred_at
        assert summary["closed_at"] is None
        caseload = {(r["clinician_id"], r["is_primary"]) for r in models["caseload"]}
        assert caseload == {("cal.clinician", True), ("pat.psychiatrist", False)}
        tasks = {t["level"]: t["overdue"] for t in models["open_tasks"]}
        assert tasks == {3: False}
        assert all(t["due_at"] > t["opened_at"] for t in models["open_tasks"])
        kinds = {d["kind"] for d in models["upcoming_deadlines"]}
        assert {"task_due", "plan_review_overdue"} <= kinds
        # The clinic's weeks (UTC here) run from midnight of the admission day: the checked
        # one, then the open one.
        hours = models["attended_hours"]
        admission_day = events[0].occurred_at.replace(hour=0)
        assert [(h["week_start"], h["hours"], h["below_minimum"]) for h in hours] == [
            (admission_day, Decimal("8.00"), True),
            (admission_day + timedelta(days=7), 0, None),
        ]
        assert (hours[0]["attended"], hours[0]["partial"], hours[0]["no_shows"]) == (2, 1, 0)
        assert hours[1]["no_shows"] == 2
        (consent,) = models["episode_consents"]
        assert (consent["recipient_kind"], consent["revoked"]) == ("family", False)

    async def test_a_discharged_episode_leaves_caseload_tasks_and_deadlines(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-b", sessions=6, discharge=True)
        await store.append("ep-b", events)

        models = await read_models(db_pool)

        (summary,) = models["episode_summary"]
        assert (summary["stage"], summary["escalation_level"]) == ("discharged", 0)
        assert summary["closed_at"] == events[-1].occurred_at
        assert models["caseload"] == models["open_tasks"] == models["upcoming_deadlines"] == []
        assert models["attended_hours"], "history of attendance stays"

    async def test_a_rejected_append_leaves_the_read_models_untouched(self, db_pool: Pool) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-c", sessions=2)
        await store.append("ep-c", events[:5])
        before = await read_models(db_pool)

        with pytest.raises(Exception, match="gap"):
            await store.append("ep-c", events[6:8])

        assert await read_models(db_pool) == before

    async def test_a_stream_that_does_not_fold_is_recorded_and_its_appends_still_succeed(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
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


class TestAttendedHours:
    async def test_rows_agree_with_the_weekly_checks_on_weeks_that_start_midweek(
        self, db_pool: Pool
    ) -> None:
        # Admitted on a Wednesday: no week of this episode starts on an ISO Monday.
        events = episode_events("ep-w", sessions=9, start=T0 + timedelta(days=2))
        await EventStore(db_pool, chain_key=CHAIN_KEY).append("ep-w", events)
        checks = [e for e in events if isinstance(e, WeeklyAttendanceChecked)]

        rows = (await read_models(db_pool))["attended_hours"]

        assert len(checks) == 2
        assert all(check.week_start.isoweekday() == 3 for check in checks)
        assert [
            (
                r["week_start"],
                r["week_end"],
                r["hours"],
                r["checked_hours"],
                r["minimum_hours"],
                r["below_minimum"],
            )
            for r in rows[: len(checks)]
        ] == [
            (
                c.week_start,
                c.week_end,
                Decimal(str(c.attended_hours)),
                Decimal(str(c.attended_hours)),
                Decimal(str(c.minimum_hours)),
                c.below_minimum,
            )
            for c in checks
        ]
        (open_week,) = rows[len(checks) :]
        assert open_week["week_start"] == checks[-1].week_end
        assert open_week["below_minimum"] is None

    async def test_a_corrected_session_changes_the_hours_but_not_the_weeks_verdict(
        self, db_pool: Pool
    ) -> None:
        events = episode_events("ep-k", sessions=5)
        check = next(e for e in events if isinstance(e, WeeklyAttendanceChecked))
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        await store.append("ep-k", events)
        # s2 was recorded partial in the checked week; the client stayed the whole session.
        correction = CorrectAttendance(
            command_id="fix-1",
            actor=samples.CLINICIAN,
            session_id="s2",
            status=AttendanceStatus.ATTENDED,
            reason="signed out late",
        )
        ctx = DecisionContext("ep-k", events[-1].occurred_at, load_catalog())
        await store.append("ep-k", list(decide(fold(events), correction, ctx)))

        first = (await read_models(db_pool))["attended_hours"][0]

        assert first["week_start"] == check.week_start
        assert (first["hours"], first["checked_hours"]) == (Decimal("9.00"), Decimal("8.00"))
        assert first["below_minimum"] is True


class TestRebuild:
    async def test_rebuilt_read_models_equal_the_ones_written_by_live_appends(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
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

    async def test_a_running_projector_rewrites_only_the_read_models_an_event_changed(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=9)
        consented = next(i for i, e in enumerate(events) if e.type == "consent_recorded")
        projector = Projector(db_pool)  # one projector throughout, as in a worker
        for event in events[: consented + 1]:
            await store.append("ep-1", [event])
            await projector.catch_up()
        # A row the remaining events do not change is left as it is: it is not rewritten.
        await db_pool.execute("DELETE FROM episode_consents")
        for event in events[consented + 1 :]:
            await store.append("ep-1", [event])
            await projector.catch_up()
        live = await read_models(db_pool)
        assert live["episode_consents"] == []
        assert [r["last_seq"] for r in live["episode_summary"]] == [len(events)]

        # Every row it did write is the one a fold from the start writes.
        await rebuild_projections(db_pool)
        rebuilt = await read_models(db_pool)
        assert len(rebuilt["episode_consents"]) == 1
        assert {**rebuilt, "episode_consents": []} == live

    async def test_rebuild_restores_read_models_that_were_lost_or_altered(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        await store.append("ep-1", episode_events("ep-1", sessions=8))
        live = await read_models(db_pool)
        async with db_pool.acquire() as conn:
            await conn.execute("DELETE FROM caseload")
            await conn.execute("UPDATE episode_summary SET stage = 'discharged'")
            await conn.execute("DELETE FROM projection_snapshots")

        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live

    async def test_appends_after_a_rebuild_continue_from_its_snapshots(self, db_pool: Pool) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
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
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = {f"ep-{i}": episode_events(f"ep-{i}", sessions=6) for i in range(4)}
        for episode_id, events in streams.items():
            await store.append(episode_id, events[:15])

        await asyncio.gather(
            rebuild_projections(db_pool),
            *(append_one_by_one(store, ep, events[15:]) for ep, events in streams.items()),
        )
        live = await read_models(db_pool)
        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert [r["last_seq"] for r in live["episode_summary"]] == [
            len(e) for e in streams.values()
        ]

    async def test_a_second_rebuild_while_one_runs_is_refused(self, db_pool: Pool) -> None:
        async with db_pool.acquire() as running:
            await running.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK_KEY)
            with pytest.raises(RebuildRunning):
                await rebuild_projections(db_pool)
            await running.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_KEY)

    async def test_a_stream_without_a_snapshot_is_folded_from_its_start(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=3)
        await store.append("ep-1", events[:-1])
        await read_models(db_pool)
        await db_pool.execute("DELETE FROM projection_snapshots")
        await store.append("ep-1", events[-1:])
        live = await read_models(db_pool)

        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert live["episode_summary"][0]["last_seq"] == len(events)


class TestProjector:
    async def test_appends_never_wait_for_the_read_models(
        self, db_pool: Pool, owner_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=2)
        async with owner_pool.acquire() as conn, conn.transaction():
            # Every read-model table locked against everything, as long as the append runs.
            await conn.execute(
                "LOCK TABLE projection_snapshots, projection_failures, episode_summary, "
                "caseload, open_tasks, upcoming_deadlines, attended_hours, episode_consents "
                "IN ACCESS EXCLUSIVE MODE"
            )
            result = await asyncio.wait_for(store.append("ep-1", events), timeout=10)
        assert result.written == len(events)
        assert result.position is not None
        assert await is_folded(db_pool, result.position) is False

        await Projector(db_pool).catch_up()

        assert await is_folded(db_pool, result.position) is True

    async def test_the_projector_never_passes_an_append_that_has_not_committed(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        slow, fast = episode_events("ep-slow", sessions=1), episode_events("ep-fast", sessions=1)
        async with db_pool.acquire() as conn:
            in_flight = conn.transaction()
            await in_flight.start()
            # Takes its position first, commits last.
            await conn.execute(
                "INSERT INTO events (episode_id, seq, event_type, schema_version, payload, "
                "occurred_at, actor_id, actor_role, command_id, prev_hash, hash, hash_alg) "
                "SELECT 'ep-slow', seq, event_type, schema_version, payload, occurred_at, "
                "actor_id, actor_role, command_id, prev_hash, hash, hash_alg FROM events "
                "WHERE false"
            )
            await conn.fetchval("SELECT pg_current_xact_id()")
            slow_position = await conn.fetchval("SELECT nextval('events_position_seq')")
            fast_result = await store.append("ep-fast", fast)
            assert fast_result.position is not None
            assert fast_result.position > slow_position

            await Projector(db_pool).catch_up()

            assert await is_folded(db_pool, fast_result.position) is False
            await in_flight.commit()
        await store.append("ep-slow", slow)

        await Projector(db_pool).catch_up()

        assert await is_folded(db_pool, fast_result.position) is True
        summaries = (await read_models(db_pool))["episode_summary"]
        assert sorted(row["episode_id"] for row in summaries) == ["ep-fast", "ep-slow"]

    async def test_a_projector_that_starts_again_folds_nothing_twice(self, db_pool: Pool) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = {f"ep-{i}": episode_events(f"ep-{i}", sessions=4) for i in range(3)}
        for episode_id, events in streams.items():
            await store.append(episode_id, events[:10])
        first = Projector(db_pool, batch=7)
        assert await first.step() == 7
        for episode_id, events in streams.items():
            await store.append(episode_id, events[10:])

        # A new projector (a restarted worker) continues from the tracking row.
        await Projector(db_pool, batch=7).catch_up()
        live = await read_models(db_pool)
        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert [r["last_seq"] for r in live["episode_summary"]] == [
            len(e) for e in streams.values()
        ]

    async def test_given_a_busy_projector_when_it_folds_then_the_snapshot_is_written_every_few_events_and_when_it_goes_idle(
        self, db_pool: Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(projections, "SNAPSHOT_EVERY", 4)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=6)
        projector = Projector(db_pool)
        stored: list[int] = []
        for i, event in enumerate(events, start=1):
            await store.append("ep-1", [event])
            while await projector.step():
                pass
            snapshot = await db_pool.fetchrow(
                "SELECT s.version, s.state, e.last_seq FROM projection_snapshots s "
                "JOIN episode_summary e USING (episode_id)"
            )
            assert snapshot["last_seq"] == i
            assert i - snapshot["version"] < 4
            # What the worklists read from the snapshot is never behind the read models.
            state = fold(events[:i])
            assert state is not None
            assert snapshot["state"]["rules"] == state.model_dump(mode="json")["rules"]
            assert (snapshot["state"]["assessment"] is not None) == (state.assessment is not None)
            stored.append(snapshot["version"])
        assert len(set(stored)) < len(events) // 2
        # Between snapshots it lags the read models, until the projector goes idle.
        assert any(version < i for i, version in enumerate(stored, start=1))

        await projector.catch_up()  # idle: what it holds is written
        assert await db_pool.fetchval("SELECT version FROM projection_snapshots") == len(events)

    async def test_given_a_running_projector_when_it_has_been_idle_for_a_while_then_it_writes_the_snapshots_it_held_back(
        self, db_pool: Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=6)
        # Idle looks that come soon after a fold leave the snapshot where it is.
        monkeypatch.setattr(projections, "PROJECTOR_SNAPSHOT_IDLE_S", 3600.0)
        async with running_projector(db_pool):
            await store.append("ep-1", events[:5])
            await wait_for_summary_seq(db_pool, 5)
            first = await db_pool.fetchval("SELECT version FROM projection_snapshots")
            for event in events[5:]:
                await store.append("ep-1", [event])
            await wait_for_summary_seq(db_pool, len(events))
            await asyncio.sleep(5 * projections.PROJECTOR_IDLE_S)  # several idle looks
            assert await db_pool.fetchval("SELECT version FROM projection_snapshots") == first
            assert first < len(events)

            # Once idle long enough, what it holds is written.
            monkeypatch.setattr(projections, "PROJECTOR_SNAPSHOT_IDLE_S", 0.0)
            async with asyncio.timeout(10):
                while await db_pool.fetchval(  # noqa: ASYNC110 - polled
                    "SELECT version FROM projection_snapshots"
                ) != len(events):
                    await asyncio.sleep(0.02)

    async def test_given_a_listening_projector_when_a_reader_waits_for_its_change_then_the_reader_wakes_it(
        self, db_pool: Pool, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=2)
        # Its own looks come an hour apart: only a reader's NOTIFY can start a step.
        monkeypatch.setattr(projections, "PROJECTOR_LISTENING_PAUSE_S", 3600.0)
        await store.append("ep-1", events[:3])
        async with running_projector(db_pool, listen_dsn=fresh_database_url):
            await wait_for_summary_seq(db_pool, 3)  # its first step, at start
            position = await appended_at(store, events[3:])
            assert await is_folded(db_pool, position) is False

            await wait_for_position(db_pool, position, timeout=10)

            assert await is_folded(db_pool, position) is True

    async def test_given_a_projector_without_listeners_when_a_reader_notifies_then_it_still_folds_on_its_looks(
        self, db_pool: Pool
    ) -> None:
        events = episode_events("ep-1", sessions=1)
        async with running_projector(db_pool):
            position = await appended_at(EventStore(db_pool, chain_key=CHAIN_KEY), events)
            # Nobody hears the reader's NOTIFY: the projector's own look folds the event.
            await wait_for_position(db_pool, position, timeout=10)

        assert await is_folded(db_pool, position) is True

    async def test_given_a_snapshot_older_than_the_tracking_position_when_a_restarted_projector_folds_on_then_its_read_models_equal_a_fold_from_the_start(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = {f"ep-{i}": episode_events(f"ep-{i}", sessions=8) for i in range(2)}
        first = Projector(db_pool)
        for episode_id, events in streams.items():
            for event in events[:-4]:
                await store.append(episode_id, [event])
                while await first.step():
                    pass
        # The first projector stops (a crash) holding states ahead of their snapshots.
        lagging = await db_pool.fetch(
            "SELECT s.version, e.last_seq FROM projection_snapshots s "
            "JOIN episode_summary e USING (episode_id)"
        )
        assert all(row["version"] < row["last_seq"] for row in lagging)
        for episode_id, events in streams.items():
            for event in events[-4:]:
                await store.append(episode_id, [event])

        # A new projector folds on from the old snapshots plus the events after them.
        await Projector(db_pool).catch_up()
        async with db_pool.acquire() as conn:
            live = await read_models_at_head(conn)
        await rebuild_projections(db_pool)

        assert await read_models(db_pool) == live
        assert [r["last_seq"] for r in live["episode_summary"]] == [
            len(e) for e in streams.values()
        ]


def correction_of(events: list[Event], episode_id: str, session_id: str) -> list[Event]:
    """The events of correcting `session_id`'s attendance to attended, after `events`."""
    correction = CorrectAttendance(
        command_id=f"fix-{session_id}",
        actor=samples.CLINICIAN,
        session_id=session_id,
        status=AttendanceStatus.ATTENDED,
        reason="signed out late",
    )
    ctx = DecisionContext(episode_id, events[-1].occurred_at, load_catalog())
    return list(decide(fold(events), correction, ctx))


async def row_versions(pool: Pool, table: str, key: str) -> dict[object, str]:
    """The transaction that last wrote each of `table`'s rows, by key."""
    rows = await pool.fetch(f"SELECT {key} AS key, xmin::text AS written_by FROM {table}")
    return {row["key"]: row["written_by"] for row in rows}


def changing_streams() -> dict[str, list[Event]]:
    """Three episodes that go through a sequence of changes: sessions added, attended and
    corrected; tasks opened, escalated and resolved; deadlines met; a discharge."""
    ongoing = episode_events("ep-1", sessions=9)
    ongoing += correction_of(ongoing, "ep-1", "s2")
    return {
        "ep-1": ongoing,
        "ep-2": episode_events("ep-2", sessions=7, discharge=True),
        "ep-3": episode_events("ep-3", sessions=4, clinician="kim.clinician"),
    }


async def assert_a_rebuild_gives_the_same(
    pool: Pool, streams: dict[str, list[Event]]
) -> dict[str, list[dict[str, object]]]:
    """Rebuild from scratch and check the read models are those the projector wrote, at
    each stream's last event; those read models."""
    live = await read_models(pool)
    await rebuild_projections(pool)
    assert await read_models(pool) == live
    assert [r["last_seq"] for r in live["episode_summary"]] == [len(e) for e in streams.values()]
    return live


class TestChangedRowsOnly:
    async def test_given_a_running_projector_when_episodes_go_through_a_sequence_of_changes_then_the_read_models_equal_a_rebuild_from_scratch(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = changing_streams()
        projector = Projector(db_pool)  # one projector throughout, as in a worker
        # Single events and small batches, interleaved: sessions added, attended, corrected;
        # tasks opened, escalated and resolved; deadlines met; a discharge emptying rows.
        for start in range(0, max(len(e) for e in streams.values()), 3):
            for episode_id, events in streams.items():
                if chunk := events[start : start + 3]:
                    await store.append(episode_id, chunk[:1])
                    await projector.catch_up()
                    if chunk[1:]:
                        await store.append(episode_id, chunk[1:])
                        await projector.catch_up()

        live = await assert_a_rebuild_gives_the_same(db_pool, streams)

        assert {r["episode_id"] for r in live["console_sessions"]} == {"ep-1", "ep-3"}

    async def test_given_a_running_projector_when_one_sessions_attendance_is_corrected_then_only_that_sessions_rows_are_rewritten(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=12)
        projector = Projector(db_pool)
        await store.append("ep-1", events)
        await projector.catch_up()
        sessions = await row_versions(db_pool, "console_sessions", "session_id")
        weeks = await row_versions(db_pool, "attended_hours", "week_start")
        # s2 falls in the first week.
        correction = correction_of(events, "ep-1", "s2")

        await store.append("ep-1", correction)
        await projector.catch_up()

        sessions_after = await row_versions(db_pool, "console_sessions", "session_id")
        weeks_after = await row_versions(db_pool, "attended_hours", "week_start")
        assert sessions_after.keys() == sessions.keys()
        assert [k for k in sessions if sessions_after[k] != sessions[k]] == ["s2"]
        first_week = min(weeks)
        assert [k for k in weeks if weeks_after[k] != weeks[k]] == [first_week]
        live = await read_models(db_pool)
        await rebuild_projections(db_pool)
        assert await read_models(db_pool) == live


class TestRecentEvents:
    """A projector folding the events the store in its own process wrote (`store.recent`)."""

    async def test_given_a_projector_sharing_the_stores_recent_events_when_episodes_change_then_the_read_models_equal_a_rebuild_from_scratch(
        self, db_pool: Pool
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        recent = store.keep_recent_events()
        # Another process's appends: the projector holds none of them and reads them back.
        elsewhere = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = changing_streams()
        projector = Projector(db_pool, recent=recent)
        for start in range(0, max(len(e) for e in streams.values()), 4):
            for n, (episode_id, events) in enumerate(streams.items()):
                if chunk := events[start : start + 4]:
                    await store.append(episode_id, chunk[:1])
                    writer = elsewhere if (start + n) % 3 == 0 else store
                    if chunk[1:]:
                        await writer.append(episode_id, chunk[1:])
                    await projector.catch_up()

        await assert_a_rebuild_gives_the_same(db_pool, streams)
        # Every event it held was taken, none left behind.
        assert len(recent) == 0

    async def test_given_a_held_event_when_the_projector_folds_its_seq_then_it_folds_the_held_one_and_reads_back_the_rest(
        self, db_pool: Pool
    ) -> None:
        events = episode_events("ep-1", sessions=1)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        await store.append("ep-1", events)
        recent = store.keep_recent_events()
        # What the projector holds for seq 1 is folded as held: its payload is not read.
        referral = events[0]
        recent.add("ep-1", [referral.model_copy(update={"client_ref": "MRN-HELD"})])

        await Projector(db_pool, recent=recent).catch_up()

        summary = (await read_models(db_pool))["episode_summary"]
        assert [(r["client_ref"], r["last_seq"]) for r in summary] == [("MRN-HELD", len(events))]

    async def test_given_a_store_keeping_recent_events_when_an_append_is_refused_or_only_looks_up_then_nothing_is_handed_over(
        self, db_pool: Pool
    ) -> None:
        events = episode_events("ep-1", sessions=1)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        recent = store.keep_recent_events()
        await store.append("ep-1", events[:2])
        assert [recent.take("ep-1", e.seq) for e in events[:2]] == events[:2]

        with pytest.raises(AppendConflict):
            await store.append("ep-1", [events[2].model_copy(update={"seq": 5})])
        await store.append("ep-1", [])

        assert len(recent) == 0
        assert store.keep_recent_events() is recent


def test_sample_streams_are_deterministic() -> None:
    assert episode_events("ep-x", sessions=3) == episode_events("ep-x", sessions=3)
    assert episode_events("ep-x")[0].occurred_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # noqa: ASYNC110 - polled
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not within {timeout:g} s: {what}")


class TestLeadership:
    """Of several listening projectors (one per worker), one folds and keeps what it holds;
    the others stand by and take over when it goes, or when it folds nothing."""

    async def test_given_two_listening_projectors_then_only_the_leader_folds(
        self, db_pool: Pool, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(projections, "PROJECTOR_STANDBY_S", 0.05)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        streams = {f"ep-{i}": episode_events(f"ep-{i}", sessions=4) for i in range(3)}
        async with running_projector(db_pool, listen_dsn=fresh_database_url) as first:
            await store.append("ep-0", streams["ep-0"][:2])
            await wait_for_summary_seq(db_pool, 2)
            async with running_projector(db_pool, listen_dsn=fresh_database_url) as second:
                await until(lambda: not second.leading, "the second projector stands by")
                for episode_id, events in streams.items():
                    for at in range(0 if episode_id != "ep-0" else 2, len(events), 3):
                        result = await store.append(episode_id, events[at : at + 3])
                        assert result.position is not None
                        await asyncio.sleep(0.1)  # several steps, the standby looking
                await wait_for_position(db_pool, result.position, timeout=10)

                assert first.leading
                assert not second.leading
                assert second.folded == 0
                assert first.folded == sum(len(events) for events in streams.values())

    async def test_given_a_standby_when_the_leader_stops_then_the_standby_folds(
        self, db_pool: Pool, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(projections, "PROJECTOR_STANDBY_S", 0.05)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=2)
        async with contextlib.AsyncExitStack() as leaders:
            leader = await leaders.enter_async_context(
                running_projector(db_pool, listen_dsn=fresh_database_url)
            )
            await store.append("ep-1", events[:3])
            await wait_for_summary_seq(db_pool, 3)
            async with running_projector(db_pool, listen_dsn=fresh_database_url) as standby:
                await until(lambda: not standby.leading, "the second projector stands by")
                assert leader.folded == 3

                await leaders.aclose()  # its connection closes: the lock is free
                position = await appended_at(store, events[3:])
                await wait_for_position(db_pool, position, timeout=10)

                assert standby.leading
                assert standby.folded == len(events) - 3

    async def test_given_a_leader_that_folds_nothing_then_a_standby_folds_once_events_wait_too_long(
        self, db_pool: Pool, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(projections, "PROJECTOR_STANDBY_S", 0.05)
        monkeypatch.setattr(projections, "PROJECTOR_TAKEOVER_S", 0.5)
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        events = episode_events("ep-1", sessions=1)
        # A leader whose process is stuck: its connection holds the lock, nothing folds.
        stuck = await asyncpg.connect(fresh_database_url)
        try:
            assert await stuck.fetchval(
                "SELECT pg_try_advisory_lock($1)", projections.PROJECTOR_LEADER_KEY
            )
            async with running_projector(db_pool, listen_dsn=fresh_database_url) as standby:
                await until(lambda: not standby.leading, "the projector stands by")
                started = time.monotonic()
                position = await appended_at(store, events)
                await wait_for_position(db_pool, position, timeout=10)
                waited = time.monotonic() - started

                assert not standby.leading
                assert standby.folded == len(events)
                assert waited >= projections.PROJECTOR_TAKEOVER_S
        finally:
            await stuck.close()
