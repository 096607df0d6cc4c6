"""Property tests: invariants of the decider for any sequence of commands and ticks.

A random walk issues commands (valid or not) and ticks at random times, and at the
deadlines `next_deadline` names, the way the workflow does. Refused commands must leave
nothing behind; accepted ones must keep every invariant below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain_scenario import (
    AFTERCARE_PLAN,
    CLINICIAN,
    ELIGIBLE,
    INTAKE,
    RATINGS,
    RP_PLAN,
    SUPERVISOR,
    SYSTEM,
    T0,
    Episode,
    plan,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain import next_deadline, visibility
from domain.deadlines import DEADLINE_RULES, due_items, pending_deadlines
from domain.decider import fold
from domain.errors import CarePathError, EpisodeClosed
from domain.events import Event, dump_event, load_event
from domain.vocabulary import (
    AsamEdition,
    AttendanceStatus,
    ConsentScope,
    DischargeReason,
    HoldKind,
    LevelOfCare,
    RecipientKind,
    ReviewOutcome,
    SessionKind,
)

ACTIONS = (
    "screen_ok", "screen_fail", "assess_iop", "assess_php", "override", "admit", "plan",
    "schedule", "schedule", "schedule", "reschedule", "cancel", "attend", "attend", "attend",
    "correct", "advance", "review", "hold", "resume", "step_up_return", "step_up_leave",
    "rp_plan", "aftercare_plan", "step_down", "check_in", "relapse", "readmit", "discharge",
    "resolve", "consent", "revoke", "notify", "authorize", "tick", "tick_deadline",
    "tick_deadline", "tick_deadline",
)  # fmt: skip

CLOSING = frozenset({"screen_fail", "step_up_leave", "readmit", "discharge"})

Step = tuple[str, int, int]
steps_strategy = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 96), st.integers(0, 1000)),
    min_size=1,
    max_size=60,
)


def build(ep: Episode, action: str, pick: int) -> c.Command | None:
    """The command for an action, aimed at the episode's current content."""
    s = ep.s
    if action in CLOSING and pick % 5:
        return None  # closing actions are rarer, so walks reach deep stages
    sessions = [x.session_id for x in s.sessions]
    session = sessions[pick % len(sessions)] if sessions else "s-none"
    statuses = list(AttendanceStatus)
    status = statuses[pick % len(statuses)]
    hours = 1.0 if status is AttendanceStatus.PARTIAL else None
    make = ep.make
    match action:
        case "screen_ok":
            return make(c.RecordScreening, actor=INTAKE, findings=ELIGIBLE)
        case "screen_fail":
            findings = ELIGIBLE.model_copy(update={"severe_crisis": True})
            return make(
                c.RecordScreening,
                actor=INTAKE,
                findings=findings,
                referred_out_to=LevelOfCare.INPATIENT,
            )
        case "assess_iop" | "assess_php":
            level = LevelOfCare.IOP if action == "assess_iop" else LevelOfCare.PHP
            return make(
                c.RecordAssessment,
                asam_edition=AsamEdition.FOURTH,
                asam_ratings=RATINGS,
                diagnoses=("F32.1",),
                recommended_level=level,
            )
        case "override":
            return make(c.OverrideLevelOfCare, actor=SUPERVISOR, justification="no bed")
        case "admit":
            return make(c.AdmitClient)
        case "plan":
            return make(c.RecordTreatmentPlan, plan=plan(hours=3 + pick % 2))
        case "schedule":
            return make(
                c.ScheduleSession,
                session_id=f"s{len(sessions)}",
                kind=list(SessionKind)[pick % len(SessionKind)],
                starts_at=ep.now + timedelta(hours=pick % 60 - 12),
                hours=2 + pick % 3,
            )
        case "reschedule":
            return make(
                c.RescheduleSession,
                session_id=session,
                starts_at=ep.now + timedelta(hours=pick % 48),
            )
        case "cancel":
            return make(c.CancelSession, session_id=session)
        case "attend":
            return make(c.RecordAttendance, session_id=session, status=status, hours=hours)
        case "correct":
            return make(
                c.CorrectAttendance, session_id=session, status=status, hours=hours, reason="fix"
            )
        case "advance":
            return make(c.AdvancePhase)
        case "review":
            outcomes = list(ReviewOutcome)
            return make(c.CompletePlanReview, outcome=outcomes[pick % len(outcomes)])
        case "hold":
            return make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION, review_days=1 + pick % 20)
        case "resume":
            return make(c.ResumeFromHold)
        case "step_up_return":
            return make(c.StepUp, to_level=LevelOfCare.PHP, intent_to_return=True)
        case "step_up_leave":
            return make(
                c.StepUp, to_level=LevelOfCare.RESIDENTIAL, intent_to_return=False, summary="x"
            )
        case "rp_plan":
            return make(c.RecordRelapsePreventionPlan, plan=RP_PLAN)
        case "aftercare_plan":
            return make(c.RecordAftercarePlan, plan=AFTERCARE_PLAN)
        case "step_down":
            return make(c.StepDown)
        case "check_in":
            return make(c.RecordCheckIn, check_in=1 + pick % 6)
        case "relapse":
            return make(c.ReportRelapse)
        case "readmit":
            return make(c.ReadmitClient, new_episode_id="ep-next", summary="readmitted")
        case "discharge":
            reasons = list(DischargeReason)
            return make(
                c.Discharge,
                actor=SUPERVISOR,
                discharge_reason=reasons[pick % len(reasons)],
                summary="summary",
            )
        case "resolve":
            tasks = [t.task_id for t in s.tasks] or ["task-none"]
            return make(
                c.ResolveTask, actor=SUPERVISOR, task_id=tasks[pick % len(tasks)], outcome="ok"
            )
        case "consent":
            return make(
                c.RecordConsent,
                actor=INTAKE,
                consent_id=f"k{pick % 3}",
                recipient_ref="mother",
                recipient_kind=RecipientKind.FAMILY,
                scopes=(ConsentScope.ATTENDANCE,),
                expires_at=ep.now + timedelta(days=1 + pick % 30),
            )
        case "revoke":
            return make(c.RevokeConsent, consent_id=f"k{pick % 3}")
        case "notify":
            return make(
                c.NotifyParty,
                actor=CLINICIAN,
                recipient_ref="mother",
                recipient_kind=RecipientKind.FAMILY,
                scope=ConsentScope.ATTENDANCE,
            )
        case "authorize":
            return make(
                c.RecordAuthorization,
                actor=INTAKE,
                authorization_id=f"a{pick % 3}",
                payer_ref="payer",
                units=1 + pick % 12,
                starts_at=ep.now - timedelta(days=1),
                ends_at=ep.now + timedelta(days=1 + pick % 40),
            )
        case "tick":
            return c.Tick(now=ep.now)
        case "tick_deadline":
            deadline = next_deadline(s)
            if deadline is None:
                return None
            ep.now = max(ep.now, deadline)
            return c.Tick(now=ep.now)
    raise AssertionError(action)  # pragma: no cover


@dataclass
class Walk:
    episode: Episode
    ticks: list[tuple[datetime, tuple[Event, ...]]] = field(default_factory=list)
    refused_after_close: int = 0
    accepted_after_close: int = 0


START = ("referred", "assessed", "admitted", "in_program", "ready_to_step_down", "in_aftercare")


def start(program_id: str, stage: str) -> Episode:
    """An episode brought to `stage` by real commands (see `Episode`'s given steps)."""
    ep = Episode(program_id=program_id)
    getattr(ep, stage)()
    return ep


def walk(steps: list[Step], program_id: str, stage: str = "referred") -> Walk:
    ep = start(program_id, stage)
    record = Walk(ep)
    for action, hours, pick in steps:
        ep.advance(timedelta(hours=hours))
        command = build(ep, action, pick)
        if command is None:
            continue
        was_closed = ep.s.is_closed
        before = list(ep.history)
        try:
            events = ep.run(command)
        except EpisodeClosed:
            assert was_closed
            record.refused_after_close += 1
            continue
        except CarePathError:
            assert ep.history == before
            assert not was_closed, "a closed episode must refuse with EpisodeClosed"
            continue
        if was_closed:
            record.accepted_after_close += 1  # pragma: no cover - a failure, reported below
        if isinstance(command, c.Tick):
            record.ticks.append((command.now, events))
    return record


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
programs = st.sampled_from(["adult-iop", "adolescent-iop"])
stages = st.sampled_from(START)


@FAST
@given(steps=steps_strategy, program_id=programs, stage=stages)
def test_sequence_numbers_stay_contiguous_and_fold_reproduces_the_state(
    steps: list[Step], program_id: str, stage: str
) -> None:
    ep = walk(steps, program_id, stage).episode
    assert [event.seq for event in ep.history] == list(range(1, len(ep.history) + 1))
    assert fold(ep.history) == ep.state
    assert ep.s.version == len(ep.history)
    assert visibility(ep.s)["stage"] == ep.s.stage.value
    # The state is the workflow's continue-as-new snapshot: it must survive JSON.
    assert type(ep.s).model_validate_json(ep.s.model_dump_json()) == ep.s


@FAST
@given(steps=steps_strategy, program_id=programs, stage=stages)
def test_nothing_is_accepted_after_the_episode_closes(
    steps: list[Step], program_id: str, stage: str
) -> None:
    record = walk([*steps, ("discharge", 1, 0), *steps], program_id, stage)
    assert record.accepted_after_close == 0
    assert record.episode.s.is_closed
    assert next_deadline(record.episode.s) is None


@FAST
@given(steps=steps_strategy, program_id=programs, stage=stages)
def test_the_next_deadline_is_the_first_pending_one_at_every_step(
    steps: list[Step], program_id: str, stage: str
) -> None:
    """`next_deadline` and the rules' `earliest` shortcuts skip listing what is pending:
    they must name the same moment the listing would, in every state a walk reaches."""
    ep = start(program_id, stage)
    for action, hours, pick in [*steps, ("discharge", 1, 0)]:
        ep.advance(timedelta(hours=hours))
        command = build(ep, action, pick)
        if command is not None:
            try:
                ep.run(command)
            except CarePathError:
                continue
        pending = pending_deadlines(ep.s)
        assert next_deadline(ep.s) == min((at for _kind, at, _ref in pending), default=None)
        if ep.s.is_closed:
            continue
        for rule in DEADLINE_RULES:
            listed = min((due.at for due in due_items(rule, ep.s)), default=None)
            assert rule.first_at(ep.s) == listed, rule.kind


@FAST
@given(steps=steps_strategy, program_id=programs, stage=stages)
def test_every_event_round_trips_through_json(
    steps: list[Step], program_id: str, stage: str
) -> None:
    for event in walk(steps, program_id, stage).episode.history:
        payload: dict[str, Any] = dump_event(event)
        assert load_event(payload) == event


@FAST
@given(steps=steps_strategy, program_id=programs, stage=stages)
def test_a_deadline_is_never_earlier_than_the_tick_that_produced_it(
    steps: list[Step], program_id: str, stage: str
) -> None:
    ep = start(program_id, stage)
    for action, hours, pick in steps:
        ep.advance(timedelta(hours=hours))
        command = build(ep, action, pick)
        if command is None:
            continue
        try:
            events = ep.run(command)
        except CarePathError:
            continue
        if isinstance(command, c.Tick):
            deadline = next_deadline(ep.s)
            assert deadline is None or deadline > command.now
            for event in events:
                due = getattr(event, "due_at", None)
                if event.type == "escalation_raised":
                    assert due > command.now
                assert event.occurred_at == command.now
                assert event.actor == SYSTEM


def test_the_walk_reaches_deep_stages() -> None:
    """A guard on the generator: a scripted walk reaches aftercare and discharge."""
    script: list[Step] = [
        ("screen_ok", 1, 0), ("assess_iop", 1, 0), ("admit", 1, 0), ("plan", 1, 0),
        ("schedule", 1, 13), ("attend", 4, 0), ("rp_plan", 1, 0), ("aftercare_plan", 1, 0),
        ("step_down", 1, 0), ("tick_deadline", 1, 0), ("discharge", 1, 0),
    ]  # fmt: skip
    ep = walk(script, "adult-iop").episode
    assert [e.type for e in ep.history][-1] == "episode_discharged"
    assert "client_stepped_down" in [e.type for e in ep.history]
    assert ep.history[0].occurred_at == T0
