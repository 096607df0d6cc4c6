"""Decisions from referral to admission: screening, referral out, assessment, override, admit."""

from __future__ import annotations

from datetime import timedelta

from domain import commands_intake as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    AssessmentRequired,
    InvalidCommand,
    LevelOfCareOverrideRequired,
    WrongStage,
)
from domain.programs import ProgramDefinition, program_digest
from domain.roles import CLINICAL, FRONT_DESK, OVERSIGHT
from domain.rules import rule
from domain.state import DeadlineRules, Stage
from domain.vocabulary import CURRENT_RULES

_SCREENABLE = frozenset({Stage.REFERRED, Stage.SCREENING})


@rule(c.ReferClient, roles=FRONT_DESK)
def refer_client(em: Emitter, cmd: c.ReferClient) -> None:
    """Open the episode; the caller has checked that the program exists. The episode
    records the program version it is referred under (a definition recorded before
    programs had versions records none)."""
    program = em.program_named(cmd.program_id)
    versioned = program.version is not None
    em.emit(
        ev.ClientReferred,
        client_ref=cmd.client_ref,
        program_id=cmd.program_id,
        referral_source=cmd.referral_source,
        readmission_of=cmd.readmission_of,
        program_version=program.version,
        program_digest=program_digest(program) if versioned else None,
    )


@rule(c.StartScreening, roles=FRONT_DESK)
def start_screening(em: Emitter, cmd: c.StartScreening) -> None:
    em.require_stage({Stage.REFERRED}, "start screening")
    em.emit(ev.ScreeningStarted)


@rule(c.RecordScreening, roles=FRONT_DESK)
def record_screening(em: Emitter, cmd: c.RecordScreening) -> None:
    em.require_stage(_SCREENABLE, "record a screening")
    findings = cmd.findings
    if findings.eligible:
        if cmd.referred_out_to is not None:
            raise InvalidCommand(
                "the screening finds the client eligible: leave referred_out_to empty, "
                "or correct the findings"
            )
        em.emit(ev.ScreeningRecorded, findings=findings, eligible=True)
        return
    if cmd.referred_out_to is None or cmd.referred_out_to is em.program.level_of_care:
        raise InvalidCommand(
            "the client is not eligible for this program "
            f"(unmet: {', '.join(findings.unmet_criteria()) or 'none'}; "
            f"exclusions: {', '.join(findings.exclusions_present()) or 'none'}): "
            "name the level of care the client is referred out to in referred_out_to"
        )
    em.emit(ev.ScreeningRecorded, findings=findings, eligible=False)
    reasons = (*findings.exclusions_present(), *findings.unmet_criteria())
    em.emit(
        ev.ClientReferredOut,
        level_of_care=cmd.referred_out_to,
        summary=cmd.reason or "not eligible at screening: " + ", ".join(reasons),
    )


@rule(c.ReferOut, roles=FRONT_DESK)
def refer_out(em: Emitter, cmd: c.ReferOut) -> None:
    em.require_stage({*_SCREENABLE, Stage.ASSESSMENT}, "refer the client out")
    if cmd.level_of_care is em.program.level_of_care:
        raise InvalidCommand(
            f"{cmd.level_of_care.value} is this program's own level of care: "
            "name the other level of care the client is referred to"
        )
    em.emit(ev.ClientReferredOut, level_of_care=cmd.level_of_care, summary=cmd.summary)


@rule(c.RecordAssessment, roles=CLINICAL)
def record_assessment(em: Emitter, cmd: c.RecordAssessment) -> None:
    em.require_stage({Stage.ASSESSMENT}, "record an assessment")
    if len(set(cmd.diagnoses)) != len(cmd.diagnoses):
        raise InvalidCommand("diagnoses list a code twice: list each ICD-10 code once")
    em.emit(
        ev.AssessmentRecorded,
        asam_edition=cmd.asam_edition,
        asam_ratings=cmd.asam_ratings,
        diagnoses=cmd.diagnoses,
        recommended_level=cmd.recommended_level,
    )


@rule(c.OverrideLevelOfCare, roles=OVERSIGHT)
def override_level_of_care(em: Emitter, cmd: c.OverrideLevelOfCare) -> None:
    em.require_stage({Stage.ASSESSMENT}, "override the level of care")
    assessment = em.state.assessment
    if assessment is None:
        raise AssessmentRequired("record the assessment before overriding its level of care")
    if assessment.recommended_level is em.program.level_of_care:
        raise WrongStage(
            "the assessment already recommends this program's level of care: "
            "no override is needed, admit the client"
        )
    em.emit(
        ev.LevelOfCareOverridden,
        recommended_level=assessment.recommended_level,
        justification=cmd.justification,
    )


@rule(c.AdmitClient, roles=CLINICAL)
def admit_client(em: Emitter, cmd: c.AdmitClient) -> None:
    em.require_stage({Stage.ASSESSMENT}, "admit the client")
    state, program = em.state, em.program
    if state.assessment is None:
        raise AssessmentRequired("record the assessment (ASAM ratings, diagnoses) before admission")
    recommended = state.assessment.recommended_level
    if recommended is not program.level_of_care and state.level_override is None:
        raise LevelOfCareOverrideRequired(
            f"the assessment recommends {recommended.value}, not {program.level_of_care.value}: "
            "a supervisor must record a level-of-care override with a justification, "
            "or refer the client out"
        )
    em.emit(
        ev.ClientAdmitted,
        phase_id=program.phases[0].id,
        plan_due_at=em.now + program.planning.initial_plan_due,
        rules=admission_rules(program, em.rules_revision),
    )


def _whole(value: timedelta, unit: timedelta) -> int:
    return int(value // unit)


def admission_rules(program: ProgramDefinition, revision: int) -> DeadlineRules:
    """The timing rules an episode is admitted under, for the rules revision in force.

    Revision 1 recorded whole minutes and days only; later revisions record the exact
    durations, the time zone and the phases' lengths as well.
    """
    attendance, planning = program.attendance, program.planning
    legacy = DeadlineRules(
        no_show_grace_minutes=_whole(attendance.no_show_grace, timedelta(minutes=1)),
        no_contact_days=_whole(program.escalation.no_contact, timedelta(days=1)),
        review_reminder_days=_whole(planning.review_reminder, timedelta(days=1)),
    )
    if revision < CURRENT_RULES:
        return legacy
    return legacy.model_copy(
        update={
            "revision": revision,
            "timezone": program.timezone,
            "no_show_grace": attendance.no_show_grace,
            "no_contact": program.escalation.no_contact,
            "review_reminder": planning.review_reminder,
            "phase_durations": {phase.id: phase.duration for phase in program.phases},
        }
    )
