"""Decisions in aftercare: check-ins, a reported relapse, readmission as a new episode."""

from __future__ import annotations

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    CheckInAlreadyCompleted,
    CheckInOutsideWindow,
    InvalidCommand,
    ReassessmentOpen,
    RelapseNotReported,
    UnknownReference,
)
from domain.escalation import raise_task
from domain.local_text import local_time
from domain.roles import CLINICAL, FRONT_DESK, OVERSIGHT
from domain.rules import rule
from domain.state import CheckIn, Stage
from domain.vocabulary import DischargeReason, EscalationTrigger, TaskKind


@rule(c.RecordCheckIn, roles=FRONT_DESK)
def record_check_in(em: Emitter, cmd: c.RecordCheckIn) -> None:
    em.require_stage({Stage.AFTERCARE}, "record an aftercare check-in")
    check_in = next((ci for ci in em.state.check_ins if ci.number == cmd.check_in), None)
    if check_in is None:
        raise UnknownReference(
            f"the program has {len(em.state.check_ins)} aftercare check-ins: "
            f"choose a number from 1 to {len(em.state.check_ins)}"
        )
    if check_in.completed:
        raise CheckInAlreadyCompleted(
            f"check-in {cmd.check_in} is already completed: record the next one"
        )
    reason = _outside_window_reason(em, check_in, cmd.reason)
    if reason is None:
        em.emit(ev.CheckInCompleted, check_in=cmd.check_in)
    else:
        em.emit(ev.CheckInCompleted, check_in=cmd.check_in, outside_window_reason=reason)


def _outside_window_reason(em: Emitter, check_in: CheckIn, reason: str | None) -> str | None:
    """Under the current rules, the reason a check-in outside its window (due time, give
    or take the program's check-in window) needs; None for one within it."""
    if not em.state.rules.current:
        return None
    window = check_in.closes_at - check_in.due_at
    opens_at = check_in.due_at - window
    if opens_at <= em.now <= check_in.closes_at:
        return None
    if not reason:
        zone = em.state.rules.zone
        when = "early" if em.now < opens_at else "late"
        raise CheckInOutsideWindow(
            f"check-in {check_in.number} is due {local_time(check_in.due_at, zone)} and may "
            f"be recorded from {local_time(opens_at, zone)} to "
            f"{local_time(check_in.closes_at, zone)}: it is {when}; record it within its "
            "window, or give the reason it is recorded outside it"
        )
    return reason


@rule(c.ReportRelapse, roles=FRONT_DESK)
def report_relapse(em: Emitter, cmd: c.ReportRelapse) -> None:
    em.require_stage({Stage.AFTERCARE}, "report a relapse")
    aftercare = em.program.aftercare
    em.emit(ev.RelapseReported)
    raise_task(
        em,
        aftercare.reassessment_level,
        EscalationTrigger.RELAPSE_REPORTED,
        kind=TaskKind.REASSESSMENT,
        due=aftercare.reassessment_due,
    )


@rule(c.ReadmitClient, roles=CLINICAL)
def readmit_client(em: Emitter, cmd: c.ReadmitClient) -> None:
    em.require_stage({Stage.AFTERCARE}, "readmit the client")
    if not em.state.relapse_reported:
        raise RelapseNotReported(
            "readmission follows a reported relapse and reassessment: report the relapse first"
        )
    if cmd.new_episode_id == em.state.episode_id:
        raise InvalidCommand(
            "readmission opens a new episode: give a new episode id, not this episode's"
        )
    override = _reassessment_override(em, cmd)
    if override is None:
        em.emit(ev.ClientReadmitted, new_episode_id=cmd.new_episode_id)
    else:
        em.emit(
            ev.ClientReadmitted, new_episode_id=cmd.new_episode_id, reassessment_override=override
        )
    em.emit(ev.EpisodeDischarged, discharge_reason=DischargeReason.TRANSFERRED, summary=cmd.summary)


def _reassessment_override(em: Emitter, cmd: c.ReadmitClient) -> str | None:
    """Under the current rules, readmission waits for the reassessment task to be
    resolved; a supervisor or the clinical director may override that with a reason,
    which is returned. None when no task is open."""
    if not em.state.rules.current:
        return None
    open_tasks = [t for t in em.state.tasks if t.kind is TaskKind.REASSESSMENT and not t.resolved]
    if not open_tasks:
        return None
    if cmd.actor.role in OVERSIGHT and cmd.reason:
        return cmd.reason
    ids = ", ".join(t.task_id for t in open_tasks)
    raise ReassessmentOpen(
        f"the reassessment task ({ids}) is still open: resolve it with the reassessment's "
        "outcome first, or have a supervisor readmit with the reason to override it"
    )
