"""The role matrix is part of the domain (each rule names its roles) and enforced by `decide`."""

from __future__ import annotations

import pytest
from domain_scenario import AUDITOR, CLINICIAN, INTAKE, SYSTEM, T0, Episode

from domain import commands as c
from domain.actors import Role
from domain.errors import CommandNotAllowed
from domain.roles import allowed_roles, check_allowed
from domain.rules import registered


def test_every_command_type_has_a_rule_naming_its_roles() -> None:
    tags = {member.model_fields["type"].default for member in c.CommandBase.__subclasses__()}
    assert tags == {entry.kind for entry in registered()}
    assert all(allowed_roles(entry.kind) == entry.roles for entry in registered())


def test_auditors_may_issue_no_command() -> None:
    assert all(Role.AUDITOR not in entry.roles for entry in registered())


def test_system_role_issues_only_ticks() -> None:
    assert [entry.kind for entry in registered() if Role.SYSTEM in entry.roles] == ["tick"]


def test_an_unknown_command_type_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="no rule is registered for command type 'teleport'"):
        check_allowed("teleport", CLINICIAN)


def test_auditor_referral_is_refused_with_the_roles_to_ask() -> None:
    ep = Episode()
    with pytest.raises(CommandNotAllowed, match="role 'auditor' may not refer client: ask"):
        ep.decide(
            ep.make(
                c.ReferClient,
                actor=AUDITOR,
                client_ref="x",
                program_id="adult-iop",
                referral_source="self",
            )
        )


def test_clinician_cannot_discharge_without_a_supervisor() -> None:
    ep = Episode().in_program()
    with pytest.raises(CommandNotAllowed, match="clinical_director or supervisor"):
        ep.decide(ep.make(c.Discharge, discharge_reason="completed", summary="done"))


def test_clinician_cannot_override_the_level_of_care() -> None:
    ep = Episode().assessed()
    with pytest.raises(CommandNotAllowed, match="override level of care"):
        ep.decide(ep.make(c.OverrideLevelOfCare, actor=CLINICIAN, justification="x"))


def test_intake_coordinator_cannot_record_attendance() -> None:
    ep = Episode().in_program()
    with pytest.raises(CommandNotAllowed, match="record attendance"):
        ep.decide(ep.make(c.RecordAttendance, actor=INTAKE, session_id="s1", status="attended"))


def test_a_user_cannot_issue_a_tick() -> None:
    ep = Episode().in_program()
    with pytest.raises(CommandNotAllowed, match="ask a user with role system"):
        ep.decide(c.Tick(now=T0, actor=CLINICIAN))


def test_the_system_cannot_issue_clinical_commands() -> None:
    ep = Episode().in_program()
    with pytest.raises(CommandNotAllowed):
        ep.decide(ep.make(c.AdvancePhase, actor=SYSTEM))
