"""The rule registry: each command is declared by its class and its one registered rule.

Everything else that lists commands (the union, the role check, the API's endpoints) is
derived from the registry, so these tests check the declarations themselves: every
command a staff member posts names its HTTP path and an example that builds it.
"""

from __future__ import annotations

import re
import typing

import pytest
from domain_scenario import DIRECTOR, Episode

from domain import COMMAND_ADAPTER, Command
from domain import commands as c
from domain.emitter import Emitter
from domain.roles import CLINICAL, FRONT_DESK
from domain.rules import registered, rule, rule_for

# Staff do not post these under an episode: the referral opens one (POST /episodes) and
# ticks come from the workflow's timer.
NO_ENDPOINT = {c.ReferClient, c.Tick}


def _ignore(em: Emitter, cmd: c.CancelSession) -> None:
    """A rule that is never registered."""


class TestRegistry:
    def test_the_union_is_the_registered_commands_in_registration_order(self) -> None:
        (union,) = typing.get_args(Command)[:1]
        assert list(typing.get_args(union)) == [entry.command for entry in registered()]

    def test_rules_follow_the_pathway_from_referral_to_time(self) -> None:
        modules = [entry.decide.__module__ for entry in registered()]
        areas = [module for i, module in enumerate(modules) if i == 0 or module != modules[i - 1]]
        assert areas == [
            "domain.decide_intake",
            "domain.decide_plan",
            "domain.decide_sessions",
            "domain.decide_tasks",
            "domain.decide_aftercare",
            "domain.decide_consent",
            "domain.decide_programs",
            "domain.decider",
        ]

    def test_the_decider_dispatches_to_the_registered_rule(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        events = ep.decide(ep.make(c.AdvancePhase, actor=DIRECTOR))

        assert rule_for("advance_phase").decide.__name__ == "advance_phase"
        assert [e.type for e in events] == ["phase_advanced"]

    def test_a_second_rule_for_a_command_is_refused(self) -> None:
        with pytest.raises(TypeError, match=r"cancel_session already has a rule \(domain\."):
            rule(c.CancelSession, roles=FRONT_DESK)(_ignore)

    def test_a_rule_needs_a_role(self) -> None:
        with pytest.raises(TypeError, match="CancelSession needs at least one role"):
            rule(c.CancelSession, roles=frozenset())(_ignore)

    def test_a_rule_needs_a_command_with_a_type_tag(self) -> None:
        with pytest.raises(TypeError, match=r"CommandBase needs a `type: Literal\[...\]` field"):
            rule(c.CommandBase, roles=CLINICAL)(_ignore)


class TestEndpoints:
    def test_every_command_declares_its_endpoint(self) -> None:
        undeclared = [e.kind for e in registered() if "endpoint" not in vars(e.command)]
        assert not undeclared, "declare `endpoint = Endpoint(path, example=...)` on the class"

    def test_every_staff_command_has_a_path_and_an_example(self) -> None:
        without = {e.command for e in registered() if e.command.endpoint is None}
        assert without == NO_ENDPOINT

    def test_every_path_names_fields_of_its_command(self) -> None:
        for entry in registered():
            if (endpoint := entry.command.endpoint) is None:
                continue
            assert endpoint.path.startswith("/"), entry.kind
            for name in re.findall(r"\{([a-z_]+)\}", endpoint.path):
                assert name in entry.command.model_fields, f"{entry.kind}: {{{name}}}"
                assert name in endpoint.example, f"{entry.kind}: the example lacks {name}"

    def test_every_example_builds_its_command(self) -> None:
        for entry in registered():
            if (endpoint := entry.command.endpoint) is None:
                continue
            data = {**endpoint.example, "command_id": "cmd-1", "actor": DIRECTOR.model_dump()}
            command = COMMAND_ADAPTER.validate_python({**data, "type": entry.kind})
            assert type(command) is entry.command
