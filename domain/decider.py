"""The decider: `decide(state, command, ctx) -> events` and `evolve(state, event) -> state`.

Pure functions. The state of any moment is the fold of the events up to it. `decide`
checks the actor's role, that the episode exists and is open, then hands the command to
the rules of its area (intake, plan, sessions, escalation, aftercare, consent, time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from domain import commands as c
from domain import decide_aftercare as aftercare
from domain import decide_consent as consent
from domain import decide_intake as intake
from domain import decide_plan as plan
from domain import decide_sessions as sessions
from domain.emitter import DecisionContext, Emitter
from domain.errors import EpisodeAlreadyStarted, EpisodeClosed, EpisodeNotStarted
from domain.escalation import resolve_task
from domain.events import Event
from domain.evolution import evolve_event
from domain.roles import check_allowed
from domain.state import EpisodeState
from domain.ticks import tick

__all__ = ["DecisionContext", "decide", "evolve", "fold"]

_RULES: dict[type[c.CommandBase], Callable[[Emitter, Any], None]] = {
    c.StartScreening: intake.start_screening,
    c.RecordScreening: intake.record_screening,
    c.ReferOut: intake.refer_out,
    c.RecordAssessment: intake.record_assessment,
    c.OverrideLevelOfCare: intake.override_level_of_care,
    c.AdmitClient: intake.admit_client,
    c.RecordTreatmentPlan: plan.record_treatment_plan,
    c.AdvancePhase: plan.advance_phase,
    c.CompletePlanReview: plan.complete_plan_review,
    c.PlaceOnHold: plan.place_on_hold,
    c.ResumeFromHold: plan.resume_from_hold,
    c.StepUp: plan.step_up,
    c.RecordRelapsePreventionPlan: plan.record_relapse_prevention_plan,
    c.RecordAftercarePlan: plan.record_aftercare_plan,
    c.StepDown: plan.step_down,
    c.Discharge: plan.discharge,
    c.ScheduleSession: sessions.schedule_session,
    c.RescheduleSession: sessions.reschedule_session,
    c.CancelSession: sessions.cancel_session,
    c.RecordAttendance: sessions.record_attendance,
    c.CorrectAttendance: sessions.correct_attendance,
    c.ResolveTask: resolve_task,
    c.RecordCheckIn: aftercare.record_check_in,
    c.ReportRelapse: aftercare.report_relapse,
    c.ReadmitClient: aftercare.readmit_client,
    c.RecordConsent: consent.record_consent,
    c.RevokeConsent: consent.revoke_consent,
    c.NotifyParty: consent.notify_party,
    c.RecordAuthorization: consent.record_authorization,
}


def decide(
    state: EpisodeState | None, command: c.Command, ctx: DecisionContext
) -> tuple[Event, ...]:
    """Judge a command against the current state; return the events it produces or raise.

    Raises a `CarePathError` subclass for every refusal; nothing is emitted then.
    """
    check_allowed(command.type, command.actor)
    if state is None:
        if not isinstance(command, c.ReferClient):
            raise EpisodeNotStarted(
                f"episode {ctx.episode_id} does not exist yet: refer the client first"
            )
        ctx.programs.get(command.program_id)
        em = Emitter(None, command, ctx)
        intake.refer_client(em, command)
        return tuple(em.events)
    if state.is_closed:
        raise EpisodeClosed(
            f"episode {state.episode_id} is {state.stage.value}: no further changes are accepted; "
            "refer the client again to open a new episode"
        )
    if isinstance(command, c.ReferClient):
        raise EpisodeAlreadyStarted(
            f"episode {state.episode_id} already exists: use a new episode id for a new referral"
        )
    if isinstance(command, c.Tick):
        em = Emitter(state, command, ctx, now=command.now)
        tick(em)
        return tuple(em.events)
    em = Emitter(state, command, ctx)
    _RULES[type(command)](em, command)
    return tuple(em.events)


def evolve(state: EpisodeState | None, event: Event) -> EpisodeState:
    """Apply one event to the state."""
    return evolve_event(state, event)


def fold(events: Iterable[Event], state: EpisodeState | None = None) -> EpisodeState | None:
    """The state after applying every event in order."""
    for event in events:
        state = evolve(state, event)
    return state
