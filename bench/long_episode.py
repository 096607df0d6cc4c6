"""A whole adult episode (twelve weeks of IOP, a year of aftercare) and what replaying it costs.

The episode is driven on the time-skipping test server exactly as
tests/workflows/test_full_episode.py drives it: three sessions a week (week 2's missed,
so the escalation ladder climbs to the director), plan reviews, two phase advances, a
step-down, the aftercare check-ins (one missed) and the discharge. Nothing here asserts:
the test does that; this measures.

`replay_curve` replays prefixes of one long run (cut where a new workflow task is about
to be scheduled, so each prefix is a history a worker could have been handed) and times
each with the same `Replayer` a cache miss uses. A worker that takes a timer for an
episode it evicted replays the run's whole history first, so the longest run's replay is
the worst latency a firing deadline can see; `choose_bound` turns the curve into the
continue-as-new bound.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from devstack.embedded_temporal import find_binary
from domain import commands as c
from domain.vocabulary import AttendanceStatus, DischargeReason, ReviewOutcome
from programs import load_catalog
from store.db import Pool
from store.event_store import EventStore
from testing import samples
from testing.keys import CHAIN_KEY
from testing.payload_keys import TEST_CONVERTER
from workers.replay import build_replayer, run_histories
from workers.settings import Settings
from workers.temporal import register_search_attributes
from workers.worker import build_worker, workflow_runner
from workflows.client import EpisodeClient
from workflows.messages import workflow_id_for

ADULT = load_catalog().get("adult-iop")
WEEK = timedelta(days=7)
SESSION_HOURS = 3
MISSED = {"w2s1", "w2s2", "w2s3"}
MISSED_CHECK_IN = 3
# No run of the measured episode continues as new below this.
UNBOUNDED = 1_000_000


@dataclass(frozen=True)
class Run:
    events: int
    bytes: int


@dataclass(frozen=True)
class LongEpisode:
    runs: list[Run]
    histories: list[WorkflowHistory]

    @property
    def first_run(self) -> WorkflowHistory:
        return self.histories[0]

    @property
    def longest_run(self) -> WorkflowHistory:
        return max(self.histories, key=lambda h: len(h.events))

    @property
    def events(self) -> int:
        return sum(r.events for r in self.runs)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.runs)


class _Driver:
    def __init__(self, env: WorkflowEnvironment, episodes: EpisodeClient) -> None:
        self.env = env
        self.episodes = episodes
        self.ids = samples.CommandIds("long")
        self.episode_id = str(uuid.uuid4())

    async def sleep_until(self, moment: datetime) -> None:
        delta = moment - await self.env.get_current_time()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def send(self, command: c.Command) -> None:
        await self.episodes.send(self.episode_id, command)

    async def resolve_open_tasks(self) -> None:
        view = await self.episodes.view(self.episode_id)
        assert view.state is not None
        for task in view.state.tasks:
            if task.is_open:
                actor = samples.DIRECTOR if task.level >= 3 else samples.CLINICIAN
                await self.send(
                    c.ResolveTask(
                        command_id=self.ids(), actor=actor, task_id=task.task_id, outcome="reached"
                    )
                )

    async def review_if_due(self, moment: datetime, outcome: ReviewOutcome) -> None:
        view = await self.episodes.view(self.episode_id)
        assert view.state is not None
        due = view.state.review_due_at
        if due is None or due > moment:
            return
        await self.sleep_until(due - timedelta(hours=1))
        reason = "phase goals met at the review" if outcome is ReviewOutcome.ADVANCE_PHASE else None
        await self.send(
            c.CompletePlanReview(
                command_id=self.ids(), actor=samples.CLINICIAN, outcome=outcome, reason=reason
            )
        )

    async def whole_episode(self) -> None:
        await self.episodes.refer(self.episode_id, samples.referral(self.ids), ADULT)
        for command in samples.admission(self.ids):
            await self.send(command)
        now = await self.env.get_current_time()
        start = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        for week in range(1, 13):
            week_start = start + (week - 1) * WEEK
            await self.sleep_until(week_start)
            for n in (1, 2, 3):
                starts = week_start + timedelta(days=n - 1, hours=17)
                await self.send(
                    samples.session(self.ids, f"w{week}s{n}", starts, hours=SESSION_HOURS)
                )
            for n in (1, 2, 3):
                sid = f"w{week}s{n}"
                ends = week_start + timedelta(days=n - 1, hours=17 + SESSION_HOURS)
                if sid in MISSED:
                    fired = ends + ADULT.attendance.no_show_grace
                    if sid != "w2s3":
                        await self.sleep_until(fired + timedelta(minutes=1))
                        await self.resolve_open_tasks()
                    else:
                        # The case review is left to climb to the director.
                        await self.sleep_until(fired + timedelta(hours=48, minutes=1))
                else:
                    await self.sleep_until(ends + timedelta(minutes=5))
                    await self.send(
                        c.RecordAttendance(
                            command_id=self.ids(),
                            actor=samples.CLINICIAN,
                            session_id=sid,
                            status=AttendanceStatus.ATTENDED,
                        )
                    )
            outcome = ReviewOutcome.ADVANCE_PHASE if week in (4, 8) else ReviewOutcome.CONTINUE
            await self.review_if_due(week_start + WEEK, outcome)
            if week == 3:
                await self.resolve_open_tasks()
        for command in (
            c.RecordRelapsePreventionPlan(
                command_id=self.ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
            ),
            c.RecordAftercarePlan(
                command_id=self.ids(), actor=samples.CLINICIAN, plan=samples.AFTERCARE
            ),
            c.StepDown(command_id=self.ids(), actor=samples.CLINICIAN),
        ):
            await self.send(command)
        view = await self.episodes.view(self.episode_id)
        assert view.state is not None
        for check_in in view.state.check_ins:
            if check_in.number == MISSED_CHECK_IN:
                await self.sleep_until(check_in.closes_at + timedelta(minutes=1))
                await self.resolve_open_tasks()
            else:
                await self.sleep_until(check_in.due_at + timedelta(hours=2))
                await self.send(
                    c.RecordCheckIn(
                        command_id=self.ids(), actor=samples.CLINICIAN, check_in=check_in.number
                    )
                )
        await self.send(
            c.Discharge(
                command_id=self.ids(),
                actor=samples.SUPERVISOR,
                discharge_reason=DischargeReason.COMPLETED,
                summary="completed IOP and a year of aftercare",
            )
        )


async def drive(pool: Pool, history_event_limit: int) -> LongEpisode:
    """One whole episode on a time-skipping server of its own; its runs' sizes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=TEST_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        queue = f"long-{uuid.uuid4().hex[:8]}"
        store = EventStore(pool, chain_key=CHAIN_KEY)
        async with build_worker(env.client, store, queue):
            episodes = EpisodeClient(env.client, queue, history_event_limit=history_event_limit)
            driver = _Driver(env, episodes)
            await driver.whole_episode()
            return await _runs(env, driver.episode_id)
    finally:
        await env.shutdown()


async def _runs(env: WorkflowEnvironment, episode_id: str) -> LongEpisode:
    """Every run of the episode's workflow, oldest first (following continue-as-new)."""
    histories = await run_histories(env.client, workflow_id_for(episode_id))
    runs = [Run(len(h.events), len(h.to_json().encode())) for h in histories]
    return LongEpisode(runs=runs, histories=histories)


def prefixes(history: WorkflowHistory, lengths: list[int]) -> list[WorkflowHistory]:
    """For each length, the longest prefix of at most that many events that ends just
    before a workflow task is scheduled (a boundary a live history can have)."""
    events = list(history.events)
    cuts = [
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and i > 0
    ]
    cuts.append(len(events))
    out = []
    for length in lengths:
        cut = max((i for i in cuts if i <= length), default=cuts[0])
        out.append(WorkflowHistory(history.workflow_id, list(events[:cut])))
    return out


@dataclass(frozen=True)
class ReplayTime:
    events: int
    wall_ms: float
    # CPU time of this process (the SDK's core threads included): what the replay costs
    # on an idle machine, whatever else runs on this one.
    cpu_ms: float


async def replay_times(histories: list[WorkflowHistory], repeat: int = 5) -> list[ReplayTime]:
    """The median replay time of each history, with a warmed-up replayer that runs the
    workflow as `carepath worker` does (in the sandbox only under CAREPATH_WORKFLOW_SANDBOX):
    the replay an evicted episode costs the worker."""
    replayer = build_replayer(TEST_CONVERTER, runner=workflow_runner(Settings().workflow_sandbox))
    warmup = 2
    order = [histories[-1]] * warmup + [h for _ in range(repeat) for h in histories]

    async def feed() -> AsyncIterator[WorkflowHistory]:
        for h in order:
            yield h

    wall: dict[int, list[float]] = {}
    cpu: dict[int, list[float]] = {}
    async with replayer.workflow_replay_iterator(feed()) as results:
        t, p = time.perf_counter(), time.process_time()
        index = 0
        async for result in results:
            now, used = time.perf_counter(), time.process_time()
            if result.replay_failure is not None:
                raise result.replay_failure
            if index >= warmup:
                key = (index - warmup) % len(histories)
                wall.setdefault(key, []).append((now - t) * 1000)
                cpu.setdefault(key, []).append((used - p) * 1000)
            index += 1
            t, p = time.perf_counter(), time.process_time()
    return [
        ReplayTime(len(h.events), statistics.median(wall[i]), statistics.median(cpu[i]))
        for i, h in enumerate(histories)
    ]


def choose_bound(curve: list[tuple[int, float]], budget_ms: float, step: int = 100) -> int:
    """The largest multiple of `step` events whose replay stays within `budget_ms`, from a
    least-squares line through the measured (events, ms) points."""
    xs = [float(x) for x, _ in curve]
    ys = [y for _, y in curve]
    slope, intercept = statistics.linear_regression(xs, ys)
    if slope <= 0:
        return max(x for x, _ in curve) // step * step
    return max(step, int((budget_ms - intercept) / slope) // step * step)


async def _main() -> None:  # pragma: no cover - manual run
    from bench._stack import stack

    async with stack() as s:
        long = await drive(s.pool, UNBOUNDED)
        print([(r.events, r.bytes) for r in long.runs])
        lengths = [100, 200, 300, 400, 500, 600, 800, long.runs[0].events]
        cut = prefixes(long.first_run, lengths)
        for r in await replay_times(cut):
            print(r)


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
