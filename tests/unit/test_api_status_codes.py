"""The status of every refusal follows the one documented rule (README, "Status codes"):
409 when the command conflicts with the episode's state, 422 when it is invalid in itself;
and a refusal naming several broken rules keeps them on their way to the caller."""

from __future__ import annotations

import inspect

import pytest
from temporalio.exceptions import ApplicationError

from api.problems import status_for
from domain import errors
from workflows.client import CommandRejected, _broken_rules

INVALID_IN_ITSELF = {
    "InvalidCommand",
    "DuplicateId",
    "UnknownReference",
    "ReasonRequired",
    "ScheduleOutsideIntensityBounds",
    "SessionTooShort",
    "SessionBackdatedTooFar",
    "PhaseAdvanceTooEarly",
    "CheckInOutsideWindow",
    "UnknownProgram",
    "UnknownProgramVersion",
    "ProgramVersionIncompatible",
}
NOT_STATE = {"CarePathError", "CommandNotAllowed", "EpisodeNotStarted", "ProgramDefinitionInvalid"}

DOMAIN_ERRORS = sorted(
    name
    for name, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.CarePathError) and name not in NOT_STATE
)


@pytest.mark.parametrize("name", DOMAIN_ERRORS)
def test_given_a_domain_refusal_then_its_status_follows_the_documented_rule(name: str) -> None:
    expected = 422 if name in INVALID_IN_ITSELF else 409
    assert status_for(name) == expected


def test_given_a_refusal_with_broken_rules_when_it_crosses_temporal_then_they_are_kept() -> None:
    broken = [{"rule": "weekly_hours", "actual": 4, "min": 9, "max": 19, "message": "m"}]
    cause = ApplicationError("m", broken, type="ScheduleOutsideIntensityBounds")
    rejected = CommandRejected(cause.type or "", cause.message, _broken_rules(cause))
    assert rejected.code == "ScheduleOutsideIntensityBounds"
    assert rejected.errors == tuple(broken)
    assert _broken_rules(ApplicationError("m", type="WrongStage")) == ()
    assert _broken_rules(ApplicationError("m", "not a list", type="WrongStage")) == ()
