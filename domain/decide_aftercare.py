"""Decisions in aftercare: check-ins, a reported relapse, readmission as a new episode."""

from __future__ import annotations

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    CheckInAlreadyCompleted,
    InvalidCommand,
    RelapseNotReported,
    UnknownReference,
)
from domain.escalation import raise_task
from domain.roles import CLINICAL, FRONT_DESK
from domain.rules import rule
from domain.state import Stage
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
    em.emit(ev.CheckInCompleted, check_in=cmd.check_in)


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
    em.emit(ev.ClientReadmitted, new_episode_id=cmd.new_episode_id)
    em.emit(ev.EpisodeDischarged, discharge_reason=DischargeReason.TRANSFERRED, summary=cmd.summary)
