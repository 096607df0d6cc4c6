"""The role matrix is part of the domain and enforced by `decide`."""

from __future__ import annotations

import pytest
from domain_scenario import AUDITOR, CLINICIAN, INTAKE, SYSTEM, T0, Episode

from domain import commands as c
from domain.actors import Role
from domain.errors import CommandNotAllowed
from domain.roles import ALLOWED_ROLES


def test_every_command_type_has_an_entry_in_the_role_matrix() -> None:
    tags = {member.model_fields["type"].default for member in c.CommandBase.__subclasses__()}
    assert tags == set(ALLOWED_ROLES)


def test_auditors_may_issue_no_command() -> None:
    assert all(Role.AUDITOR not in roles for roles in ALLOWED_ROLES.values())


def test_system_role_issues_only_ticks() -> None:
    assert [tag for tag, roles in ALLOWED_ROLES.items() if Role.SYSTEM in roles] == ["tick"]


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
