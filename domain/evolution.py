"""`evolve(state, event) -> state`: how each event changes the episode's state.

Pure and total over the event union: replaying any stored stream rebuilds the state
exactly, and nothing here judges whether the event should have happened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from domain import events as ev
from domain.state import (
    Assessment,
    Authorization,
    CheckIn,
    Consent,
    EpisodeState,
    Hold,
    Session,
    Stage,
    Task,
)
from domain.vocabulary import BILLABLE_ATTENDANCE, EscalationTrigger

WEEK = timedelta(days=7)


def _shift(moment: datetime | None, by: timedelta) -> datetime | None:
    return moment + by if moment is not None else None


def _replace_session(state: EpisodeState, session_id: str, **changes: Any) -> EpisodeState:
    sessions = tuple(
        s.model_copy(update=changes) if s.session_id == session_id else s for s in state.sessions
    )
    return state.model_copy(update={"sessions": sessions})


def _replace_task(state: EpisodeState, task_id: str, **changes: Any) -> EpisodeState:
    tasks = tuple(t.model_copy(update=changes) if t.task_id == task_id else t for t in state.tasks)
    return state.model_copy(update={"tasks": tasks})


def _attendance(
    state: EpisodeState, e: ev.AttendanceRecorded | ev.AttendanceCorrected
) -> EpisodeState:
    state = _replace_session(state, e.session_id, status=e.status, attended_hours=e.hours)
    session = state.session(e.session_id)
    if session is not None and e.status in BILLABLE_ATTENDANCE:
        last = state.last_contact_at
        if last is None or session.starts_at > last:
            state = state.model_copy(
                update={"last_contact_at": session.starts_at, "no_contact_review_opened": False}
            )
    return state


def _resumed(state: EpisodeState, e: ev.EpisodeResumed) -> EpisodeState:
    # Clocks that were paused by the hold restart where they stopped.
    paused = e.occurred_at - e.held_since
    tasks = tuple(
        t if t.resolved else t.model_copy(update={"due_at": t.due_at + paused}) for t in state.tasks
    )
    return state.model_copy(
        update={
            "stage": e.stage,
            "hold": None,
            "tasks": tasks,
            "plan_due_at": _shift(state.plan_due_at, paused),
            "review_due_at": _shift(state.review_due_at, paused),
            "last_contact_at": e.occurred_at,
            "no_contact_review_opened": False,
            "next_week_check_at": e.occurred_at + WEEK,
        }
    )


def _escalation(state: EpisodeState, e: ev.EscalationRaised) -> EpisodeState:
    task = Task(
        task_id=e.task_id,
        level=e.level,
        kind=e.task_kind,
        opened_at=e.occurred_at,
        due_at=e.due_at,
        notify=e.notify,
    )
    update: dict[str, Any] = {"tasks": (*state.tasks, task)}
    if e.trigger is EscalationTrigger.NO_CONTACT:
        update["no_contact_review_opened"] = True
    return state.model_copy(update=update)


def _stepped_down(state: EpisodeState, e: ev.ClientSteppedDown) -> EpisodeState:
    window = timedelta(days=e.check_in_window_days)
    check_ins = tuple(
        CheckIn(number=i, due_at=due, closes_at=due + window)
        for i, due in enumerate(e.check_ins_due, start=1)
    )
    return state.model_copy(
        update={"stage": Stage.AFTERCARE, "stepped_down_at": e.occurred_at, "check_ins": check_ins}
    )


def _check_in(state: EpisodeState, number: int, **changes: Any) -> EpisodeState:
    check_ins = tuple(
        c.model_copy(update=changes) if c.number == number else c for c in state.check_ins
    )
    return state.model_copy(update={"check_ins": check_ins})


def _plan(state: EpisodeState, e: ev.TreatmentPlanRecorded) -> EpisodeState:
    stage = Stage.IN_PROGRAM if state.stage is Stage.TREATMENT_PLANNING else state.stage
    update: dict[str, Any] = {
        "plan": e.plan,
        "plan_revision": e.revision,
        "stage": stage,
        "review_due_at": e.review_due_at,
    }
    if e.review_due_at != state.review_due_at:
        update.update(review_reminded=False, review_overdue_flagged=False)
    return state.model_copy(update=update)


def _referred(e: ev.ClientReferred) -> EpisodeState:
    return EpisodeState(
        episode_id=e.episode_id,
        version=e.seq,
        program_id=e.program_id,
        client_ref=e.client_ref,
        referral_source=e.referral_source,
        referred_at=e.occurred_at,
        readmission_of=e.readmission_of,
    )


def _simple(**update: Any) -> Callable[[EpisodeState, Any], EpisodeState]:
    return lambda state, _e: state.model_copy(update=update)


def _set(field: str, attribute: str) -> Callable[[EpisodeState, Any], EpisodeState]:
    return lambda state, e: state.model_copy(update={field: getattr(e, attribute)})


_HANDLERS: dict[type[ev.EventBase], Callable[[EpisodeState, Any], EpisodeState]] = {
    ev.ScreeningStarted: _simple(stage=Stage.SCREENING),
    ev.ScreeningRecorded: lambda s, e: s.model_copy(
        update={"eligible": e.eligible, "stage": Stage.ASSESSMENT if e.eligible else s.stage}
    ),
    ev.ClientReferredOut: lambda s, e: s.model_copy(
        update={"stage": Stage.REFERRED_OUT, "referred_out_to": e.level_of_care}
    ),
    ev.AssessmentRecorded: lambda s, e: s.model_copy(
        update={
            "assessment": Assessment(
                asam_edition=e.asam_edition,
                asam_ratings=e.asam_ratings,
                diagnoses=e.diagnoses,
                recommended_level=e.recommended_level,
            ),
            "level_override": None,
        }
    ),
    ev.LevelOfCareOverridden: _set("level_override", "justification"),
    ev.ClientAdmitted: lambda s, e: s.model_copy(
        update={
            "stage": Stage.TREATMENT_PLANNING,
            "admitted_at": e.occurred_at,
            "phase_id": e.phase_id,
            "plan_due_at": e.plan_due_at,
            "rules": e.rules,
            "last_contact_at": e.occurred_at,
            "next_week_check_at": e.occurred_at + WEEK,
        }
    ),
    ev.TreatmentPlanRecorded: _plan,
    ev.PhaseAdvanced: _set("phase_id", "to_phase"),
    ev.PlanReviewCompleted: lambda s, e: s.model_copy(
        update={
            "review_due_at": e.next_review_due_at,
            "review_reminded": False,
            "review_overdue_flagged": False,
        }
    ),
    ev.EpisodePutOnHold: lambda s, e: s.model_copy(
        update={
            "stage": Stage.ON_HOLD,
            "hold": Hold(
                kind=e.kind,
                started_at=e.occurred_at,
                review_due_at=e.review_due_at,
                resume_stage=e.resume_stage,
            ),
        }
    ),
    ev.EpisodeResumed: _resumed,
    ev.ClientSteppedUp: _set("stepped_up_to", "to_level"),
    ev.RelapsePreventionPlanRecorded: _set("relapse_prevention_plan", "plan"),
    ev.AftercarePlanRecorded: _set("aftercare_plan", "plan"),
    ev.ClientSteppedDown: _stepped_down,
    ev.EpisodeDischarged: lambda s, e: s.model_copy(
        update={
            "stage": Stage.DISCHARGED,
            "discharge_reason": e.discharge_reason,
            "discharge_summary": e.summary,
        }
    ),
    ev.SessionScheduled: lambda s, e: s.model_copy(
        update={
            "sessions": (
                *s.sessions,
                Session(session_id=e.session_id, kind=e.kind, starts_at=e.starts_at, hours=e.hours),
            )
        }
    ),
    ev.SessionRescheduled: lambda s, e: _replace_session(
        s, e.session_id, starts_at=e.starts_at, hours=e.hours
    ),
    ev.SessionCancelled: lambda s, e: _replace_session(s, e.session_id, cancelled=True),
    ev.AttendanceRecorded: _attendance,
    ev.AttendanceCorrected: _attendance,
    ev.SessionBeyondAuthorization: lambda s, _e: s,
    ev.WeeklyAttendanceChecked: lambda s, e: s.model_copy(
        update={"next_week_check_at": e.week_end + WEEK}
    ),
    ev.EscalationRaised: _escalation,
    ev.EscalationTaskOverdue: lambda s, e: _replace_task(s, e.task_id, overdue=True),
    ev.TaskResolved: lambda s, e: _replace_task(s, e.task_id, resolved=True),
    ev.InitialPlanOverdue: _simple(initial_plan_overdue_flagged=True),
    ev.PlanReviewDueSoon: _simple(review_reminded=True),
    ev.PlanReviewOverdue: _simple(review_overdue_flagged=True, review_reminded=True),
    ev.HoldReviewOverdue: lambda s, _e: s.model_copy(
        update={"hold": s.hold.model_copy(update={"review_flagged": True}) if s.hold else None}
    ),
    ev.CheckInCompleted: lambda s, e: _check_in(s, e.check_in, completed=True),
    ev.CheckInMissed: lambda s, e: _check_in(s, e.check_in, missed=True),
    ev.RelapseReported: _simple(relapse_reported=True),
    ev.ClientReadmitted: _set("readmitted_as", "new_episode_id"),
    ev.ConsentRecorded: lambda s, e: s.model_copy(
        update={
            "consents": (
                *s.consents,
                Consent(
                    consent_id=e.consent_id,
                    recipient_ref=e.recipient_ref,
                    recipient_kind=e.recipient_kind,
                    scopes=e.scopes,
                    expires_at=e.expires_at,
                ),
            )
        }
    ),
    ev.ConsentRevoked: lambda s, e: s.model_copy(
        update={
            "consents": tuple(
                c.model_copy(update={"revoked": True}) if c.consent_id == e.consent_id else c
                for c in s.consents
            )
        }
    ),
    ev.PartyNotified: lambda s, _e: s,
    ev.AuthorizationRecorded: lambda s, e: s.model_copy(
        update={
            "authorizations": (
                *s.authorizations,
                Authorization(
                    authorization_id=e.authorization_id,
                    payer_ref=e.payer_ref,
                    level_of_care=e.level_of_care,
                    units=e.units,
                    starts_at=e.starts_at,
                    ends_at=e.ends_at,
                    remind_at=e.remind_at,
                ),
            )
        }
    ),
    ev.AuthorizationExpiring: lambda s, e: s.model_copy(
        update={
            "authorizations": tuple(
                a.model_copy(update={"reminded": True})
                if a.authorization_id == e.authorization_id
                else a
                for a in s.authorizations
            )
        }
    ),
}


def evolve_event(state: EpisodeState | None, event: ev.EventBase) -> EpisodeState:
    """Apply one event to the state (the implementation behind `decider.evolve`)."""
    if isinstance(event, ev.ClientReferred):
        if state is not None:
            raise ValueError(f"episode {state.episode_id} already started: stream is corrupt")
        return _referred(event)
    if state is None:
        raise ValueError(f"{type(event).__name__} before the referral: stream is corrupt")
    handler = _HANDLERS[type(event)]
    return handler(state, event).model_copy(update={"version": event.seq})
