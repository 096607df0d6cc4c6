"""The runner: a cohort's clients through the real workflow, decider, activities and store.

Simulated staff act on each client's episodes exactly as the API does, through the
workflow client facade (`workflows.client.EpisodeClient`): refer, screen, assess, admit,
record the treatment plan, schedule each week's sessions, record attendance (attended or
excused; a no-show is left unrecorded for the workflow's own timer to mark), complete
plan reviews (advancing the phase when it is up), resolve escalation tasks after the
response time drawn for the rung's staff, step down, record aftercare check-ins, report a
relapse, readmit, and discharge.

Time is the time-skipping test server's. A discrete-event scheduler keeps every staff
action at its simulated moment (on the cohort's grid); between moments it skips the
server's clock forward (`env.sleep`), which fires the workflows' own timers (no-shows,
overdue tasks, weekly intensity checks, missed check-ins) in order. The runner keeps a
copy of each episode's state, folded from the events its commands returned and from the
event store, and wakes an episode just after `next_deadline(state)` (the same pure
function the workflow sleeps on) to read what its timer decided: that is how staff learn
of a task the workflow opened by itself.

Staff of one client act one after another; clients act concurrently (at most
`concurrency` at a time). All randomness is the clients' own (`simulation.cohort`).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from domain import commands as c
from domain import events as ev
from domain.actors import Actor, Role
from domain.deadlines import next_deadline, phase_planned_end
from domain.decider import fold
from domain.programs import ProgramDefinition
from domain.state import EpisodeState, Stage
from domain.vocabulary import (
    AftercarePlan,
    AsamEdition,
    AsamRatings,
    AttendanceStatus,
    CareTeamMember,
    DischargeReason,
    Discipline,
    Goal,
    GoalArea,
    LevelOfCare,
    Modality,
    Problem,
    RelapsePreventionPlan,
    ReviewOutcome,
    ScheduleBlock,
    ScreeningFindings,
    SessionKind,
    StaffRecipient,
    TaskKind,
    TreatmentPlan,
)
from simulation.cohort import ClientDraws, Cohort, arrival_offsets
from store.event_store import EventStore
from store.records import StoredEvent
from workflows.client import CommandRejected, EpisodeClient

INTAKE = Actor(user_id="sim.intake", role=Role.INTAKE_COORDINATOR)
CLINICIAN = Actor(user_id="sim.clinician", role=Role.CLINICIAN)
SUPERVISOR = Actor(user_id="sim.supervisor", role=Role.SUPERVISOR)
DIRECTOR = Actor(user_id="sim.director", role=Role.CLINICAL_DIRECTOR)
# Who resolves a task, by the rung's first recipient (a care coordinator acts in the
# clinician role; case reviews and up need oversight).
RESOLVER = {
    StaffRecipient.PRIMARY_CLINICIAN: CLINICIAN,
    StaffRecipient.CARE_COORDINATOR: CLINICIAN,
    StaffRecipient.SUPERVISOR: SUPERVISOR,
    StaffRecipient.CLINICAL_DIRECTOR: DIRECTOR,
}
# Tasks whose resolution may bring back a client who stopped coming.
OUTREACH_KINDS = frozenset({TaskKind.OUTREACH, TaskKind.CASE_REVIEW, TaskKind.INTENSITY_REVIEW})
# Tasks whose resolution discharges a client still not coming.
DISCHARGE_KINDS = frozenset({TaskKind.DIRECTOR_REVIEW, TaskKind.ADMINISTRATIVE_DISCHARGE_REVIEW})
SESSION_DAYS = (0, 2, 4)  # Monday, Wednesday, Friday
SESSION_START = timedelta(hours=17)
RECORD_AFTER = timedelta(minutes=15)
WAKE_AFTER = timedelta(seconds=1)
# How far after a staff moment a timer of the same episode may be and still fire first.
# It exceeds the seconds a batch of staff commands takes, and is less than half a grid step.
TIMER_GUARD = timedelta(minutes=5)
REVIEW_BEFORE = timedelta(hours=1)
CHECK_IN_AFTER = timedelta(hours=2)
ELIGIBLE = ScreeningFindings(
    moderate_symptoms=True,
    stable_supportive_living_environment=True,
    reliable_transportation=True,
    motivated_for_treatment=True,
    able_to_participate_in_groups=True,
    severe_crisis=False,
    active_intoxication_needing_withdrawal_management=False,
    imminent_danger_to_self_or_others=False,
)
RATINGS = AsamRatings(
    acute_intoxication_withdrawal=1,
    biomedical=0,
    emotional_behavioral_cognitive=2,
    readiness_to_change=2,
    relapse_continued_use=2,
    recovery_environment=1,
)
RELAPSE_PREVENTION = RelapsePreventionPlan(
    triggers=("stress at work",), coping_strategies=("call a peer", "urge surfing")
)
AFTERCARE = AftercarePlan(
    continued_therapy="weekly outpatient group",
    peer_support=("peer group",),
    community_resources=(),
)

Action = Callable[[], Awaitable[None]]


def treatment_plan(cohort: Cohort) -> TreatmentPlan:
    days = SESSION_DAYS[: cohort.sessions_per_week] + tuple(
        range(5, 5 + max(0, cohort.sessions_per_week - len(SESSION_DAYS)))
    )
    return TreatmentPlan(
        problems=(Problem(problem_id="p1", description="substance use disorder, moderate"),),
        goals=(
            Goal(
                area=GoalArea.COPING_STRATEGIES,
                description="use coping skills",
                problem_ids=("p1",),
            ),
            Goal(area=GoalArea.AFTERCARE_READINESS, description="join a peer support group"),
        ),
        modalities=(Modality.CBT, Modality.PSYCHOEDUCATION),
        weekly_schedule=tuple(ScheduleBlock(weekday=d, hours=cohort.session_hours) for d in days),
        care_team=(CareTeamMember(user_id=CLINICIAN.user_id, discipline=Discipline.THERAPIST),),
        primary_clinician=CLINICIAN.user_id,
    )


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    key: int = field(compare=False)
    action: Action = field(compare=False)
    # The moment of the episode's next timer, if the action must wait for it (see `run`).
    blocked_until: Callable[[datetime], datetime | None] | None = field(default=None, compare=False)


class Scheduler:
    """Staff actions at simulated moments, run in order of time on the server's clock.

    Staff act half-way between grid points (`slot`); everything the workflows do by
    themselves falls on a grid point or a few seconds after one (a deadline is a session's
    end, or a grid moment plus a whole duration, plus the seconds the command that set it
    took). So no timer ever fires while staff act, and the outcome does not depend on how
    fast this machine answered. Times staff react to are read back to their grid point
    (`anchor`) for the same reason: the same seed gives the same run.
    """

    def __init__(self, env: WorkflowEnvironment, origin: datetime, grid: timedelta) -> None:
        self.env = env
        self.origin = origin
        self.grid = grid
        self.now = origin
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self.moments = 0

    def anchor(self, moment: datetime) -> datetime:
        """The grid point at or before `moment`."""
        return self.origin + ((moment - self.origin) // self.grid) * self.grid

    def slot(self, moment: datetime) -> datetime:
        """The first moment staff act at or after `moment` (never before the current one)."""
        half = self.grid / 2
        steps = -((self.origin + half - moment) // self.grid)  # ceiling division
        return max(self.now, self.origin + half + steps * self.grid)

    def at(
        self,
        moment: datetime,
        key: int,
        action: Action,
        blocked_until: Callable[[datetime], datetime | None] | None = None,
    ) -> None:
        due = _Due(self.slot(moment), next(self._seq), key, action, blocked_until)
        heapq.heappush(self._heap, due)

    async def run(self, concurrency: int, tick: Callable[[datetime], None] | None = None) -> None:
        gate = asyncio.Semaphore(concurrency)
        while self._heap:
            moment = self._heap[0].at
            lanes: dict[int, list[Action]] = {}
            while self._heap and self._heap[0].at == moment:
                due = heapq.heappop(self._heap)
                # An episode timer due within moments of this one (a deadline set by an
                # earlier staff action, a whole number of grid steps ago) fires first:
                # staff act on the episode one step later, whichever is faster here.
                timer = due.blocked_until(moment) if due.blocked_until is not None else None
                if timer is not None:
                    self.at(timer + self.grid / 2, due.key, due.action, due.blocked_until)
                    continue
                lanes.setdefault(due.key, []).append(due.action)
            if moment > self.now:
                ahead = moment - await self.env.get_current_time()
                if ahead > timedelta(0):
                    await self.env.sleep(ahead)
                self.now = moment
                self.moments += 1
                if tick is not None:
                    tick(moment)

            async def lane(actions: list[Action]) -> None:
                async with gate:
                    for action in actions:
                        await action()

            await asyncio.gather(*(lane(actions) for actions in lanes.values()))


@dataclass
class RunFigures:
    """What the run itself counted (the rest is read from the events afterwards)."""

    commands: int = 0
    refused: int = 0
    wakes: int = 0
    moments: int = 0
    wall_s: float = 0.0
    refusals: dict[str, int] = field(default_factory=dict)


class Episode:
    """One episode of a client: the runner's copy of its state and its staff's next steps."""

    def __init__(self, sim: Simulation, client: Client, episode_id: str) -> None:
        self.sim = sim
        self.client = client
        self.episode_id = episode_id
        self.state: EpisodeState | None = None
        self.last_seq = 0
        self.wake_at: datetime | None = None
        self.seen_tasks: set[str] = set()
        self.review_for: datetime | None = None
        self.week_starts: list[datetime] = []
        self.dropout_week: int | None = None
        self.engaged = True
        self._ids = itertools.count(1)

    # --- plumbing ----------------------------------------------------------------------

    def command_id(self) -> str:
        return f"{self.episode_id}-c{next(self._ids)}"

    @property
    def closed(self) -> bool:
        return self.state is not None and self.state.is_closed

    def at(self, moment: datetime, action: Action) -> None:
        async def act() -> None:
            # A timer of this episode may have fired since the copy was last brought up
            # to date: read its events first, so staff judge by what the episode holds.
            due = next_deadline(self.state) if self.state is not None else None
            if due is not None and due <= self.sim.scheduler.now:
                await self.sync()
            await action()

        self.sim.scheduler.at(moment, self.client.index, act, self.timer_near)

    def timer_near(self, moment: datetime) -> datetime | None:
        """The episode's next deadline if it falls within `TIMER_GUARD` after `moment`."""
        due = next_deadline(self.state) if self.state is not None else None
        if due is not None and moment <= due <= moment + TIMER_GUARD:
            return due
        return None

    async def send(self, command: c.Command) -> bool:
        """Send a command as staff would; False if the episode refused it."""
        self.sim.figures.commands += 1
        try:
            result = await self.sim.episodes.send(self.episode_id, command)
        except CommandRejected as err:
            self.sim.figures.refused += 1
            refusals = self.sim.figures.refusals
            refusals[err.error_type] = refusals.get(err.error_type, 0) + 1
            await self.sync()
            return False
        events = list(result.events)
        if events and events[0].seq != self.last_seq + 1:
            await self.sync()  # a timer's events came first: read them from the store
        else:
            self.absorb(events)
        return True

    async def sync(self) -> None:
        """Read the events the store holds beyond the copy, and react to them."""
        stored = await self.sim.store.read_stream(self.episode_id, after_seq=self.last_seq)
        self.absorb([s.event for s in stored])

    def absorb(self, events: list[ev.Event]) -> None:
        fresh = [e for e in events if e.seq > self.last_seq]
        if not fresh:
            self.plan_wake()
            return
        self.state = fold(fresh, self.state)
        self.last_seq = fresh[-1].seq
        for event in fresh:
            self.react(event)
        self.plan_wake()
        self.plan_review()

    def plan_wake(self) -> None:
        due = next_deadline(self.state) if self.state is not None else None
        if due is None:
            return
        if self.wake_at is not None and self.wake_at <= due + WAKE_AFTER:
            return
        self.wake_at = due + WAKE_AFTER
        self.at(self.wake_at, self.wake)

    async def wake(self) -> None:
        self.wake_at = None
        if self.closed:
            return
        self.sim.figures.wakes += 1
        await self.sync()

    def react(self, event: ev.Event) -> None:
        if isinstance(event, ev.EscalationRaised) and event.task_id not in self.seen_tasks:
            self.seen_tasks.add(event.task_id)
            recipient = event.notify[0]
            opened = self.sim.scheduler.anchor(event.occurred_at)
            resolve_at = opened + self.client.draws.response(recipient)
            self.at(resolve_at, functools.partial(self.resolve, event.task_id))
        elif isinstance(event, ev.ClientReadmitted):
            self.sim.readmit(
                self.client, event.new_episode_id, self.sim.scheduler.anchor(event.occurred_at)
            )
        elif isinstance(event, ev.EpisodeDischarged | ev.ClientReferredOut):
            self.sim.closed(self)

    # --- the pathway -------------------------------------------------------------------

    async def refer(self, program: ProgramDefinition) -> None:
        referral = c.ReferClient(
            command_id=self.command_id(),
            actor=INTAKE,
            client_ref=f"SIM-{self.client.index:06d}",
            program_id=program.id,
            referral_source=c.ReferralSource.PRIMARY_CARE,
        )
        self.sim.figures.commands += 1
        result = await self.sim.episodes.refer(self.episode_id, referral, program)
        self.absorb(list(result.events))
        admit_at = self.sim.scheduler.now + timedelta(days=self.client.draws.days_to_admission())
        self.at(admit_at, self.admit)

    async def admit(self) -> None:
        if self.state is None:
            await self.sync()  # a readmission: the workflow referred the new episode
        for command in (
            c.RecordScreening(command_id=self.command_id(), actor=INTAKE, findings=ELIGIBLE),
            c.RecordAssessment(
                command_id=self.command_id(),
                actor=CLINICIAN,
                asam_edition=AsamEdition.THIRD,
                asam_ratings=RATINGS,
                diagnoses=("F10.20",),
                recommended_level=LevelOfCare.IOP,
            ),
            c.AdmitClient(command_id=self.command_id(), actor=CLINICIAN),
            c.RecordTreatmentPlan(
                command_id=self.command_id(),
                actor=CLINICIAN,
                plan=treatment_plan(self.sim.cohort),
            ),
        ):
            if not await self.send(command):
                return
        now = self.sim.scheduler.now
        monday = (now + timedelta(days=7 - now.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        weeks = self.sim.weeks
        self.week_starts = [monday + timedelta(weeks=w) for w in range(weeks)]
        self.dropout_week = self.client.draws.dropout_week(weeks)
        self.at(self.week_starts[0], lambda: self.week(1))

    def attending(self, week: int) -> bool:
        return self.engaged and (self.dropout_week is None or week < self.dropout_week)

    async def week(self, week: int) -> None:
        if self.closed or self.state is None or self.state.stage is not Stage.IN_PROGRAM:
            return
        start = self.week_starts[week - 1]
        cohort = self.sim.cohort
        days = treatment_plan(cohort).weekly_schedule
        for n, block in enumerate(days, start=1):
            session_id = f"w{week}s{n}"
            starts = start + timedelta(days=block.weekday) + SESSION_START
            scheduled = await self.send(
                c.ScheduleSession(
                    command_id=self.command_id(),
                    actor=CLINICIAN,
                    session_id=session_id,
                    kind=SessionKind.GROUP_SKILLS,
                    starts_at=starts,
                    hours=cohort.session_hours,
                )
            )
            if scheduled:
                ends = starts + timedelta(hours=cohort.session_hours)
                self.at(ends + RECORD_AFTER, functools.partial(self.attendance, session_id, week))
        if week < self.sim.weeks:
            self.at(self.week_starts[week], lambda: self.week(week + 1))
        else:
            self.at(start + timedelta(days=5, hours=12), self.finish_program)

    async def attendance(self, session_id: str, week: int) -> None:
        # Drawn whatever happens next, so the client's later sessions draw the same numbers.
        drawn = self.client.draws.session(week)
        if self.closed or self.state is None or self.state.stage is not Stage.IN_PROGRAM:
            return
        if drawn == "no_show" or not self.attending(week):
            return  # left for the workflow's no-show timer
        status = AttendanceStatus.ATTENDED if drawn == "attended" else AttendanceStatus.EXCUSED
        await self.send(
            c.RecordAttendance(
                command_id=self.command_id(),
                actor=CLINICIAN,
                session_id=session_id,
                status=status,
            )
        )

    def plan_review(self) -> None:
        state = self.state
        if state is None or state.stage is not Stage.IN_PROGRAM or state.review_due_at is None:
            return
        if self.review_for == state.review_due_at:
            return
        self.review_for = due = state.review_due_at
        self.at(self.sim.scheduler.anchor(due) - REVIEW_BEFORE, lambda: self.review(due))

    async def review(self, due: datetime) -> None:
        state = self.state
        if state is None or state.stage is not Stage.IN_PROGRAM or state.review_due_at != due:
            return
        program = self.sim.program
        ends = phase_planned_end(state)
        advance = (
            ends is not None
            and ends <= self.sim.scheduler.now + timedelta(days=3)
            and program.phase_after(state.phase_id) is not None
        )
        await self.send(
            c.CompletePlanReview(
                command_id=self.command_id(),
                actor=CLINICIAN,
                outcome=ReviewOutcome.ADVANCE_PHASE if advance else ReviewOutcome.CONTINUE,
                reason="phase goals met at the review" if advance else None,
            )
        )

    async def resolve(self, task_id: str) -> None:
        state = self.state
        task = state.task(task_id) if state is not None else None
        if self.closed or task is None or not task.is_open:
            return
        done = await self.send(
            c.ResolveTask(
                command_id=self.command_id(),
                actor=RESOLVER[task.notify[0]],
                task_id=task_id,
                outcome="done",
            )
        )
        if not done or self.closed:
            return
        draws = self.client.draws
        if task.kind in OUTREACH_KINDS and not self.engaged_now() and draws.reengages():
            self.engaged, self.dropout_week = True, None
        elif task.kind in DISCHARGE_KINDS and not self.engaged_now():
            await self.discharge(DischargeReason.ADMINISTRATIVE, "not attending, not reached")
        elif (
            task.kind is TaskKind.REASSESSMENT and self.client.may_readmit() and draws.readmitted()
        ):
            self.client.readmissions += 1
            await self.send(
                c.ReadmitClient(
                    command_id=self.command_id(),
                    actor=CLINICIAN,
                    new_episode_id=f"{self.client.prefix}-e{self.client.readmissions + 1}",
                    summary="relapse in aftercare; reassessed for IOP",
                )
            )

    def engaged_now(self) -> bool:
        if self.state is None or self.state.stage is not Stage.IN_PROGRAM:
            return True
        week = 1 + sum(1 for start in self.week_starts[1:] if start <= self.sim.scheduler.now)
        return self.attending(week)

    async def discharge(self, reason: DischargeReason, summary: str) -> None:
        await self.send(
            c.Discharge(
                command_id=self.command_id(),
                actor=SUPERVISOR,
                discharge_reason=reason,
                summary=summary,
            )
        )

    async def finish_program(self) -> None:
        if self.closed or self.state is None or self.state.stage is not Stage.IN_PROGRAM:
            return
        if not self.attending(self.sim.weeks):
            await self.discharge(DischargeReason.ADMINISTRATIVE, "stopped attending")
            return
        for command in (
            c.RecordRelapsePreventionPlan(
                command_id=self.command_id(), actor=CLINICIAN, plan=RELAPSE_PREVENTION
            ),
            c.RecordAftercarePlan(command_id=self.command_id(), actor=CLINICIAN, plan=AFTERCARE),
            c.StepDown(command_id=self.command_id(), actor=CLINICIAN),
        ):
            if not await self.send(command):
                return
        assert self.state is not None
        assert self.state.stepped_down_at is not None
        anchor = self.sim.scheduler.anchor
        stepped = anchor(self.state.stepped_down_at)
        end = stepped + timedelta(days=self.sim.cohort.aftercare_days)
        for check_in in self.state.check_ins:
            at = anchor(check_in.due_at) + CHECK_IN_AFTER
            if at < end:
                self.at(at, functools.partial(self.check_in, check_in.number))
        self.at(end, self.end_aftercare)

    async def check_in(self, number: int) -> None:
        reached, relapse = self.client.draws.check_in()
        state = self.state
        if self.closed or state is None or state.stage is not Stage.AFTERCARE or not reached:
            return
        await self.send(
            c.RecordCheckIn(command_id=self.command_id(), actor=CLINICIAN, check_in=number)
        )
        if relapse and not self.closed and not self.state.relapse_reported:  # type: ignore[union-attr]
            await self.send(c.ReportRelapse(command_id=self.command_id(), actor=CLINICIAN))

    async def end_aftercare(self) -> None:
        if self.closed or self.state is None or self.state.stage is not Stage.AFTERCARE:
            return
        await self.discharge(DischargeReason.COMPLETED, "completed IOP and aftercare")


@dataclass
class Client:
    """A synthetic client: their draws and their episodes (a readmission adds one)."""

    index: int
    prefix: str
    draws: ClientDraws
    max_readmissions: int
    readmissions: int = 0
    episodes: list[Episode] = field(default_factory=list)

    def may_readmit(self) -> bool:
        return self.readmissions < self.max_readmissions


class Simulation:
    def __init__(
        self,
        env: WorkflowEnvironment,
        store: EventStore,
        episodes: EpisodeClient,
        program: ProgramDefinition,
        cohort: Cohort,
        *,
        clients: int,
        weeks: int,
        seed: int,
        run_id: str,
    ) -> None:
        self.env = env
        self.store = store
        self.episodes = episodes
        self.program = program
        self.cohort = cohort
        self.weeks = weeks
        self.seed = seed
        self.run_id = run_id
        self.figures = RunFigures()
        self.clients = [
            Client(
                index=i,
                prefix=f"{run_id}-{i:05d}",
                draws=ClientDraws(cohort, seed, i),
                max_readmissions=cohort.max_readmissions,
            )
            for i in range(clients)
        ]
        self.open_episodes = 0
        self.closed_episodes = 0
        self.scheduler: Scheduler  # set by run()

    def readmit(self, client: Client, episode_id: str, at: datetime) -> None:
        episode = Episode(self, client, episode_id)
        client.episodes.append(episode)
        self.open_episodes += 1
        admit_at = at + timedelta(days=client.draws.days_to_admission())
        episode.at(admit_at, episode.admit)

    def closed(self, episode: Episode) -> None:
        self.closed_episodes += 1

    async def run(
        self,
        concurrency: int = 32,
        progress: Callable[[int, int, datetime], None] | None = None,
    ) -> RunFigures:
        started = time.perf_counter()
        now = await self.env.get_current_time()
        origin = (now + timedelta(days=7 - now.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.scheduler = Scheduler(self.env, origin, self.cohort.grid)
        for client, offset in zip(
            self.clients, arrival_offsets(self.cohort, len(self.clients), self.seed), strict=True
        ):
            episode = Episode(self, client, f"{client.prefix}-e1")
            client.episodes.append(episode)
            self.open_episodes += 1
            episode.at(origin + offset, functools.partial(episode.refer, self.program))

        def tick(moment: datetime) -> None:
            if progress is not None:
                progress(self.closed_episodes, self.open_episodes, moment)

        await self.scheduler.run(concurrency, tick)
        self.figures.moments = self.scheduler.moments
        self.figures.wall_s = time.perf_counter() - started
        if progress is not None:
            progress(self.closed_episodes, self.open_episodes, self.scheduler.now)
        return self.figures

    def streams(self) -> list[list[str]]:
        """Each client's episode ids, in the order they were opened."""
        return [[e.episode_id for e in client.episodes] for client in self.clients]


async def read_streams(store: EventStore, sim: Simulation) -> list[list[list[StoredEvent]]]:
    """Every client's episodes' stored events: clients, then episodes, then events."""
    out = []
    for ids in sim.streams():
        out.append([await store.read_stream(episode_id) for episode_id in ids])
    return out
