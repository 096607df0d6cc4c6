"""Given-when-then helpers for the pure clinical model.

`Episode` keeps an event history and its folded state. `given` steps run real commands
through `decide` (so a history is always one the decider could have produced); `when`
returns the events of one more command; `then` is a plain assertion in each test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain import commands as c
from domain.actors import SYSTEM_ACTOR, Actor, Role
from domain.decider import DecisionContext, decide, fold
from domain.events import Event
from domain.programs import ProgramCatalog, parse_program
from domain.state import EpisodeState
from domain.vocabulary import (
    CURRENT_RULES,
    AftercarePlan,
    AsamEdition,
    CareTeamMember,
    Discipline,
    Goal,
    GoalArea,
    LevelOfCare,
    Modality,
    Problem,
    RelapsePreventionPlan,
    ScheduleBlock,
    SessionKind,
    TreatmentPlan,
)
from programs import load_catalog
from testing.samples import ELIGIBLE, RATINGS

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

INTAKE = Actor(user_id="ivy-intake", role=Role.INTAKE_COORDINATOR)
CLINICIAN = Actor(user_id="cal-clinician", role=Role.CLINICIAN)
SUPERVISOR = Actor(user_id="sue-supervisor", role=Role.SUPERVISOR)
DIRECTOR = Actor(user_id="dan-director", role=Role.CLINICAL_DIRECTOR)
AUDITOR = Actor(user_id="ada-auditor", role=Role.AUDITOR)
SYSTEM = SYSTEM_ACTOR

CATALOG: ProgramCatalog = load_catalog()


def catalog_with(**sections: dict[str, Any]) -> ProgramCatalog:
    """The built-in catalog with sections of the adult program changed (e.g. planning=...)."""
    adult = CATALOG.get("adult-iop")
    data = adult.model_dump()
    for name, changes in sections.items():
        data[name] = {**data[name], **changes}
    return ProgramCatalog({"adult-iop": parse_program(data)})


def plan(hours: float = 3, days: int = 3, primary: str = "cal-clinician") -> TreatmentPlan:
    return TreatmentPlan(
        problems=(Problem(problem_id="p1", description="alcohol use disorder, moderate"),),
        goals=(
            Goal(
                area=GoalArea.COPING_STRATEGIES, description="use urge surfing", problem_ids=("p1",)
            ),
            Goal(area=GoalArea.AFTERCARE_READINESS, description="join a peer group"),
        ),
        modalities=(Modality.CBT, Modality.TWELVE_STEP_FACILITATION),
        weekly_schedule=tuple(ScheduleBlock(weekday=d, hours=hours) for d in range(days)),
        care_team=(
            CareTeamMember(user_id="cal-clinician", discipline=Discipline.THERAPIST),
            CareTeamMember(user_id="pat-psychiatrist", discipline=Discipline.PSYCHIATRIST),
        ),
        primary_clinician=primary,
    )


RP_PLAN = RelapsePreventionPlan(triggers=("payday",), coping_strategies=("call sponsor",))
AFTERCARE_PLAN = AftercarePlan(continued_therapy="weekly outpatient CBT", peer_support=("AA",))


class Episode:
    """One episode's history, built by running commands through the decider."""

    def __init__(
        self,
        program_id: str = "adult-iop",
        episode_id: str = "ep-1",
        catalog: ProgramCatalog = CATALOG,
        rules_revision: int = CURRENT_RULES,
    ) -> None:
        self.catalog = catalog
        # The rules revision an admission records (FIRST_RULES: as recorded histories did).
        self.rules_revision = rules_revision
        self.program_id = program_id
        self.episode_id = episode_id
        self.now = T0
        self.history: list[Event] = []
        self.state: EpisodeState | None = None
        self._ids = 0

    # --- the core --------------------------------------------------------------

    def ctx(self, now: datetime | None = None) -> DecisionContext:
        return DecisionContext(
            episode_id=self.episode_id,
            now=now or self.now,
            programs=self.catalog,
            rules_revision=self.rules_revision,
        )

    def decide(self, command: c.Command) -> tuple[Event, ...]:
        """Decide without applying (the `when` step)."""
        return decide(self.state, command, self.ctx())

    def run(self, command: c.Command) -> tuple[Event, ...]:
        """Decide and apply (the `given` step)."""
        events = self.decide(command)
        self.history.extend(events)
        self.state = fold(events, self.state)
        return events

    def advance(self, delta: timedelta) -> Episode:
        self.now = self.now + delta
        return self

    def cmd_id(self) -> str:
        self._ids += 1
        return f"cmd-{self._ids}"

    def make(self, cls: type[Any], actor: Actor = CLINICIAN, **fields: Any) -> Any:
        return cls(command_id=self.cmd_id(), actor=actor, **fields)

    @property
    def s(self) -> EpisodeState:
        assert self.state is not None
        return self.state

    # --- given steps -----------------------------------------------------------

    def referred(self, **fields: Any) -> Episode:
        fields.setdefault("client_ref", "client-123")
        fields.setdefault("program_id", self.program_id)
        fields.setdefault("referral_source", c.ReferralSource.PRIMARY_CARE)
        self.run(self.make(c.ReferClient, actor=INTAKE, **fields))
        return self

    def screened(self) -> Episode:
        self.referred()
        self.run(self.make(c.RecordScreening, actor=INTAKE, findings=ELIGIBLE))
        return self

    def assessed(self, level: LevelOfCare = LevelOfCare.IOP) -> Episode:
        self.screened()
        self.run(
            self.make(
                c.RecordAssessment,
                asam_edition=AsamEdition.THIRD,
                asam_ratings=RATINGS,
                diagnoses=("F10.20",),
                recommended_level=level,
            )
        )
        return self

    def admitted(self) -> Episode:
        self.assessed()
        self.run(self.make(c.AdmitClient))
        return self

    def in_program(self) -> Episode:
        self.admitted()
        self.run(self.make(c.RecordTreatmentPlan, plan=plan()))
        return self

    def session(
        self,
        session_id: str,
        starts_at: datetime,
        hours: float = 3,
        kind: SessionKind = SessionKind.GROUP_SKILLS,
    ) -> Episode:
        self.run(
            self.make(
                c.ScheduleSession,
                session_id=session_id,
                kind=kind,
                starts_at=starts_at,
                hours=hours,
            )
        )
        return self

    def attendance(
        self, session_id: str, status: str, hours: float | None = None
    ) -> tuple[Event, ...]:
        return self.run(
            self.make(c.RecordAttendance, session_id=session_id, status=status, hours=hours)
        )

    def tick(self, at: datetime) -> tuple[Event, ...]:
        self.now = at
        return self.run(c.Tick(now=at))

    def ready_to_step_down(self) -> Episode:
        self.in_program()
        self.run(self.make(c.RecordRelapsePreventionPlan, plan=RP_PLAN))
        self.run(self.make(c.RecordAftercarePlan, plan=AFTERCARE_PLAN))
        return self

    def in_aftercare(self) -> Episode:
        self.ready_to_step_down()
        self.run(self.make(c.StepDown))
        return self

    def reassessed_after_relapse(self) -> Episode:
        """In aftercare, a relapse reported and its reassessment task resolved."""
        self.run(self.make(c.ReportRelapse))
        task = next(t for t in self.s.tasks if t.kind.value == "reassessment")
        self.run(self.make(c.ResolveTask, task_id=task.task_id, outcome="reassessed: readmit"))
        return self

    def phase_elapsed(self) -> Episode:
        """Move the clock to the end of the current phase's planned duration."""
        assert self.s.phase_started_at is not None
        assert self.s.rules.phase_durations
        self.now = self.s.phase_started_at + self.s.rules.phase_durations[self.s.phase_id or ""]
        return self


def types(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [e.type for e in events]
