"""The runner: a cohort's clients through the real workflow, decider, activities and store.

Simulated staff act on each client's episodes exactly as the API does, through the
workflow client facade (`workflows.client.EpisodeClient`): refer, screen, assess, admit,
record the treatment plan, schedule each week's sessions, record attendance (attended or
excused; a no-show is left unrecorded for the workflow's own timer to mark), complete
plan reviews (advancing the phase when it is up), resolve escalation tasks after the
response time drawn for the rung's staff, step down, record aftercare check-ins, report a
relapse, readmit, and discharge.

**Rounds.** Staff work in a few fixed daily rounds, the same simulated moments for every
client (`ROUNDS`: a morning round where episodes are admitted and each week's sessions
scheduled, a round after the evening session where attendance is recorded, an afternoon
round for aftercare check-ins; tasks are resolved at any round). Between two rounds the
runner makes one `env.sleep` for the whole cohort to the next round moment that has
something to do, and the workflows' own timers (no-shows, overdue tasks, weekly intensity
checks, missed check-ins) fire in between by themselves. A day with nothing due is
skipped, except that staff read the worklist every morning while an episode is open.

**The worklist.** At each round staff read what happened since the last one from the
event store: one query for every event past the last global position they read. They
learn of a task the workflow opened by itself that way, and resolve it at the first round
after the response time drawn for the rung's staff has elapsed. Every client's commands
of a round are sent concurrently (at most `concurrency` clients at a time; a client's own
commands one after another), all at the same simulated moment.

**Determinism.** The server's clock runs while commands are in flight, so an event a
command causes is stamped a few seconds after its round. Two rules keep the outcome
independent of those seconds: times staff react to are read to `GRAIN` (5 minutes; every
round and every timer of the programs falls on a multiple of it), and a client whose
episode has a timer due within `GUARD` of a round acts `GUARD` later (a second, short
sleep), after the timer has fired. All randomness is the clients' own
(`simulation.cohort`), drawn in the order of each client's own events, and the runner
visits clients in the order of their number, never in the order their commands finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
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
from store.event_store import COLUMNS, EventStore, stored_event
from store.records import StoredEvent
from workflows.client import CommandRejected, EpisodeClient
from workflows.messages import workflow_id_for

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
# The staff rounds of every day (from midnight, the program's clock: UTC for the
# shipped programs): morning (admissions, the week's sessions, plan reviews, the
# worklist), afternoon (aftercare check-ins), and after the evening session (attendance).
MORNING = timedelta(hours=9)
AFTERNOON = timedelta(hours=14)
EVENING = timedelta(hours=20, minutes=15)
ROUNDS = (MORNING, AFTERNOON, EVENING)
DAY = timedelta(days=1)
# Event times staff react to are read to this grain; rounds and the programs' timers
# fall on multiples of it, a command's events a few seconds after its round.
GRAIN = timedelta(minutes=5)
# A client whose episode has a timer due this close to a round acts this much later.
GUARD = timedelta(minutes=10)
REVIEW_BEFORE = timedelta(hours=1)
CHECK_IN_AFTER = timedelta(hours=2)
# If a timer due before a round has not shown its events when the round reads the store,
# read again after this long, at most `SETTLE_TRIES` times.
SETTLE_PAUSE_S = 0.02
SETTLE_TRIES = 50
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
# Every event past a global position, in position order (the worklist read of a round).
EVENTS_AFTER = f"SELECT {COLUMNS}, position FROM events WHERE position > $1 ORDER BY position"

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


class Calendar:
    """The simulated days from `origin` (a midnight): round moments and the time grain."""

    def __init__(self, origin: datetime) -> None:
        self.origin = origin

    def grain(self, moment: datetime) -> datetime:
        """`moment` read to the grain (the grain point at or before it)."""
        return self.origin + ((moment - self.origin) // GRAIN) * GRAIN

    def next_round(self, moment: datetime, rounds: tuple[timedelta, ...] = ROUNDS) -> datetime:
        """The first of `rounds` at or after `moment`."""
        day = self.origin + ((moment - self.origin) // DAY) * DAY
        while True:
            for offset in rounds:
                if day + offset >= moment:
                    return day + offset
            day += DAY

    def last_round(self, moment: datetime) -> datetime:
        """The last round at or before `moment`."""
        day = self.origin + ((moment - self.origin) // DAY) * DAY
        while True:
            for offset in reversed(ROUNDS):
                if day + offset <= moment:
                    return day + offset
            day -= DAY


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    client: int = field(compare=False)
    action: Action = field(compare=False)
    episode: Episode | None = field(default=None, compare=False)


class Scheduler:
    """Staff actions at round moments; one clock advance per round for the whole cohort.

    A round: sleep to its moment (the workflows' timers fire meanwhile), read the store
    since the last round (`Simulation.sync`), then run every client's actions due by
    then, clients concurrently, each client's in the order they were planned.
    """

    def __init__(self, env: WorkflowEnvironment, origin: datetime) -> None:
        self.env = env
        self.origin = origin
        self.calendar = Calendar(origin)
        self.now = origin
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self.moments = 0
        self.sleep_s = 0.0

    def at(
        self, moment: datetime, client: int, action: Action, episode: Episode | None = None
    ) -> None:
        heapq.heappush(
            self._heap, _Due(max(moment, self.now), next(self._seq), client, action, episode)
        )

    async def advance(self, ahead: timedelta, release: Callable[[], Awaitable[None]]) -> None:
        """Skip the server's clock `ahead`, firing every timer due meanwhile (after giving
        back the holds the test server keeps for abandoned children, `release`)."""
        await release()
        await self.env.sleep(ahead)

    def _prune(self) -> None:
        while self._heap and self._heap[0].episode is not None and self._heap[0].episode.closed:
            heapq.heappop(self._heap)

    async def run(
        self,
        concurrency: int,
        sync: Callable[[datetime], Awaitable[None]],
        worklist: Callable[[], bool],
        near_timer: Callable[[int, datetime], bool],
        release: Callable[[], Awaitable[None]],
        tick: Callable[[datetime], None] | None = None,
    ) -> None:
        gate = asyncio.Semaphore(concurrency)
        visited: datetime | None = None
        while True:
            self._prune()
            candidates = [self._heap[0].at] if self._heap else []
            if worklist():
                after = self.now if visited != self.now else self.now + timedelta(microseconds=1)
                candidates.append(self.calendar.next_round(after, (MORNING,)))
            if not candidates:
                return
            moment = min(candidates)
            if moment > self.now:
                ahead = moment - await self.env.get_current_time()
                if ahead > timedelta(0):
                    started = time.perf_counter()
                    await self.advance(ahead, release)
                    self.sleep_s += time.perf_counter() - started
                self.now = moment
                self.moments += 1
                if tick is not None:
                    tick(moment)
            visited = moment
            await sync(moment)
            lanes: dict[int, list[Action]] = {}
            waits: dict[int, bool] = {}  # client -> whether a timer of theirs goes first
            deferred: list[_Due] = []
            while self._heap and self._heap[0].at <= moment:
                due = heapq.heappop(self._heap)
                if due.episode is not None and due.episode.closed:
                    continue
                if due.client not in waits:
                    waits[due.client] = near_timer(due.client, moment)
                if waits[due.client]:
                    deferred.append(due)
                else:
                    lanes.setdefault(due.client, []).append(due.action)
            for due in deferred:
                # A timer of the client's episode is due within moments: it fires first.
                heapq.heappush(
                    self._heap, _Due(moment + GUARD, due.seq, due.client, due.action, due.episode)
                )

            async def lane(actions: list[Action]) -> None:
                async with gate:
                    for action in actions:
                        await action()

            await asyncio.gather(*(lane(lanes[k]) for k in sorted(lanes)))


@dataclass
class RunFigures:
    """What the run itself counted (the rest is read from the events afterwards)."""

    commands: int = 0
    refused: int = 0
    moments: int = 0
    store_reads: int = 0
    settle_waits: int = 0
    unlocks: int = 0
    sleep_s: float = 0.0
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
        self.seen_tasks: set[str] = set()
        self.review_for: datetime | None = None
        self.week_starts: list[datetime] = []
        self.dropout_week: int | None = None
        self.engaged = True
        # Whether outreach has had its one chance to bring back a client who stopped coming.
        self.outreach_tried = False
        self.counted = False
        self._ids = itertools.count(1)

    # --- plumbing ----------------------------------------------------------------------

    def command_id(self) -> str:
        return f"{self.episode_id}-c{next(self._ids)}"

    @property
    def closed(self) -> bool:
        return self.state is not None and self.state.is_closed

    @property
    def open(self) -> bool:
        """Referred and not yet closed (an episode waiting for its referral is not)."""
        return self.state is not None and not self.state.is_closed

    def at(self, moment: datetime, action: Action) -> None:
        self.sim.scheduler.at(moment, self.client.index, action, self)

    def grain(self, moment: datetime) -> datetime:
        return self.sim.scheduler.calendar.grain(moment)

    def next_round(self, moment: datetime, rounds: tuple[timedelta, ...] = ROUNDS) -> datetime:
        return self.sim.scheduler.calendar.next_round(moment, rounds)

    def timer_near(self, moment: datetime) -> bool:
        """Whether the episode's next deadline falls within `GUARD` of `moment`."""
        if not self.open:
            return False
        due = next_deadline(self.state)
        return due is not None and moment - GUARD <= due <= moment + GUARD

    def stale(self, moment: datetime) -> bool:
        """Whether a deadline before `moment` has not shown its events yet."""
        if not self.open:
            return False
        due = next_deadline(self.state)
        return due is not None and due < moment - timedelta(seconds=1) and due >= moment - GUARD

    async def send(self, command: c.Command) -> bool:
        """Send a command as staff would; False if the episode refused it."""
        self.sim.figures.commands += 1
        try:
            result = await self.sim.episodes.send(self.episode_id, command)
        except CommandRejected as err:
            self.sim.figures.refused += 1
            refusals = self.sim.figures.refusals
            refusals[err.error_type] = refusals.get(err.error_type, 0) + 1
            await self.read()
            return False
        events = list(result.events)
        if events and events[0].seq != self.last_seq + 1:
            await self.read()  # a timer's events came first: read them from the store
        else:
            self.absorb(events)
        return True

    async def read(self) -> None:
        """Read the episode's events the store holds beyond the copy."""
        stored = await self.sim.store.read_stream(self.episode_id, after_seq=self.last_seq)
        self.absorb([s.event for s in stored])

    def absorb(self, events: list[ev.Event]) -> None:
        fresh = [e for e in events if e.seq > self.last_seq]
        if not fresh:
            return
        self.state = fold(fresh, self.state)
        self.last_seq = fresh[-1].seq
        for event in fresh:
            self.react(event)
        self.plan_review()

    def react(self, event: ev.Event) -> None:
        if isinstance(event, ev.EscalationRaised) and event.task_id not in self.seen_tasks:
            self.seen_tasks.add(event.task_id)
            recipient = event.notify[0]
            resolve_at = self.grain(event.occurred_at) + self.client.draws.response(recipient)
            self.at(self.next_round(resolve_at), functools.partial(self.resolve, event.task_id))
        elif isinstance(event, ev.ClientReadmitted):
            self.sim.readmit(self.client, event.new_episode_id, self.grain(event.occurred_at))
        elif isinstance(event, ev.EpisodeDischarged | ev.ClientReferredOut) and not self.counted:
            self.counted = True
            self.sim.closed(self)
            if self.client.episodes[0] is not self:
                self.sim.closed_readmissions.append(self.episode_id)

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
        self.at(self.next_round(admit_at, (MORNING,)), self.admit)

    async def admit(self) -> None:
        if self.state is None:
            await self.read()  # a readmission: the workflow referred the new episode
            if self.state is None:  # pragma: no cover - the workflow starts it at once
                self.at(self.next_round(self.sim.scheduler.now + DAY, (MORNING,)), self.admit)
                return
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
        self.at(self.week_starts[0] + MORNING, lambda: self.week(1))

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
            day = start + timedelta(days=block.weekday)
            scheduled = await self.send(
                c.ScheduleSession(
                    command_id=self.command_id(),
                    actor=CLINICIAN,
                    session_id=session_id,
                    kind=SessionKind.GROUP_SKILLS,
                    starts_at=day + SESSION_START,
                    hours=cohort.session_hours,
                )
            )
            if scheduled:
                ends = day + SESSION_START + timedelta(hours=cohort.session_hours)
                self.at(
                    self.next_round(ends, (EVENING,)),
                    functools.partial(self.attendance, session_id, week),
                )
        if week < self.sim.weeks:
            self.at(self.week_starts[week] + MORNING, lambda: self.week(week + 1))
        else:
            self.at(start + timedelta(days=5) + MORNING, self.finish_program)

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
        calendar = self.sim.scheduler.calendar
        self.at(calendar.last_round(self.grain(due) - REVIEW_BEFORE), lambda: self.review(due))

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
        if task.kind in OUTREACH_KINDS and not self.engaged_now():
            # One chance per client who stopped coming, not one per task: a lapse opens
            # several outreach tasks (each rung, each short week), and a draw for each
            # would bring nearly everyone back.
            if not self.outreach_tried:
                self.outreach_tried = True
                if draws.reengages():
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
        stepped = self.grain(self.state.stepped_down_at)
        end = stepped + timedelta(days=self.sim.cohort.aftercare_days)
        for check_in in self.state.check_ins:
            at = self.next_round(self.grain(check_in.due_at) + CHECK_IN_AFTER, (AFTERNOON,))
            if at < end:
                self.at(at, functools.partial(self.check_in, check_in.number))
        self.at(self.next_round(end, (MORNING,)), self.end_aftercare)

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
        self.position = 0
        # Each round's moment and the staff commands sent before it (`bench.simulation`).
        self.round_log: list[tuple[datetime, int]] = []
        # Readmissions' episodes closed since the last clock advance (see `release`).
        self.closed_readmissions: list[str] = []
        self._unclaimed: dict[str, list[StoredEvent]] = {}
        self.scheduler: Scheduler  # set by run()

    def readmit(self, client: Client, episode_id: str, at: datetime) -> None:
        episode = Episode(self, client, episode_id)
        client.episodes.append(episode)
        self.open_episodes += 1
        admit_at = at + timedelta(days=client.draws.days_to_admission())
        episode.at(self.scheduler.calendar.next_round(admit_at, (MORNING,)), episode.admit)

    def closed(self, episode: Episode) -> None:
        self.closed_episodes += 1

    def _episodes(self) -> list[Episode]:
        return [e for client in self.clients for e in client.episodes]

    async def sync(self, moment: datetime) -> None:
        """Bring every copy up to date with the store (the round's worklist read).

        A timer due before `moment` has fired by the time the clock reaches it; should
        its events not be readable yet, read again after a pause."""
        for _ in range(SETTLE_TRIES):
            await self.read_new_events()
            if not any(e.stale(moment) for e in self._episodes()):
                return
            self.figures.settle_waits += 1
            await asyncio.sleep(SETTLE_PAUSE_S)

    async def read_new_events(self) -> None:
        """One query for every event past the last position read; each client's episodes
        absorb theirs, clients in the order of their number."""
        async with self.store.pool.acquire() as conn:
            rows = await conn.fetch(EVENTS_AFTER, self.position)
        self.figures.store_reads += 1
        if not rows:
            return
        self.position = max(int(row["position"]) for row in rows)
        for row in rows:
            stored = stored_event(row)
            self._unclaimed.setdefault(stored.episode_id, []).append(stored)
        for client in self.clients:
            i = 0
            while i < len(client.episodes):  # a readmission adds an episode as it goes
                episode = client.episodes[i]
                stored_events = self._unclaimed.pop(episode.episode_id, None)
                if stored_events:
                    stored_events.sort(key=lambda s: s.seq)
                    episode.absorb([s.event for s in stored_events])
                i += 1

    async def release(self) -> None:
        """Give back the hold the time-skipping test server keeps on its clock when a
        readmission's episode closes.

        A readmission's new episode is a child workflow that its parent (the closed
        episode) abandoned. When such a child completes, the test server takes a hold on
        time skipping, as for work in flight, that nothing gives back: from then on its
        clock moves at wall-clock speed and a sleep of days takes days. So once the
        child's workflow has closed, the simulation unlocks once for it."""
        while self.closed_readmissions:
            episode_id = self.closed_readmissions.pop(0)
            client = self.env.client
            request = DescribeWorkflowExecutionRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id_for(episode_id)),
            )
            for _ in range(SETTLE_TRIES):
                described = await client.workflow_service.describe_workflow_execution(request)
                status = described.workflow_execution_info.status
                if status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
                    break
                await asyncio.sleep(SETTLE_PAUSE_S)
            await self.env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
            self.figures.unlocks += 1

    def near_timer(self, client: int, moment: datetime) -> bool:
        return any(e.timer_near(moment) for e in self.clients[client].episodes)

    def worklist(self) -> bool:
        """Whether staff still have episodes to look after (then they read the worklist
        every morning)."""
        return any(e.open for e in self._episodes())

    async def run(
        self,
        concurrency: int = 64,
        progress: Callable[[int, int, datetime], None] | None = None,
    ) -> RunFigures:
        started = time.perf_counter()
        now = await self.env.get_current_time()
        origin = (now + timedelta(days=7 - now.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.scheduler = Scheduler(self.env, origin)
        async with self.store.pool.acquire() as conn:
            self.position = int(
                await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
            )
        calendar = self.scheduler.calendar
        for client, offset in zip(
            self.clients, arrival_offsets(self.cohort, len(self.clients), self.seed), strict=True
        ):
            episode = Episode(self, client, f"{client.prefix}-e1")
            client.episodes.append(episode)
            self.open_episodes += 1
            at = calendar.next_round(calendar.grain(origin + offset))
            episode.at(at, functools.partial(episode.refer, self.program))

        def tick(moment: datetime) -> None:
            self.round_log.append((moment, self.figures.commands))
            if progress is not None:
                progress(self.closed_episodes, self.open_episodes, moment)

        await self.scheduler.run(
            concurrency, self.sync, self.worklist, self.near_timer, self.release, tick
        )
        # Leave the server's clock free for whatever runs on it next.
        await self.release()
        self.figures.moments = self.scheduler.moments
        self.figures.sleep_s = self.scheduler.sleep_s
        self.figures.wall_s = time.perf_counter() - started
        if progress is not None:
            progress(self.closed_episodes, self.open_episodes, self.scheduler.now)
        return self.figures

    def streams(self) -> list[list[str]]:
        """Each client's episode ids, in the order they were opened."""
        return [[e.episode_id for e in client.episodes] for client in self.clients]


async def read_streams(store: EventStore, sim: Simulation) -> list[list[list[StoredEvent]]]:
    """Every client's episodes' stored events: clients, then episodes, then events, each
    event's time read to the grain (`snapped`)."""
    calendar = sim.scheduler.calendar
    out = []
    for ids in sim.streams():
        out.append(
            [
                [snapped(stored, calendar) for stored in await store.read_stream(episode_id)]
                for episode_id in ids
            ]
        )
    return out


def snapped(stored: StoredEvent, calendar: Calendar) -> StoredEvent:
    """The event with its time read to the grain, in the row and in the event itself.

    Staff commands are stamped the seconds after their round that the server took to
    answer them, which vary from run to run; every other time is a whole number of
    grains from the run's start. Reports read times to the grain, so the same seed gives
    the same report."""
    at = calendar.grain(stored.occurred_at)
    if at == stored.occurred_at:
        return stored
    payload = {**stored.payload, "occurred_at": at.isoformat()}
    return dataclasses.replace(stored, occurred_at=at, payload=payload)
