"""Decisions after admission: treatment plan, phases, plan reviews, hold and resume,
step-up, step-down (with its required plans) and discharge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain import commands_plan as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    InvalidCommand,
    NoFurtherPhase,
    PhaseAdvanceTooEarly,
    ReasonRequired,
    ScheduleOutsideIntensityBounds,
    StepDownRequiresAftercarePlan,
    StepDownRequiresRelapsePreventionPlan,
)
from domain.local_text import local_time, span
from domain.programs import Phase, ProgramDefinition
from domain.roles import CLINICAL, OVERSIGHT
from domain.rules import rule
from domain.state import TREATMENT_STAGES, Stage
from domain.vocabulary import (
    HIGHER_LEVELS_OF_CARE,
    DischargeReason,
    HoldKind,
    LevelOfCare,
    ReviewOutcome,
    TreatmentPlan,
)

_STEP_DOWN_LEVELS = frozenset(
    {
        LevelOfCare.OUTPATIENT,
        LevelOfCare.EARLY_INTERVENTION,
        # The 4th edition's levels below IOP.
        LevelOfCare.MEDICALLY_MANAGED_OUTPATIENT,
        LevelOfCare.REMISSION_MONITORING,
    }
)


def _choices(levels: frozenset[LevelOfCare]) -> str:
    return ", ".join(sorted(level.value for level in levels))


Violation = dict[str, Any]


def _bound(rule_name: str, actual: float, low: float, high: float, message: str) -> Violation:
    return {"rule": rule_name, "actual": actual, "min": low, "max": high, "message": message}


def _intensity_violations(plan: TreatmentPlan, program: ProgramDefinition) -> list[Violation]:
    """Every intensity bound the plan's weekly schedule breaks, with the numbers."""
    bounds = program.intensity
    found: list[Violation] = []
    days = len(plan.weekly_schedule)
    if not bounds.min_sessions_per_week <= days <= bounds.max_sessions_per_week:
        found.append(
            _bound(
                "sessions_per_week",
                days,
                bounds.min_sessions_per_week,
                bounds.max_sessions_per_week,
                f"the weekly schedule has {days} program days: {program.id} requires "
                f"{bounds.min_sessions_per_week}-{bounds.max_sessions_per_week} a week",
            )
        )
    for block in plan.weekly_schedule:
        if not bounds.min_session_hours <= block.hours <= bounds.max_session_hours:
            violation = _bound(
                "session_hours",
                block.hours,
                bounds.min_session_hours,
                bounds.max_session_hours,
                f"the program day on weekday {block.weekday} lasts {block.hours} h: "
                f"{program.id} requires {bounds.min_session_hours:g}-"
                f"{bounds.max_session_hours:g} h per program day",
            )
            found.append({**violation, "weekday": block.weekday})
    total = plan.weekly_hours
    if not bounds.min_weekly_hours <= total <= bounds.max_weekly_hours:
        found.append(
            _bound(
                "weekly_hours",
                total,
                bounds.min_weekly_hours,
                bounds.max_weekly_hours,
                f"the weekly schedule totals {total:g} h: {program.id} requires "
                f"{bounds.min_weekly_hours:g}-{bounds.max_weekly_hours:g} h a week",
            )
        )
    return found


def _structure_violations(plan: TreatmentPlan) -> list[Violation]:
    found: list[Violation] = []
    weekdays = [block.weekday for block in plan.weekly_schedule]
    if len(weekdays) != len(set(weekdays)):
        found.append(
            {
                "rule": "weekday_once",
                "message": "the weekly schedule lists a weekday twice: merge those blocks",
            }
        )
    if plan.primary_clinician not in {member.user_id for member in plan.care_team}:
        found.append(
            {
                "rule": "primary_clinician_on_team",
                "message": f"primary clinician {plan.primary_clinician!r} is not on the care "
                "team: add them to the care team or choose a team member",
            }
        )
    problem_ids = {problem.problem_id for problem in plan.problems}
    unknown = sorted({p for goal in plan.goals for p in goal.problem_ids} - problem_ids)
    if unknown:
        found.append(
            {
                "rule": "goal_problems_known",
                "message": f"goals name unknown problems {unknown}: list those problems in "
                "the plan",
            }
        )
    return found


def _check_plan(plan: TreatmentPlan, program: ProgramDefinition) -> None:
    """Refuse a plan that breaks any rule, naming every rule it breaks at once."""
    structure = _structure_violations(plan)
    intensity = _intensity_violations(plan, program)
    violations = tuple(structure + intensity)
    if not violations:
        return
    if not intensity:
        message = "; ".join(v["message"] for v in structure)
        raise InvalidCommand(message, errors=violations)
    b = program.intensity
    program_bounds = (
        f"{program.id} asks for {b.min_weekly_hours:g}-{b.max_weekly_hours:g} h a week in "
        f"{b.min_sessions_per_week}-{b.max_sessions_per_week} program days of "
        f"{b.min_session_hours:g}-{b.max_session_hours:g} h, for {b.min_weeks}-{b.max_weeks} "
        "weeks"
    )
    count = len(violations)
    listed = "; ".join(v["message"] for v in violations)
    raise ScheduleOutsideIntensityBounds(
        f"the plan breaks {count} rule{'s' if count > 1 else ''}: {listed} "
        f"({program_bounds}); adjust the schedule",
        errors=violations,
    )


@rule(c.RecordTreatmentPlan, roles=CLINICAL)
def record_treatment_plan(em: Emitter, cmd: c.RecordTreatmentPlan) -> None:
    em.require_stage(TREATMENT_STAGES, "record a treatment plan")
    program, state = em.program, em.state
    _check_plan(cmd.plan, program)
    review_due_at = state.review_due_at or em.now + program.planning.review_every
    em.emit(
        ev.TreatmentPlanRecorded,
        plan=cmd.plan,
        revision=state.plan_revision + 1,
        review_due_at=review_due_at,
    )


def _next_phase(em: Emitter) -> Phase:
    following = em.program.phase_after(em.state.phase_id)
    if following is None:
        raise NoFurtherPhase(
            f"{em.state.phase_id!r} is the program's last phase: step the client down "
            "or discharge instead"
        )
    return following


def _early_reason(em: Emitter, reason: str | None) -> str | None:
    """Under the current rules, the reason an advance before the phase's earliest advance
    needs (None for an advance on time); refuses an early advance without one."""
    state = em.state
    started = state.phase_started_at
    if not state.rules.current or started is None:
        return None
    phase = next((p for p in em.program.phases if p.id == state.phase_id), None)
    if phase is None:  # pragma: no cover - the phase comes from the program at admission
        return None
    earliest = started + phase.earliest_advance
    if em.now >= earliest:
        return None
    if not reason:
        zone = state.rules.zone
        raise PhaseAdvanceTooEarly(
            f"phase {phase.id!r} began {local_time(started, zone)} and may be advanced from "
            f"{local_time(earliest, zone)} ({span(phase.earliest_advance)} in it): "
            "give a reason to advance it earlier, or wait"
        )
    return reason


def _advance(em: Emitter, following: Phase, early_reason: str | None) -> None:
    if early_reason is None:
        em.emit(ev.PhaseAdvanced, from_phase=em.state.phase_id, to_phase=following.id)
    else:
        em.emit(
            ev.PhaseAdvanced,
            from_phase=em.state.phase_id,
            to_phase=following.id,
            early_reason=early_reason,
        )


@rule(c.AdvancePhase, roles=CLINICAL)
def advance_phase(em: Emitter, cmd: c.AdvancePhase) -> None:
    em.require_stage({Stage.IN_PROGRAM}, "advance the phase")
    following = _next_phase(em)
    _advance(em, following, _early_reason(em, cmd.reason))


@rule(c.CompletePlanReview, roles=CLINICAL)
def complete_plan_review(em: Emitter, cmd: c.CompletePlanReview) -> None:
    em.require_stage({Stage.IN_PROGRAM}, "complete a plan review")
    following = _next_phase(em) if cmd.outcome is ReviewOutcome.ADVANCE_PHASE else None
    early_reason = _early_reason(em, cmd.reason) if following is not None else None
    em.emit(
        ev.PlanReviewCompleted,
        outcome=cmd.outcome,
        notes=cmd.notes,
        next_review_due_at=em.now + em.program.planning.review_every,
    )
    if following is not None:
        _advance(em, following, early_reason)


def _cancel_future_sessions(em: Emitter) -> None:
    for session in em.state.sessions:
        if not session.cancelled and session.status is None and session.starts_at >= em.now:
            em.emit(ev.SessionCancelled, session_id=session.session_id)


def _hold(em: Emitter, kind: HoldKind, review_days: int | None) -> None:
    review = timedelta(days=review_days) if review_days else em.program.hold.review
    em.emit(
        ev.EpisodePutOnHold,
        kind=kind,
        review_due_at=em.now + review,
        resume_stage=em.state.stage,
    )
    _cancel_future_sessions(em)


@rule(c.PlaceOnHold, roles=CLINICAL)
def place_on_hold(em: Emitter, cmd: c.PlaceOnHold) -> None:
    em.require_stage(TREATMENT_STAGES, "place the episode on hold")
    _hold(em, cmd.kind, cmd.review_days)


@rule(c.ResumeFromHold, roles=CLINICAL)
def resume_from_hold(em: Emitter, cmd: c.ResumeFromHold) -> None:
    em.require_stage({Stage.ON_HOLD}, "resume the episode")
    hold = em.state.hold
    if hold is None:  # pragma: no cover - ON_HOLD always carries its hold
        raise AssertionError("on hold without a hold record")
    em.emit(ev.EpisodeResumed, stage=hold.resume_stage, held_since=hold.started_at)


@rule(c.StepUp, roles=CLINICAL)
def step_up(em: Emitter, cmd: c.StepUp) -> None:
    allowed = TREATMENT_STAGES if cmd.intent_to_return else {*TREATMENT_STAGES, Stage.ON_HOLD}
    em.require_stage(allowed, "step the client up")
    if cmd.to_level not in HIGHER_LEVELS_OF_CARE:
        raise InvalidCommand(
            f"{cmd.to_level.value} is not a higher level of care than IOP: choose one of "
            f"{_choices(HIGHER_LEVELS_OF_CARE - {LevelOfCare.WITHDRAWAL_MANAGEMENT})} "
            "(docs/asam.md names them per edition)"
        )
    if not cmd.intent_to_return and cmd.summary is None:
        raise ReasonRequired(
            "stepping up without return discharges the client: give the discharge summary"
        )
    em.emit(ev.ClientSteppedUp, to_level=cmd.to_level, intent_to_return=cmd.intent_to_return)
    if cmd.intent_to_return:
        _hold(em, HoldKind.STEP_UP_WITH_RETURN, None)
    else:
        _cancel_future_sessions(em)
        em.emit(
            ev.EpisodeDischarged, discharge_reason=DischargeReason.TRANSFERRED, summary=cmd.summary
        )


@rule(c.RecordRelapsePreventionPlan, roles=CLINICAL)
def record_relapse_prevention_plan(em: Emitter, cmd: c.RecordRelapsePreventionPlan) -> None:
    em.require_stage({*TREATMENT_STAGES, Stage.ON_HOLD}, "record a relapse-prevention plan")
    em.emit(ev.RelapsePreventionPlanRecorded, plan=cmd.plan)


@rule(c.RecordAftercarePlan, roles=CLINICAL)
def record_aftercare_plan(em: Emitter, cmd: c.RecordAftercarePlan) -> None:
    em.require_stage({*TREATMENT_STAGES, Stage.ON_HOLD}, "record an aftercare plan")
    em.emit(ev.AftercarePlanRecorded, plan=cmd.plan)


@rule(c.StepDown, roles=CLINICAL)
def step_down(em: Emitter, cmd: c.StepDown) -> None:
    em.require_stage({Stage.IN_PROGRAM}, "step the client down")
    state, program = em.state, em.program
    if cmd.to_level not in _STEP_DOWN_LEVELS:
        raise InvalidCommand(
            f"{cmd.to_level.value} is not a step down from IOP: choose one of "
            f"{_choices(_STEP_DOWN_LEVELS)} (use step-up for higher levels)"
        )
    if state.relapse_prevention_plan is None:
        raise StepDownRequiresRelapsePreventionPlan(
            "record a relapse-prevention plan before stepping down"
        )
    if state.aftercare_plan is None:
        raise StepDownRequiresAftercarePlan("record an aftercare plan before stepping down")
    _cancel_future_sessions(em)
    aftercare = program.aftercare
    window = aftercare.check_in_window
    em.emit(
        ev.ClientSteppedDown,
        to_level=cmd.to_level,
        check_ins_due=tuple(em.now + offset for offset in aftercare.check_in_offsets),
        check_in_window_days=window.days,
        # Exact, for episodes under the current rules (a drill's window is seconds long).
        check_in_window=window if state.rules.current else None,
    )


@rule(c.Discharge, roles=OVERSIGHT)
def discharge(em: Emitter, cmd: c.Discharge) -> None:
    _cancel_future_sessions(em)
    em.emit(ev.EpisodeDischarged, discharge_reason=cmd.discharge_reason, summary=cmd.summary)
