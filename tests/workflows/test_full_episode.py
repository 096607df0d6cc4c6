"""A whole adult episode on the time-skipping server: twelve weeks of IOP and a year of aftercare.

Simulated time moves only when the test sleeps, so every escalation can be checked at the
exact simulated moment it fires, and the whole episode takes seconds of wall time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.embedded_temporal import find_binary
from domain import commands as c
from domain.events import Event
from domain.state import EpisodeState, Stage
from domain.vocabulary import AttendanceStatus, DischargeReason, ReviewOutcome
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.payload_keys import TEST_CONVERTER
from workers.replay import build_replayer, run_histories
from workers.temporal import register_search_attributes
from workers.worker import build_worker
from workflows.client import EpisodeClient
from workflows.messages import CommandResult, EpisodeView, workflow_id_for

ADULT = load_catalog().get("adult-iop")
GRACE = ADULT.attendance.no_show_grace
WEEK = timedelta(days=7)
SESSION_HOURS = 3
# Week 2's three sessions are missed: the ladder climbs one rung per consecutive no-show.
MISSED = {"w2s1", "w2s2", "w2s3"}
# The third aftercare check-in (90 days) is missed and opens outreach.
MISSED_CHECK_IN = 3


def on_time(actual: datetime, expected: datetime) -> bool:
    """Timers fire at their deadline; the server may deliver them a few milliseconds late."""
    return timedelta(0) <= actual - expected < timedelta(seconds=1)


class Driver:
    """Drives one episode the way staff and the clock would, in simulated time."""

    def __init__(
        self, env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
    ) -> None:
        self.env = env
        self.episodes = episodes
        self.store = store
        self.ids = samples.CommandIds("full")
        self.episode_id = str(uuid.uuid4())

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def sleep_until(self, moment: datetime) -> None:
        delta = moment - await self.now()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def send(self, command: c.Command) -> CommandResult:
        return await self.episodes.send(self.episode_id, command)

    async def state(self) -> EpisodeState:
        view = await self.episodes.view(self.episode_id)
        assert view.state is not None
        return view.state

    async def events(self) -> list[Event]:
        return [stored.event for stored in await self.store.read_stream(self.episode_id)]

    async def events_of(self, event_type: str) -> list[Event]:
        return [e for e in await self.events() if e.type == event_type]

    async def review_if_due(self, moment: datetime, outcome: ReviewOutcome) -> bool:
        state = await self.state()
        if state.review_due_at is None or state.review_due_at > moment:
            return False
        await self.sleep_until(state.review_due_at - timedelta(hours=1))
        # The review falls an hour before the phase's planned end: advancing needs a reason.
        reason = "phase goals met at the review" if outcome is ReviewOutcome.ADVANCE_PHASE else None
        await self.send(
            c.CompletePlanReview(
                command_id=self.ids(), actor=samples.CLINICIAN, outcome=outcome, reason=reason
            )
        )
        return True


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own.

    The shared one can be left unable to skip time by an earlier test (a workflow ended
    while its activity ran); the longest scenario must not inherit that.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=TEST_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(params=[True, False], ids=["sandboxed", "unsandboxed"])
async def worker(
    client: Client, store: EventStore, task_queue: str, request: pytest.FixtureRequest
) -> AsyncIterator[Worker]:
    """The episode runs under both runners: the sandbox the tests use everywhere else,
    and plain Python, as `carepath worker` runs by default (CAREPATH_WORKFLOW_SANDBOX)."""
    async with build_worker(client, store, task_queue, sandboxed=request.param) as running:
        yield running


@pytest.fixture
def driver(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
) -> Driver:
    return Driver(time_skipping_env, episodes, store)


async def test_full_adult_episode_from_referral_to_discharge(
    driver: Driver, client: Client
) -> None:
    await driver.episodes.refer(driver.episode_id, samples.referral(driver.ids), ADULT)
    for command in samples.admission(driver.ids):
        await driver.send(command)
    admitted = await driver.state()
    assert admitted.stage is Stage.IN_PROGRAM
    assert admitted.primary_clinician == samples.CLINICIAN.user_id
    start = (await driver.now()).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )

    reviews = 0
    for week in range(1, 13):
        week_start = start + (week - 1) * WEEK
        await driver.sleep_until(week_start)
        for n in (1, 2, 3):
            await driver.send(
                samples.session(
                    driver.ids,
                    f"w{week}s{n}",
                    week_start + timedelta(days=n - 1, hours=17),
                    hours=SESSION_HOURS,
                )
            )
        for n in (1, 2, 3):
            sid = f"w{week}s{n}"
            ends = week_start + timedelta(days=n - 1, hours=17 + SESSION_HOURS)
            if sid in MISSED:
                await driver.sleep_until(ends + GRACE + timedelta(minutes=1))
                await _check_no_show_escalation(driver, sid, ends + GRACE)
            else:
                await driver.sleep_until(ends + timedelta(minutes=5))
                await driver.send(
                    c.RecordAttendance(
                        command_id=driver.ids(),
                        actor=samples.CLINICIAN,
                        session_id=sid,
                        status=AttendanceStatus.ATTENDED,
                    )
                )
        outcome = ReviewOutcome.ADVANCE_PHASE if week in (4, 8) else ReviewOutcome.CONTINUE
        if await driver.review_if_due(week_start + WEEK, outcome):
            reviews += 1
        if week == 3:
            await _resolve_open_tasks(driver)

    in_program = await driver.state()
    assert reviews >= 5, "plan reviews every 14 days over 12 weeks"
    assert in_program.phase_id == ADULT.phases[-1].id
    advanced = await driver.events_of("phase_advanced")
    assert [e.to_phase for e in advanced] == [p.id for p in ADULT.phases[1:]]  # type: ignore[attr-defined]
    assert all(e.early_reason for e in advanced)  # type: ignore[attr-defined]
    assert await driver.events_of("plan_review_overdue") == []
    low_weeks = [e for e in await driver.events_of("weekly_attendance_checked") if e.below_minimum]  # type: ignore[attr-defined]
    assert len(low_weeks) >= 1, "the week of no-shows is flagged below the program minimum"

    await driver.send(
        c.RecordRelapsePreventionPlan(
            command_id=driver.ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
        )
    )
    await driver.send(
        c.RecordAftercarePlan(
            command_id=driver.ids(), actor=samples.CLINICIAN, plan=samples.AFTERCARE
        )
    )
    await driver.send(c.StepDown(command_id=driver.ids(), actor=samples.CLINICIAN))
    aftercare = await driver.state()
    assert aftercare.stage is Stage.AFTERCARE
    offsets = [
        (ci.due_at - aftercare.stepped_down_at).days  # type: ignore[operator]
        for ci in aftercare.check_ins
    ]
    assert offsets == [o.days for o in ADULT.aftercare.check_in_offsets]

    for check_in in aftercare.check_ins:
        if check_in.number == MISSED_CHECK_IN:
            await driver.sleep_until(check_in.closes_at + timedelta(minutes=1))
            missed = await driver.events_of("check_in_missed")
            assert [e.check_in for e in missed] == [MISSED_CHECK_IN]  # type: ignore[attr-defined]
            assert on_time(missed[0].occurred_at, check_in.closes_at)
            outreach = (await driver.events_of("escalation_raised"))[-1]
            assert outreach.trigger == "check_in_missed"  # type: ignore[attr-defined]
            assert outreach.task_kind == "aftercare_outreach"  # type: ignore[attr-defined]
            await _resolve_open_tasks(driver)
        else:
            await driver.sleep_until(check_in.due_at + timedelta(hours=2))
            await driver.send(
                c.RecordCheckIn(
                    command_id=driver.ids(), actor=samples.CLINICIAN, check_in=check_in.number
                )
            )

    discharged = await driver.send(
        c.Discharge(
            command_id=driver.ids(),
            actor=samples.SUPERVISOR,
            discharge_reason=DischargeReason.COMPLETED,
            summary="completed IOP and a year of aftercare",
        )
    )
    assert discharged.stage == Stage.DISCHARGED.value

    handle = client.get_workflow_handle(workflow_id_for(driver.episode_id), result_type=EpisodeView)
    result = await handle.result()
    events = await driver.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert result.state is not None
    assert result.state.version == len(events)
    runs = await run_histories(client, workflow_id_for(driver.episode_id))
    # Whichever runner recorded them, the runs replay in the sandbox (the replay tier's
    # and `audit determinism`'s check).
    replayer = build_replayer(TEST_CONVERTER)
    for run in runs:
        await replayer.replay_workflow(run)  # raises on a non-determinism error
    longest = max(len(run.events) for run in runs)
    size = sum(len(run.to_json().encode()) for run in runs)
    print(
        f"\nfull adult episode: {len(events)} stored events; workflow history "
        f"{sum(len(run.events) for run in runs)} events, {size / 1024:.0f} KiB in "
        f"{len(runs)} runs, the longest {longest} events (bench.scale measures its replay)"
    )
    notified = [
        e
        for run in runs
        for e in run.events
        if e.HasField("activity_task_completed_event_attributes")
    ]
    assert notified, "notifications were sent by the notification activity"


async def _check_no_show_escalation(driver: Driver, session_id: str, fired_at: datetime) -> None:
    """Each consecutive no-show climbs one rung, at the exact moment grace runs out."""
    rung = {"w2s1": 1, "w2s2": 2, "w2s3": 3}[session_id]
    recipients = {
        1: {"primary_clinician"},
        2: {"care_coordinator", "supervisor"},
        3: {"supervisor"},
    }[rung]
    no_shows = [
        e
        for e in await driver.events_of("attendance_recorded")
        if e.session_id == session_id  # type: ignore[attr-defined]
    ]
    assert [e.status for e in no_shows] == [AttendanceStatus.NO_SHOW]  # type: ignore[attr-defined]
    assert on_time(no_shows[0].occurred_at, fired_at)
    raised = [
        e for e in await driver.events_of("escalation_raised") if on_time(e.occurred_at, fired_at)
    ]
    assert [e.level for e in raised] == [rung]  # type: ignore[attr-defined]
    assert {r.value for r in raised[0].notify} == recipients  # type: ignore[attr-defined]
    due = raised[0].due_at  # type: ignore[attr-defined]
    assert on_time(due, fired_at + timedelta(hours=48 if rung == 3 else 24))
    if rung < 3:
        # Outreach done in time: the task is resolved before it falls due.
        await _resolve_open_tasks(driver)
    else:
        # Nobody reviews the case in time: at its due time it escalates to the director.
        await driver.sleep_until(due + timedelta(minutes=1))
        overdue = await driver.events_of("escalation_task_overdue")
        assert on_time(overdue[-1].occurred_at, due)
        director = (await driver.events_of("escalation_raised"))[-1]
        assert director.level == 4  # type: ignore[attr-defined]
        assert on_time(director.occurred_at, due)
        assert {r.value for r in director.notify} == {"clinical_director"}  # type: ignore[attr-defined]


async def _resolve_open_tasks(driver: Driver) -> None:
    state = await driver.state()
    for task in state.tasks:
        if task.is_open:
            actor = samples.DIRECTOR if task.level >= 3 else samples.CLINICIAN
            await driver.send(
                c.ResolveTask(
                    command_id=driver.ids(),
                    actor=actor,
                    task_id=task.task_id,
                    outcome="reached client",
                )
            )
