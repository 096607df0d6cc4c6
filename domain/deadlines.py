"""Deadlines are data: one table of deadline rules says, for every kind of deadline, when
it falls due for a state and what its passing means.

Everything that asks about time reads the same table, so none of them can disagree:
`next_deadline(state)` (the workflow's one timer), `pending_deadlines(state)` (what staff
and auditors see) and the `Tick` decision (`domain.ticks`). A new kind of deadline is a
row of `DEADLINE_RULES` and its two functions below, nothing else.

The table's order is the order in which a tick handles what is due, and recorded
histories depend on it: a no-show's escalation is judged against the tasks as they were
before overdue ones climbed the ladder, and the review reminder comes after the overdue
review, so a very late tick flags the review without reminding of it. While the episode
is on hold, absence timers are paused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from domain import events as ev
from domain.emitter import Emitter
from domain.escalation import (
    after_no_show,
    concern_of,
    no_contact,
    open_task_for,
    raise_task,
    task_overdue,
)
from domain.state import TREATMENT_STAGES, Authorization, CheckIn, EpisodeState, Session, Task
from domain.vocabulary import AttendanceStatus, EscalationTrigger, Stage, TaskKind
from domain.weeks import tally, week_ending

S = TypeVar("S")


@dataclass(frozen=True)
class Due(Generic[S]):
    """One moment a rule falls due, with what it is about (`subject`, `ref`), if anything."""

    at: datetime
    subject: S
    ref: str | None = None


@dataclass(frozen=True)
class DeadlineRule(Generic[S]):
    """A kind of deadline: when it is due for a state, and what its passing means.

    `earliest`, where given, is the first moment `due` would list, worked out without
    listing them (`min(d.at for d in due(state))`, None when it lists nothing): the
    workflow asks for the next deadline after every change, and listing the no-shows of
    a program's worth of waiting sessions sorts them and builds a `Due` for each.
    """

    kind: str
    due: Callable[[EpisodeState], Iterable[Due[S]]]
    fire: Callable[[Emitter, Due[S]], None]
    earliest: Callable[[EpisodeState], datetime | None] | None = None

    def first_at(self, state: EpisodeState) -> datetime | None:
        """When this rule next falls due for an open episode's state, if ever."""
        if self.earliest is not None:
            return self.earliest(state)
        return min((due.at for due in self.due(state)), default=None)


def _once(at: datetime | None) -> tuple[Due[None], ...]:
    return (Due(at, None),) if at is not None else ()


# --- session_no_show: a session with no attendance by its end plus the grace period ----


def _pending_sessions(state: EpisodeState) -> tuple[Session, ...]:
    """Sessions waiting for attendance, in start order, while absences are watched."""
    return tuple(sorted(_waiting_sessions(state), key=lambda s: (s.starts_at, s.session_id)))


def _waiting_sessions(state: EpisodeState) -> Iterable[Session]:
    """Sessions waiting for attendance, in the state's order, while absences are watched."""
    if state.stage not in TREATMENT_STAGES:
        return ()
    return (s for s in state.sessions if not s.cancelled and s.status is None)


def _no_shows_due(state: EpisodeState) -> Iterable[Due[Session]]:
    grace = state.rules.grace
    return (Due(s.ends_at + grace, s, s.session_id) for s in _pending_sessions(state))


def _first_no_show(state: EpisodeState) -> datetime | None:
    first: datetime | None = None
    for s in _waiting_sessions(state):
        if first is not None and s.starts_at >= first and s.hours >= 0:
            continue  # it cannot end before the earliest end found so far
        ends = s.ends_at
        if first is None or ends < first:
            first = ends
    return None if first is None else first + state.rules.grace


def _record_no_show(em: Emitter, due: Due[Session]) -> None:
    session_id = due.subject.session_id
    em.emit(
        ev.AttendanceRecorded, session_id=session_id, status=AttendanceStatus.NO_SHOW, hours=0.0
    )
    after_no_show(em, session_id)


# --- task_due: an open escalation task past its due time (paused on hold) --------------


def _tasks_due(state: EpisodeState) -> Iterable[Due[Task]]:
    if state.stage is Stage.ON_HOLD:
        return ()
    return (Due(t.due_at, t, t.task_id) for t in state.tasks if t.is_open and not t.overdue)


def _escalate_overdue_task(em: Emitter, due: Due[Task]) -> None:
    task_overdue(em, due.subject)


# --- no_contact_review: days in treatment without an attended session ----------------


def _no_contact_due(state: EpisodeState) -> tuple[Due[None], ...]:
    if state.stage not in TREATMENT_STAGES or state.no_contact_review_opened:
        return ()
    if state.last_contact_at is None:  # pragma: no cover - admission sets it
        return ()
    if state.rules.current and open_task_for(state, concern_of(EscalationTrigger.NO_CONTACT)):
        # The review of lost contact is still open: another would duplicate it. Once it
        # is closed, a client still out of contact for the period gets a new one.
        return ()
    return _once(state.last_contact_at + state.rules.no_contact_after)


def _open_no_contact_review(em: Emitter, _due: Due[None]) -> None:
    no_contact(em)


# --- weekly_hours_check: the end of a week of attendance (`domain.weeks`) ---------------


def _week_check_due(state: EpisodeState) -> tuple[Due[None], ...]:
    return _once(state.next_week_check_at if state.stage in TREATMENT_STAGES else None)


def _check_week(em: Emitter, due: Due[None]) -> None:
    """Judge the week that ended: record its hours against the program's minimum and,
    under the current rules, open an intensity review for the primary clinician when it
    fell short.

    Every judged week counts, the first one and one with nothing scheduled included: the
    check only runs in treatment stages, where attendance is expected, and a week without
    a single session is a gap in care the clinic wants to hear of. A week a hold cut
    short is never judged.
    """
    start, end = week_ending(due.at, em.state.rules)
    hours = tally(em.state.sessions, start, end).hours
    minimum = em.program.intensity.min_weekly_hours
    checked = em.emit(
        ev.WeeklyAttendanceChecked,
        week_start=start,
        week_end=end,
        attended_hours=hours,
        minimum_hours=minimum,
        below_minimum=hours < minimum,
    )
    if checked.below_minimum and em.state.rules.current:
        raise_task(
            em,
            em.program.escalation.below_intensity_level,
            EscalationTrigger.BELOW_INTENSITY,
            kind=TaskKind.INTENSITY_REVIEW,
        )


# --- initial_plan_due: no treatment plan by the program's deadline ---------------------


def _initial_plan_due(state: EpisodeState) -> tuple[Due[None], ...]:
    if state.stage is not Stage.TREATMENT_PLANNING or state.initial_plan_overdue_flagged:
        return ()
    return _once(state.plan_due_at)


def _flag_initial_plan(em: Emitter, due: Due[None]) -> None:
    em.emit(ev.InitialPlanOverdue, plan_due_at=due.at)


# --- plan_review_overdue and plan_review_reminder ------------------------------------


def _review_due_at(state: EpisodeState) -> datetime | None:
    """When the plan review is due, while it is due and not yet flagged overdue."""
    if state.stage is not Stage.IN_PROGRAM or state.review_overdue_flagged:
        return None
    return state.review_due_at


def _review_overdue_due(state: EpisodeState) -> tuple[Due[None], ...]:
    return _once(_review_due_at(state))


def _flag_review_overdue(em: Emitter, due: Due[None]) -> None:
    em.emit(ev.PlanReviewOverdue, review_due_at=due.at)


def _review_reminder_due(state: EpisodeState) -> tuple[Due[None], ...]:
    review_due = _review_due_at(state)
    reminder = state.rules.reminder_before_review
    if review_due is None or state.review_reminded or not reminder:
        return ()
    return _once(review_due - reminder)


def _remind_of_review(em: Emitter, _due: Due[None]) -> None:
    em.emit(ev.PlanReviewDueSoon, review_due_at=em.state.review_due_at)


# --- hold_review_due: a hold not reviewed by its review date --------------------------


def _hold_review_due(state: EpisodeState) -> tuple[Due[None], ...]:
    hold = state.hold
    if state.stage is not Stage.ON_HOLD or hold is None or hold.review_flagged:
        return ()
    return _once(hold.review_due_at)


def _flag_hold_review(em: Emitter, due: Due[None]) -> None:
    em.emit(ev.HoldReviewOverdue, review_due_at=due.at)


# --- check_in_closes: an aftercare check-in whose window closed without it ------------


def _check_ins_due(state: EpisodeState) -> Iterable[Due[CheckIn]]:
    if state.stage is not Stage.AFTERCARE:
        return ()
    open_check_ins = (ci for ci in state.check_ins if not ci.completed and not ci.missed)
    return (Due(ci.closes_at, ci, f"check-in-{ci.number}") for ci in open_check_ins)


def _miss_check_in(em: Emitter, due: Due[CheckIn]) -> None:
    check_in = due.subject
    em.emit(ev.CheckInMissed, check_in=check_in.number, due_at=check_in.due_at)
    raise_task(
        em,
        em.program.aftercare.outreach_level,
        EscalationTrigger.CHECK_IN_MISSED,
        kind=TaskKind.AFTERCARE_OUTREACH,
    )


# --- authorization_reminder: a payer authorization nearing its end --------------------


def _reminders_due(state: EpisodeState) -> Iterable[Due[Authorization]]:
    waiting = (a for a in state.authorizations if not a.reminded)
    return (Due(a.remind_at, a, a.authorization_id) for a in waiting)


def _remind_of_expiry(em: Emitter, due: Due[Authorization]) -> None:
    authorization = due.subject
    em.emit(
        ev.AuthorizationExpiring,
        authorization_id=authorization.authorization_id,
        ends_at=authorization.ends_at,
    )


# --- phase_review_due: a phase's planned duration is up (current rules only) -----------


def phase_planned_end(state: EpisodeState) -> datetime | None:
    """When the current phase's planned duration is up, under the current rules."""
    durations = state.rules.phase_durations
    started = state.phase_started_at
    if not state.rules.current or durations is None or started is None:
        return None
    duration = durations.get(state.phase_id or "")
    return started + duration if duration is not None else None


def _phase_review_due(state: EpisodeState) -> tuple[Due[None], ...]:
    if state.stage not in TREATMENT_STAGES or state.phase_review_sent_for == state.phase_id:
        return ()
    return _once(phase_planned_end(state))


def _remind_of_phase_review(em: Emitter, due: Due[None]) -> None:
    em.emit(ev.PhaseReviewDue, phase_id=em.state.phase_id, planned_end=due.at)


# --- the table ------------------------------------------------------------------------

DEADLINE_RULES: tuple[DeadlineRule[Any], ...] = (
    DeadlineRule("session_no_show", _no_shows_due, _record_no_show, _first_no_show),
    DeadlineRule("task_due", _tasks_due, _escalate_overdue_task),
    DeadlineRule("no_contact_review", _no_contact_due, _open_no_contact_review),
    DeadlineRule("weekly_hours_check", _week_check_due, _check_week),
    DeadlineRule("initial_plan_due", _initial_plan_due, _flag_initial_plan),
    DeadlineRule("plan_review_overdue", _review_overdue_due, _flag_review_overdue),
    DeadlineRule("plan_review_reminder", _review_reminder_due, _remind_of_review),
    DeadlineRule("hold_review_due", _hold_review_due, _flag_hold_review),
    DeadlineRule("check_in_closes", _check_ins_due, _miss_check_in),
    DeadlineRule("authorization_reminder", _reminders_due, _remind_of_expiry),
    DeadlineRule("phase_review_due", _phase_review_due, _remind_of_phase_review),
)


def due_items(deadline_rule: DeadlineRule[S], state: EpisodeState) -> tuple[Due[S], ...]:
    """What a rule has pending for `state`, due or not yet; nothing once the episode closed."""
    return () if state.is_closed else tuple(deadline_rule.due(state))


PendingItem = tuple[str, datetime, str | None]


def pending_deadlines(state: EpisodeState | None) -> tuple[PendingItem, ...]:
    """Every pending deadline as (kind, due at, reference), earliest first."""
    if state is None:
        return ()
    items = [
        (deadline_rule.kind, due.at, due.ref)
        for deadline_rule in DEADLINE_RULES
        for due in due_items(deadline_rule, state)
    ]
    return tuple(sorted(items, key=lambda item: (item[1], item[0])))


def next_deadline(state: EpisodeState | None) -> datetime | None:
    """The next moment something is due for this episode, or None if nothing is: the
    first of `pending_deadlines(state)`, without listing them."""
    if state is None or state.is_closed:
        return None
    moments = (deadline_rule.first_at(state) for deadline_rule in DEADLINE_RULES)
    return min((at for at in moments if at is not None), default=None)


class _Unset(Enum):
    """`visibility` was not given the next deadline (None is one: nothing is due)."""

    UNSET = "unset"


def visibility(
    state: EpisodeState, next_at: datetime | Literal[_Unset.UNSET] | None = _Unset.UNSET
) -> dict[str, Any]:
    """The values of the workflow's search attributes for this episode; `next_at` is its
    `next_deadline(state)` when the caller already has it."""
    return {
        "stage": state.stage.value,
        "program_id": state.program_id,
        "primary_clinician": state.primary_clinician,
        "escalation_level": state.escalation_level,
        "next_deadline": next_deadline(state) if next_at is _Unset.UNSET else next_at,
    }
