"""One open task per concern, on the time-skipping server: three no-shows, then nobody acts
on any escalation task until the clinical director's review is itself overdue.

The client's attendance concern climbs the ladder one rung at a time: each rung's task
supersedes the one below, so exactly one task is open at every step, and each rung's
staff are notified once, in ladder order.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.embedded_temporal import find_binary
from domain.escalation import ATTENDANCE
from domain.events import Event
from domain.state import EpisodeState, Stage, Task
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.payload_keys import TEST_CONVERTER
from workers.temporal import register_search_attributes
from workflows.client import EpisodeClient

ADULT = load_catalog().get("adult-iop")
GRACE = ADULT.attendance.no_show_grace
SESSION_HOURS = 3
STEP = timedelta(hours=3)


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own (see test_full_episode.py)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=TEST_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield env
    finally:
        await env.shutdown()


class Episode:
    def __init__(
        self, env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
    ) -> None:
        self.env, self.episodes, self.store = env, episodes, store
        self.ids = samples.CommandIds("concerns")
        self.episode_id = str(uuid.uuid4())
        self.observed = 0

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def sleep_until(self, moment: datetime) -> None:
        delta = moment - await self.now()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def state(self) -> EpisodeState:
        view = await self.episodes.view(self.episode_id)
        assert view.state is not None
        return view.state

    async def events(self) -> list[Event]:
        return [stored.event for stored in await self.store.read_stream(self.episode_id)]

    async def open_tasks(self) -> list[Task]:
        """The open tasks now (never more than one), the escalation level being its."""
        state = await self.state()
        open_tasks = [t for t in state.tasks if t.is_open]
        assert len(open_tasks) <= 1, [(t.task_id, t.level) for t in open_tasks]
        assert state.escalation_level == max((t.level for t in open_tasks), default=0)
        self.observed += 1
        return open_tasks

    async def watch_until(self, moment: datetime) -> Task:
        """Let time pass in steps up to `moment`, checking after each that no second task
        is open (exactly one, once the first opened); return the one open at `moment`."""
        opened = bool(await self.open_tasks())
        while (now := await self.now()) < moment:
            await self.sleep_until(min(moment, now + STEP))
            open_now = await self.open_tasks()
            assert len(open_now) == 1 or not opened, "the concern's task was closed"
            opened = opened or bool(open_now)
        (task,) = await self.open_tasks()
        return task


@pytest.fixture
def episode(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
) -> Episode:
    return Episode(time_skipping_env, episodes, store)


async def test_given_three_no_shows_when_every_task_is_left_overdue_then_one_task_climbs_to_the_director(
    episode: Episode, store: EventStore
) -> None:
    await episode.episodes.refer(episode.episode_id, samples.referral(episode.ids), ADULT)
    for command in samples.admission(episode.ids):
        await episode.episodes.send(episode.episode_id, command)
    admitted = await episode.state()
    assert admitted.stage is Stage.IN_PROGRAM
    assert admitted.rules.current
    day = (await episode.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    # Three sessions six hours apart: each no-show comes before the last task falls due.
    starts = [day + timedelta(days=1, hours=h) for h in (9, 15, 33)]
    for n, starts_at in enumerate(starts, start=1):
        await episode.episodes.send(
            episode.episode_id,
            samples.session(episode.ids, f"s{n}", starts_at, hours=SESSION_HOURS),
        )
    assert await episode.open_tasks() == []

    # Given three no-shows: each climbs the attendance concern one rung, superseding.
    chain: list[Task] = []
    for n, starts_at in enumerate(starts, start=1):
        ends = starts_at + timedelta(hours=SESSION_HOURS)
        task = await episode.watch_until(ends + GRACE + timedelta(minutes=1))
        assert task.level == n
        assert task.concern == ATTENDANCE
        assert task.escalated_from == (chain[-1].task_id if chain else None)
        chain.append(task)

    # When every task is left overdue: the case review climbs to the director, whose own
    # review then stays open, flagged overdue.
    director = await episode.watch_until(chain[-1].due_at + timedelta(minutes=1))
    assert director.level == 4
    assert director.escalated_from == chain[-1].task_id
    chain.append(director)
    flagged = await episode.watch_until(director.due_at + timedelta(hours=1))
    assert flagged.task_id == director.task_id
    assert flagged.overdue

    # Then every lower task was superseded by the next one up, and nothing was duplicated.
    state = await episode.state()
    assert [t.task_id for t in state.tasks] == [t.task_id for t in chain]
    for lower, higher in itertools.pairwise(chain):
        assert state.task(lower.task_id).superseded_by == higher.task_id  # type: ignore[union-attr]
    events = await episode.events()
    notices = [e for e in events if getattr(e, "notify", ())]
    assert [e.type for e in notices] == ["escalation_raised"] * 4
    assert [e.level for e in notices] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert [e.type for e in events].count("escalation_task_superseded") == 3

    # And the notification activity delivered one notice per rung, in ladder order.
    level_at = {e.seq: e.level for e in notices}  # type: ignore[attr-defined]
    rows = await _deliveries(store, episode.episode_id, expected=5)
    assert [level_at[row[0]] for row in rows] == [1, 2, 2, 3, 4]
    recipients = {level_at[seq]: set() for seq, _r in rows}
    for seq, recipient in rows:
        recipients[level_at[seq]].add(recipient.split(":")[0])
    assert recipients == {
        1: {"primary_clinician"},
        2: {"care_coordinator", "supervisor"},
        3: {"supervisor"},
        4: {"clinical_director"},
    }
    print(f"\nescalation to the director: {episode.observed} observations, one open task each")


async def _deliveries(store: EventStore, episode_id: str, expected: int) -> list[tuple[int, str]]:
    """The notices delivered for the episode (seq, recipient), in event order, once the
    activity has recorded `expected` of them (or after a few seconds of waiting)."""
    rows: list[tuple[int, str]] = []
    for _ in range(50):
        async with store.pool.acquire() as conn:
            found = await conn.fetch(
                "SELECT seq, recipient FROM notifications_sent WHERE episode_id = $1 "
                "ORDER BY seq, recipient",
                episode_id,
            )
        rows = [(int(r["seq"]), str(r["recipient"])) for r in found]
        if len(rows) >= expected:
            break
        await asyncio.sleep(0.1)
    return rows
