"""`evolve(state, event) -> state`: how each event changes the episode's state.

Pure and total over the event union: replaying any stored stream rebuilds the state
exactly, and nothing here judges whether the event should have happened. One named
function per event type (shared only where two types change the state the same way), so
a traceback from a fold names the event that failed to apply.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from domain import events as ev
from domain.state import (
    Assessment,
    AttendanceWeek,
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
from domain.weeks import cut_short, week_from


def _shift(moment: datetime | None, by: timedelta) -> datetime | None:
    return moment + by if moment is not None else None


def _replace_session(state: EpisodeState, session_id: str, **changes: Any) -> EpisodeState:
    sessions = tuple(
        s.replace(**changes) if s.session_id == session_id else s for s in state.sessions
    )
    return state.replace(sessions=sessions)


def _replace_task(state: EpisodeState, task_id: str, **changes: Any) -> EpisodeState:
    tasks = tuple(t.replace(**changes) if t.task_id == task_id else t for t in state.tasks)
    return state.replace(tasks=tasks)


def _replace_check_in(state: EpisodeState, number: int, **changes: Any) -> EpisodeState:
    check_ins = tuple(c.replace(**changes) if c.number == number else c for c in state.check_ins)
    return state.replace(check_ins=check_ins)


def _unchanged(state: EpisodeState, _e: ev.EventBase) -> EpisodeState:
    """Events that are part of the record but change nothing the decider looks at."""
    return state


# --- intake ---------------------------------------------------------------------------


def _referred(e: ev.ClientReferred) -> EpisodeState:
    return EpisodeState(
        episode_id=e.episode_id,
        version=e.seq,
        program_id=e.program_id,
        client_ref=e.client_ref,
        referral_source=e.referral_source,
        referred_at=e.occurred_at,
        readmission_of=e.readmission_of,
        program_version=e.program_version,
        program_digest=e.program_digest,
    )


def _screening_started(state: EpisodeState, _e: ev.ScreeningStarted) -> EpisodeState:
    return state.replace(stage=Stage.SCREENING)


def _screening_recorded(state: EpisodeState, e: ev.ScreeningRecorded) -> EpisodeState:
    stage = Stage.ASSESSMENT if e.eligible else state.stage
    return state.replace(eligible=e.eligible, stage=stage)


def _referred_out(state: EpisodeState, e: ev.ClientReferredOut) -> EpisodeState:
    return state.replace(stage=Stage.REFERRED_OUT, referred_out_to=e.level_of_care)


def _assessment_recorded(state: EpisodeState, e: ev.AssessmentRecorded) -> EpisodeState:
    assessment = Assessment(
        asam_edition=e.asam_edition,
        asam_ratings=e.asam_ratings,
        diagnoses=e.diagnoses,
        recommended_level=e.recommended_level,
    )
    # A new assessment asks for a new override if it again recommends another level.
    return state.replace(assessment=assessment, level_override=None)


def _level_overridden(state: EpisodeState, e: ev.LevelOfCareOverridden) -> EpisodeState:
    return state.replace(level_override=e.justification)


def _admitted(state: EpisodeState, e: ev.ClientAdmitted) -> EpisodeState:
    return state.replace(
        stage=Stage.TREATMENT_PLANNING,
        admitted_at=e.occurred_at,
        phase_id=e.phase_id,
        plan_due_at=e.plan_due_at,
        rules=e.rules,
        last_contact_at=e.occurred_at,
        next_week_check_at=week_from(e.occurred_at, e.rules),
        phase_started_at=e.occurred_at if e.rules.current else None,
    )


# --- plan, phases, reviews, transitions -------------------------------------------------


def _plan_recorded(state: EpisodeState, e: ev.TreatmentPlanRecorded) -> EpisodeState:
    stage = Stage.IN_PROGRAM if state.stage is Stage.TREATMENT_PLANNING else state.stage
    update: dict[str, Any] = {
        "plan": e.plan,
        "plan_revision": e.revision,
        "stage": stage,
        "review_due_at": e.review_due_at,
    }
    if e.review_due_at != state.review_due_at:
        update.update(review_reminded=False, review_overdue_flagged=False)
    return state.replace(**update)


def _phase_advanced(state: EpisodeState, e: ev.PhaseAdvanced) -> EpisodeState:
    update: dict[str, Any] = {"phase_id": e.to_phase}
    if state.rules.current:
        update["phase_started_at"] = e.occurred_at
    return state.replace(**update)


def _phase_review_due(state: EpisodeState, e: ev.PhaseReviewDue) -> EpisodeState:
    return state.replace(phase_review_sent_for=e.phase_id)


def _review_completed(state: EpisodeState, e: ev.PlanReviewCompleted) -> EpisodeState:
    return state.replace(
        review_due_at=e.next_review_due_at, review_reminded=False, review_overdue_flagged=False
    )


def _put_on_hold(state: EpisodeState, e: ev.EpisodePutOnHold) -> EpisodeState:
    hold = Hold(
        kind=e.kind,
        started_at=e.occurred_at,
        review_due_at=e.review_due_at,
        resume_stage=e.resume_stage,
    )
    return state.replace(stage=Stage.ON_HOLD, hold=hold)


def _resumed(state: EpisodeState, e: ev.EpisodeResumed) -> EpisodeState:
    # Clocks that were paused by the hold restart where they stopped.
    paused = e.occurred_at - e.held_since
    tasks = tuple(t if not t.is_open else t.replace(due_at=t.due_at + paused) for t in state.tasks)
    return state.replace(
        stage=e.stage,
        hold=None,
        tasks=tasks,
        plan_due_at=_shift(state.plan_due_at, paused),
        review_due_at=_shift(state.review_due_at, paused),
        phase_started_at=_shift(state.phase_started_at, paused),
        last_contact_at=e.occurred_at,
        no_contact_review_opened=False,
        attendance_weeks=(
            *state.attendance_weeks,
            *cut_short(state, e.held_since, e.occurred_at),
        ),
        next_week_check_at=week_from(e.occurred_at, state.rules),
    )


def _stepped_up(state: EpisodeState, e: ev.ClientSteppedUp) -> EpisodeState:
    return state.replace(stepped_up_to=e.to_level)


def _relapse_prevention_plan(
    state: EpisodeState, e: ev.RelapsePreventionPlanRecorded
) -> EpisodeState:
    return state.replace(relapse_prevention_plan=e.plan)


def _aftercare_plan(state: EpisodeState, e: ev.AftercarePlanRecorded) -> EpisodeState:
    return state.replace(aftercare_plan=e.plan)


def _stepped_down(state: EpisodeState, e: ev.ClientSteppedDown) -> EpisodeState:
    window = e.check_in_window
    if window is None:
        window = timedelta(days=e.check_in_window_days)
    check_ins = tuple(
        CheckIn(number=i, due_at=due, closes_at=due + window)
        for i, due in enumerate(e.check_ins_due, start=1)
    )
    return state.replace(stage=Stage.AFTERCARE, stepped_down_at=e.occurred_at, check_ins=check_ins)


def _discharged(state: EpisodeState, e: ev.EpisodeDischarged) -> EpisodeState:
    return state.replace(
        stage=Stage.DISCHARGED, discharge_reason=e.discharge_reason, discharge_summary=e.summary
    )


# --- sessions -------------------------------------------------------------------------


def _session_scheduled(state: EpisodeState, e: ev.SessionScheduled) -> EpisodeState:
    session = Session(session_id=e.session_id, kind=e.kind, starts_at=e.starts_at, hours=e.hours)
    return state.replace(sessions=(*state.sessions, session))


def _session_rescheduled(state: EpisodeState, e: ev.SessionRescheduled) -> EpisodeState:
    return _replace_session(state, e.session_id, starts_at=e.starts_at, hours=e.hours)


def _session_cancelled(state: EpisodeState, e: ev.SessionCancelled) -> EpisodeState:
    return _replace_session(state, e.session_id, cancelled=True)


def _attendance(
    state: EpisodeState, e: ev.AttendanceRecorded | ev.AttendanceCorrected
) -> EpisodeState:
    """A record and its correction both set the session's outcome; attendance is contact."""
    state = _replace_session(state, e.session_id, status=e.status, attended_hours=e.hours)
    session = state.session(e.session_id)
    if session is not None and e.status in BILLABLE_ATTENDANCE:
        last = state.last_contact_at
        if last is None or session.starts_at > last:
            state = state.replace(last_contact_at=session.starts_at, no_contact_review_opened=False)
    return state


def _week_checked(state: EpisodeState, e: ev.WeeklyAttendanceChecked) -> EpisodeState:
    week = AttendanceWeek(
        start=e.week_start,
        end=e.week_end,
        attended_hours=e.attended_hours,
        minimum_hours=e.minimum_hours,
        below_minimum=e.below_minimum,
    )
    return state.replace(
        attendance_weeks=(*state.attendance_weeks, week),
        next_week_check_at=week_from(e.week_end, state.rules),
    )


# --- escalation and deadlines ---------------------------------------------------------


def _escalation_raised(state: EpisodeState, e: ev.EscalationRaised) -> EpisodeState:
    task = Task(
        task_id=e.task_id,
        level=e.level,
        kind=e.task_kind,
        opened_at=e.occurred_at,
        due_at=e.due_at,
        notify=e.notify,
    )
    if e.concern is not None:
        task = task.replace(concern=e.concern, escalated_from=e.escalated_from)
    update: dict[str, Any] = {"tasks": (*state.tasks, task)}
    if e.trigger is EscalationTrigger.NO_CONTACT:
        update["no_contact_review_opened"] = True
    return state.replace(**update)


def _task_overdue(state: EpisodeState, e: ev.EscalationTaskOverdue) -> EpisodeState:
    return _replace_task(state, e.task_id, overdue=True)


def _task_superseded(state: EpisodeState, e: ev.EscalationTaskSuperseded) -> EpisodeState:
    return _replace_task(state, e.task_id, superseded_by=e.superseded_by)


def _task_resolved(state: EpisodeState, e: ev.TaskResolved) -> EpisodeState:
    return _replace_task(state, e.task_id, resolved=True)


def _initial_plan_overdue(state: EpisodeState, _e: ev.InitialPlanOverdue) -> EpisodeState:
    return state.replace(initial_plan_overdue_flagged=True)


def _review_due_soon(state: EpisodeState, _e: ev.PlanReviewDueSoon) -> EpisodeState:
    return state.replace(review_reminded=True)


def _review_overdue(state: EpisodeState, _e: ev.PlanReviewOverdue) -> EpisodeState:
    # Once overdue, a reminder that the review is coming would be too late.
    return state.replace(review_overdue_flagged=True, review_reminded=True)


def _hold_review_overdue(state: EpisodeState, _e: ev.HoldReviewOverdue) -> EpisodeState:
    hold = state.hold.replace(review_flagged=True) if state.hold else None
    return state.replace(hold=hold)


# --- aftercare ------------------------------------------------------------------------


def _check_in_completed(state: EpisodeState, e: ev.CheckInCompleted) -> EpisodeState:
    return _replace_check_in(state, e.check_in, completed=True)


def _check_in_missed(state: EpisodeState, e: ev.CheckInMissed) -> EpisodeState:
    return _replace_check_in(state, e.check_in, missed=True)


def _relapse_reported(state: EpisodeState, _e: ev.RelapseReported) -> EpisodeState:
    return state.replace(relapse_reported=True)


def _readmitted(state: EpisodeState, e: ev.ClientReadmitted) -> EpisodeState:
    return state.replace(readmitted_as=e.new_episode_id)


# --- consent and payer authorization ---------------------------------------------------


def _consent_recorded(state: EpisodeState, e: ev.ConsentRecorded) -> EpisodeState:
    consent = Consent(
        consent_id=e.consent_id,
        recipient_ref=e.recipient_ref,
        recipient_kind=e.recipient_kind,
        scopes=e.scopes,
        expires_at=e.expires_at,
    )
    return state.replace(consents=(*state.consents, consent))


def _consent_revoked(state: EpisodeState, e: ev.ConsentRevoked) -> EpisodeState:
    consents = tuple(
        c.replace(revoked=True) if c.consent_id == e.consent_id else c for c in state.consents
    )
    return state.replace(consents=consents)


def _authorization_recorded(state: EpisodeState, e: ev.AuthorizationRecorded) -> EpisodeState:
    authorization = Authorization(
        authorization_id=e.authorization_id,
        payer_ref=e.payer_ref,
        level_of_care=e.level_of_care,
        units=e.units,
        starts_at=e.starts_at,
        ends_at=e.ends_at,
        remind_at=e.remind_at,
    )
    return state.replace(authorizations=(*state.authorizations, authorization))


def _authorization_expiring(state: EpisodeState, e: ev.AuthorizationExpiring) -> EpisodeState:
    authorizations = tuple(
        a.replace(reminded=True) if a.authorization_id == e.authorization_id else a
        for a in state.authorizations
    )
    return state.replace(authorizations=authorizations)


def _program_migrated(state: EpisodeState, e: ev.ProgramMigrated) -> EpisodeState:
    changes: dict[str, Any] = {"program_version": e.to_version, "program_digest": e.to_digest}
    if e.rules is not None:
        changes["rules"] = e.rules
    return state.replace(**changes)


Evolver = Callable[[EpisodeState, Any], EpisodeState]

# Every event type but the referral, which starts the state instead of changing it.
_EVOLVERS: dict[type[ev.EventBase], Evolver] = {
    ev.ScreeningStarted: _screening_started,
    ev.ScreeningRecorded: _screening_recorded,
    ev.ClientReferredOut: _referred_out,
    ev.AssessmentRecorded: _assessment_recorded,
    ev.LevelOfCareOverridden: _level_overridden,
    ev.ClientAdmitted: _admitted,
    ev.TreatmentPlanRecorded: _plan_recorded,
    ev.PhaseAdvanced: _phase_advanced,
    ev.PlanReviewCompleted: _review_completed,
    ev.EpisodePutOnHold: _put_on_hold,
    ev.EpisodeResumed: _resumed,
    ev.ClientSteppedUp: _stepped_up,
    ev.RelapsePreventionPlanRecorded: _relapse_prevention_plan,
    ev.AftercarePlanRecorded: _aftercare_plan,
    ev.ClientSteppedDown: _stepped_down,
    ev.EpisodeDischarged: _discharged,
    ev.SessionScheduled: _session_scheduled,
    ev.SessionRescheduled: _session_rescheduled,
    ev.SessionCancelled: _session_cancelled,
    ev.AttendanceRecorded: _attendance,
    ev.AttendanceCorrected: _attendance,
    ev.SessionBeyondAuthorization: _unchanged,
    ev.WeeklyAttendanceChecked: _week_checked,
    ev.EscalationRaised: _escalation_raised,
    ev.EscalationTaskOverdue: _task_overdue,
    ev.EscalationTaskSuperseded: _task_superseded,
    ev.TaskResolved: _task_resolved,
    ev.InitialPlanOverdue: _initial_plan_overdue,
    ev.PlanReviewDueSoon: _review_due_soon,
    ev.PlanReviewOverdue: _review_overdue,
    ev.HoldReviewOverdue: _hold_review_overdue,
    ev.CheckInCompleted: _check_in_completed,
    ev.CheckInMissed: _check_in_missed,
    ev.RelapseReported: _relapse_reported,
    ev.ClientReadmitted: _readmitted,
    ev.ConsentRecorded: _consent_recorded,
    ev.ConsentRevoked: _consent_revoked,
    ev.PartyNotified: _unchanged,
    ev.AuthorizationRecorded: _authorization_recorded,
    ev.AuthorizationExpiring: _authorization_expiring,
    ev.PhaseReviewDue: _phase_review_due,
    ev.ProgramMigrated: _program_migrated,
}


def evolve_event(state: EpisodeState | None, event: ev.EventBase) -> EpisodeState:
    """Apply one event to the state (the implementation behind `decider.evolve`)."""
    if isinstance(event, ev.ClientReferred):
        if state is not None:
            raise ValueError(f"episode {state.episode_id} already started: stream is corrupt")
        return _referred(event)
    if state is None:
        raise ValueError(f"{type(event).__name__} before the referral: stream is corrupt")
    evolved = _EVOLVERS[type(event)](state, event)
    if evolved is state:
        return state.replace(version=event.seq)
    # Every other evolver returns a state it has just made, that nothing else holds yet:
    # it takes the event's seq there, rather than in a second copy of all its fields.
    return evolved.stamped(event.seq)
