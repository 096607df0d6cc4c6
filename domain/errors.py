"""The one error hierarchy of CarePath's domain.

Every error's message tells the user what to do next. The class name is the stable
error type that crosses process boundaries (Temporal failures, HTTP problem documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# How each refusal answers over HTTP (README, "Status codes"): a refusal that conflicts
# with what the episode holds (its stage, a record it has or lacks, a session at the same
# time) is a 409; a command that is invalid in itself (malformed, outside the program's
# bounds, naming what the episode does not have, lacking a reason a rule asks for) is
# an `InvalidCommand`, a 422.


class CarePathError(Exception):
    """Root of every refusal CarePath makes on purpose.

    `errors` lists each rule the command broke, structured (`rule`, `message` and the
    numbers involved), where a refusal names several; it is empty when the message says
    it all. The API sends it as the problem document's `errors`."""

    def __init__(self, *args: object, errors: tuple[Mapping[str, Any], ...] = ()) -> None:
        super().__init__(*args)
        self.errors = errors

    @property
    def code(self) -> str:
        """The stable name of this error, used as the problem type and Temporal failure type."""
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self)


class InvalidCommand(CarePathError):
    """Raised when a command's content is malformed or inconsistent with itself."""


class UnknownProgram(CarePathError):
    """Raised when a command names a program id that no loaded program definition has."""

    def __init__(self, program_id: str, known: tuple[str, ...] = ()) -> None:
        known_text = ", ".join(known) if known else "none loaded"
        super().__init__(
            f"unknown program {program_id!r}: choose one of the configured programs ({known_text})"
        )
        self.program_id = program_id


class UnknownProgramVersion(InvalidCommand):
    """Raised when a version of a program is asked for that no recorded definition has."""

    def __init__(self, program_id: str, version: int, known: tuple[int, ...] = ()) -> None:
        known_text = ", ".join(str(v) for v in known) if known else "none recorded"
        super().__init__(
            f"program {program_id!r} has no version {version}: choose a recorded version "
            f"({known_text}; `carepath programs list` shows them)"
        )
        self.program_id = program_id
        self.version = version


class ProgramVersionIncompatible(InvalidCommand):
    """Raised when an episode cannot move to another program version: the version lacks
    the episode's phase, its level of care or the levels of its open tasks, or it belongs
    to another program."""


class ProgramVersionUnchanged(CarePathError):
    """Raised when an episode is asked to move to the program version it already runs under."""


class ProgramDefinitionInvalid(CarePathError):
    """Raised when a program definition file fails validation; names the field and reason."""


class CommandNotAllowed(CarePathError):
    """Raised when the actor's role may not issue the command."""


class EpisodeNotStarted(CarePathError):
    """Raised when a command other than a referral arrives before the episode exists."""


class EpisodeAlreadyStarted(CarePathError):
    """Raised when a referral arrives for an episode that already exists."""


class EpisodeClosed(CarePathError):
    """Raised when any command arrives after the episode reached a terminal stage."""


class WrongStage(CarePathError):
    """Raised when a command does not fit the episode's current stage (e.g. attendance
    before admission); the message names the stage the command needs."""


class DuplicateId(InvalidCommand):
    """Raised when a command reuses the id of a session, consent or authorization that
    already exists in the episode."""


class UnknownReference(InvalidCommand):
    """Raised when a command names a session, task, check-in or consent that the episode
    does not have."""


class ReasonRequired(InvalidCommand):
    """Raised when a command that changes the record (a correction, an override) carries
    no reason."""


class AssessmentRequired(CarePathError):
    """Raised when admission is attempted before an assessment has been recorded."""


class LevelOfCareOverrideRequired(CarePathError):
    """Raised when admission is attempted while the assessment recommends a level of care
    other than the program's, and no supervisor override has been recorded."""


class ScheduleOutsideIntensityBounds(InvalidCommand):
    """Raised when a treatment plan's weekly schedule breaks the program's intensity bounds
    (weekly hours, sessions per week, hours per session, weeks); names every bound it
    breaks, in the message and in `errors`."""


class AttendanceAlreadyRecorded(CarePathError):
    """Raised when attendance is recorded twice for one session; corrections fix records."""


class AttendanceNotRecorded(CarePathError):
    """Raised when a correction names a session whose attendance was never recorded."""


class SessionTooShort(InvalidCommand):
    """Raised when a session would last less than the program's shortest session."""


class SessionBackdatedTooFar(InvalidCommand):
    """Raised when a session would start further in the past than the program's backdate
    window allows."""


class SessionOverlap(CarePathError):
    """Raised when a session would overlap another of the client's non-cancelled sessions."""


class SessionNotStarted(CarePathError):
    """Raised when attendance is recorded for a session that has not started yet."""


class SessionClosed(CarePathError):
    """Raised when a cancelled session, or one with attendance, is rescheduled or cancelled."""


class NoFurtherPhase(CarePathError):
    """Raised when phase advancement is asked for in the program's last phase."""


class PhaseAdvanceTooEarly(ReasonRequired):
    """Raised when a phase is advanced before the program's earliest advance without a
    reason."""


class StepDownRequiresRelapsePreventionPlan(CarePathError):
    """Raised when step-down is attempted without a relapse-prevention plan on record."""


class StepDownRequiresAftercarePlan(CarePathError):
    """Raised when step-down is attempted without an aftercare plan on record."""


class RelapseNotReported(CarePathError):
    """Raised when readmission is asked for while no relapse has been reported."""


class ReassessmentOpen(CarePathError):
    """Raised when readmission is asked for while the reassessment task is still open and
    no supervisor overrides it with a reason."""


class CheckInOutsideWindow(ReasonRequired):
    """Raised when an aftercare check-in is recorded outside its window without a reason."""


class CheckInAlreadyCompleted(CarePathError):
    """Raised when an aftercare check-in that is already completed is recorded again."""


class TaskAlreadyResolved(CarePathError):
    """Raised when an escalation task that is already resolved is resolved again."""


class TaskSuperseded(CarePathError):
    """Raised when a task that a higher task of the same concern replaced is resolved: the
    message names the task now open for that concern."""


class ConsentRequired(CarePathError):
    """Raised when a notification to family or an external party has no active consent
    (42 CFR Part 2) covering that recipient and scope."""


class ConsentAlreadyRevoked(CarePathError):
    """Raised when a consent that is already revoked is revoked again."""
